/* Leaky integrator (an exponential trace, no spikes): the state is the output. */
#include "em_k.h"
#include "em_intops_inline.h"

/* in [n] s32, beta [n] Q15, trace [n] s16 (state, in place). */
void em_k_leaky(const int32_t *in, const int16_t *beta, int n, int16_t *trace) {
    for (int i = 0; i < n; i++) {
        /* |beta * trace| <= 2^30 is exact in int32; the decayed value plus a full int32 input needs int64 */
        int32_t decay = em_rshift_round32_i((int32_t)beta[i] * trace[i], 15);
        trace[i] = em_sat16_i((int64_t)decay + in[i]);
    }
}

em_status_t em_leaky_s16(const int32_t *in, const int16_t *beta, int n, int16_t *trace) {
    if (!in || !beta || !trace) return EM_ERR_NULL;
    if (n < 1) return EM_ERR_DIMS;
    em_k_leaky(in, beta, n, trace);
    return EM_OK;
}
