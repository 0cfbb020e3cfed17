/* LIF / CuBa neuron step on int16 state (snntorch Leaky / Synaptic, reset by subtraction). */
#include "em_k.h"
#include "em_intops_inline.h"

/* cur [n] int32, mem [n] int16 (in/out), syn [n] int16 (in/out, NULL = LIF), beta/alpha/thr [n] Q15 / membrane
 * units, spk [n] 0/1. alpha may be NULL for LIF. */
void em_k_lif(const int32_t *cur, int16_t *mem, int16_t *syn, const int16_t *beta, const int16_t *alpha,
              const int16_t *thr, int n, int8_t *spk) {
    for (int i = 0; i < n; i++) {
        int32_t m = mem[i];
        int32_t reset = m > thr[i] ? thr[i] : 0; /* from the previous membrane, as snntorch does */
        int32_t c = em_sat16_32i(cur[i]);
        if (syn) {
            /* |alpha * syn| <= 2^30: exact in int32. The membrane integrates the stored, saturated syn: int16
             * after every operation, as TFLite's ADD and SUB compute it (docs/tflite.md). */
            c = em_sat16_32i(em_rshift_round32_i((int32_t)alpha[i] * syn[i], 15) + c);
            syn[i] = (int16_t)c;
        }
        /* sat16(sat16(decay - reset) + c); |decay|, |reset|, |c| <= 2^15: every sum fits int32 */
        m = em_sat16_32i(em_sat16_32i(em_rshift_round32_i((int32_t)beta[i] * m, 15) - reset) + c);
        mem[i] = (int16_t)m;
        spk[i] = (int8_t)(m > thr[i]);
    }
}

em_status_t em_lif_s16(const int32_t *cur, int16_t *mem, int16_t *syn, const int16_t *beta,
                       const int16_t *alpha, const int16_t *thr, int n, int8_t *spk) {
    if (!cur || !mem || !beta || !thr || !spk || (syn && !alpha)) return EM_ERR_NULL;
    if (n < 1) return EM_ERR_DIMS;
    em_k_lif(cur, mem, syn, beta, alpha, thr, n, spk);
    return EM_OK;
}
