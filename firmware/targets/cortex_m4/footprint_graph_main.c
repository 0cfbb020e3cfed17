/* Footprint probe for a graph model (blob version 2): the compiled-in blob + parser + graph runtime + arena, no
 * stdio, no semihosting. Built against $(MODEL_DIR)/model.h, which defines EM_MODEL_FORMAT 2, EM_MODEL_BLOB_SIZE,
 * EM_MODEL_ARENA_BYTES and declares em_model_blob (4-byte aligned, in model.c). The blob is parsed at start-up, as
 * a device would: the parser and its CRC are part of the flash figure. */
#include "em_graph.h"
#include "model.h"

#if !defined(EM_MODEL_FORMAT) || EM_MODEL_FORMAT != 2
#error "footprint_graph_main.c needs a graph model.h (EM_MODEL_FORMAT 2)"
#endif

static uint32_t g_arena[(EM_MODEL_ARENA_BYTES + 3) / 4]; /* state + scratch, exactly the blob's arena_size */
volatile int8_t g_fp_in; /* volatile: the compiler cannot fold the steps away */
volatile int32_t g_fp_result;

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    em_graph_t g;
    em_graph_ctx_t ctx;
    em_status_t st = em_graph_parse(&g, em_model_blob, EM_MODEL_BLOB_SIZE);
    if (st == EM_OK) st = em_graph_init(&ctx, &g, g_arena, sizeof g_arena);
    if (st != EM_OK) {
        g_fp_result = st;
        return 1;
    }
    int8_t in[EM_MAX_DIM];
    int16_t out[EM_MAX_DIM];
    int32_t acc = 0;
    for (int t = 0; t < 4; t++) {
        for (int i = 0; i < g.n_in; i++) in[i] = (int8_t)(g_fp_in + i);
        st = em_graph_step(&ctx, in, out);
        if (st != EM_OK) break;
        for (int o = 0; o < g.n_out; o++) acc += out[o];
    }
    g_fp_result = st == EM_OK ? acc : st;
    return 0;
}
