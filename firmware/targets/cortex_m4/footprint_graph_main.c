/* Footprint probe: what a firmware with a compiled-in model links, and nothing else: the blob (model.c), bind,
 * init/step, the kernels the model needs (the Makefile passes model.h's EM_MODEL_GRAPH_KERNELS as
 * -DEM_GRAPH_KERNELS), the arena; no stdio, no semihosting. Built against $(MODEL_DIR)/model.h from
 * `edgemem export --to c` (EM_MODEL_FORMAT 2, EM_MODEL_BLOB_SIZE, EM_MODEL_ARENA_BYTES, em_model_blob). The blob is
 * bound at start-up, as a device would: bind's CRC is part of the flash figure, the parser is not. */
#include "edgemem.h"
#include "model.h"

#if !defined(EM_MODEL_FORMAT) || EM_MODEL_FORMAT != 2
#error "footprint_graph_main.c needs a graph model.h (EM_MODEL_FORMAT 2): re-export with `edgemem export --to c`"
#endif

static uint32_t g_arena[(EM_MODEL_ARENA_BYTES + 3) / 4]; /* state + scratch, exactly the blob's arena_size */
volatile int8_t g_fp_in; /* volatile: the compiler cannot fold the steps away */
volatile int32_t g_fp_result;

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    em_graph_t g;
    em_graph_ctx_t ctx;
    em_status_t st = em_graph_bind(&g, em_model_blob, EM_MODEL_BLOB_SIZE);
    if (st == EM_OK) st = em_graph_init(&ctx, &g, g_arena, sizeof g_arena);
    if (st != EM_OK) {
        g_fp_result = st;
        return 1;
    }
    int8_t in[EM_MODEL_N_IN];
    int16_t out[EM_MODEL_N_OUT];
    int32_t acc = 0;
    for (int t = 0; t < 4; t++) {
        for (int i = 0; i < EM_MODEL_N_IN; i++) in[i] = (int8_t)(g_fp_in + i);
        st = em_graph_step(&ctx, in, out);
        if (st != EM_OK) break;
        for (int o = 0; o < EM_MODEL_N_OUT; o++) acc += out[o];
    }
    g_fp_result = st == EM_OK ? acc : st;
    return 0;
}
