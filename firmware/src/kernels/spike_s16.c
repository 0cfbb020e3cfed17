/* SPIKE: a LIF population's spikes recomputed from its membrane, mem > thr. The L2MU's recurrent inputs are the
 * previous step's spikes taken from the membranes at the start of the step; after a reset (mem = 0) they are 1 where
 * the learned threshold is negative, which a zeroed spike state buffer cannot hold. */
#include "em_k.h"

/* mem [n] s16, thr [n] s16, out [n] s8 (0 or 1). */
void em_k_spike(const int16_t *mem, const int16_t *thr, int n, int8_t *out) {
    for (int i = 0; i < n; i++) out[i] = (int8_t)(mem[i] > thr[i]);
}

em_status_t em_spike_s16(const int16_t *mem, const int16_t *thr, int n, int8_t *out) {
    if (!mem || !thr || !out) return EM_ERR_NULL;
    if (n < 1) return EM_ERR_DIMS;
    em_k_spike(mem, thr, n, out);
    return EM_OK;
}
