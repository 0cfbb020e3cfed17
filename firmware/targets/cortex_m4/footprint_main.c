/* Footprint probe: the compiled-in model + runtime + state, no stdio, no semihosting.
 * Built against $(MODEL_DIR)/model.h, which defines EM_MODEL_SYMBOL and EM_MODEL_ARENA_BYTES. */
#include "model.h"

static uint32_t g_arena[(EM_MODEL_ARENA_BYTES + 3) / 4]; /* state + scratch, exactly what em_init needs */
volatile int8_t g_fp_in; /* volatile: the compiler cannot fold the steps away */
volatile int32_t g_fp_result;

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    em_ctx_t ctx;
    em_status_t st = em_init(&ctx, &EM_MODEL_SYMBOL, g_arena, sizeof g_arena);
    if (st != EM_OK) {
        g_fp_result = st;
        return 1;
    }
    int8_t in[EM_MAX_DIM];
    int16_t out[EM_MAX_DIM];
    int32_t acc = 0;
    for (int t = 0; t < 4; t++) {
        for (int i = 0; i < EM_MODEL_SYMBOL.n_in; i++) in[i] = (int8_t)(g_fp_in + i);
        st = em_step(&ctx, in, out);
        if (st != EM_OK) break;
        for (int o = 0; o < EM_MODEL_SYMBOL.n_out; o++) acc += out[o];
    }
    g_fp_result = st == EM_OK ? acc : st;
    return 0;
}
