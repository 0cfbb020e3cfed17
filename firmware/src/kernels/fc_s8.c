/* Fully connected int8 layer: s8 x s8 -> s32 accumulate -> requant -> saturating add into acc_out. */
#include "em_kernels.h"
#include "em_intops_inline.h"

/* sum_i a[i] * b[i] over n int8 pairs; exact in int32 for n <= EM_MAX_DIM (|sum| <= 2^24). */
#if defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32 && defined(__GNUC__)
#include <arm_acle.h>
/* Cortex-M4 DSP path (as CMSIS-NN): SXTB16 widens bytes 0,2 (and, rotated, 1,3) to int16 pairs, SMLAD does two
 * MACs at once. Integer arithmetic, so the result equals the scalar loop bit for bit. */
static inline uint32_t ror8(uint32_t x) { return (x >> 8) | (x << 24); } /* folds into SXTB16's rotate */

static int32_t dot_s8(const int8_t *a, const int8_t *b, int n) {
    int32_t acc = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32_t wa, wb;
        __builtin_memcpy(&wa, a + i, 4); /* unaligned word loads are fine on v7-M */
        __builtin_memcpy(&wb, b + i, 4);
        acc = (int32_t)__smlad(__sxtb16(wa), __sxtb16(wb), (uint32_t)acc);
        acc = (int32_t)__smlad(__sxtb16(ror8(wa)), __sxtb16(ror8(wb)), (uint32_t)acc);
    }
    for (; i < n; i++) acc += (int32_t)a[i] * (int32_t)b[i];
    return acc;
}
#else
static int32_t dot_s8(const int8_t *a, const int8_t *b, int n) {
    int32_t acc = 0;
    for (int i = 0; i < n; i++) acc += (int32_t)a[i] * (int32_t)b[i];
    return acc;
}
#endif

/* in [in_dim], w [out_dim][in_dim], bias/mult [out_dim], shift [out_dim], acc_out [out_dim] (accumulated). */
em_status_t em_fc_s8(const int8_t *in, const int8_t *w, const int32_t *bias, const int32_t *mult,
                     const int8_t *shift, int in_dim, int out_dim, int32_t *acc_out) {
    if (!in || !w || !bias || !mult || !shift || !acc_out) return EM_ERR_NULL;
    /* in_dim <= EM_MAX_DIM keeps the int32 dot product exact: |sum| <= 1024 * 128 * 128 = 2^24. */
    if (in_dim < 1 || out_dim < 1 || in_dim > (int)EM_MAX_DIM || out_dim > (int)EM_MAX_DIM) return EM_ERR_DIMS;
    for (int o = 0; o < out_dim; o++) {
        if (shift[o] < 1 || shift[o] > 62) return EM_ERR_PARAM; /* outside it the shift is undefined */
    }
    for (int o = 0; o < out_dim; o++) {
        const int8_t *row = w + (size_t)o * (size_t)in_dim; /* w[o][:] */
        int32_t dot = dot_s8(row, in, in_dim);
        /* bias + dot in int64: a hostile bias near INT32_MAX must not overflow (Python ints don't wrap). */
        int32_t r = em_requant_i((int64_t)bias[o] + dot, mult[o], shift[o]);
        acc_out[o] = em_sat32_i((int64_t)acc_out[o] + r);
    }
    return EM_OK;
}
