/* Fully connected int8 layer: s8 x s8 -> s32 accumulate -> requant -> int16 saturating add into acc_out. */
#include "em_kernels.h"
#include "em_intops_inline.h"
#include "em_dot_inline.h"

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
        int32_t dot = em_dot_s8(row, in, in_dim);
        /* bias + dot in int64: a hostile bias near INT32_MAX must not overflow (Python ints don't wrap). */
        int32_t r = em_requant_i((int64_t)bias[o] + dot, mult[o], shift[o]);
        acc_out[o] = em_sat16_i((int64_t)acc_out[o] + em_sat16_i(r)); /* int16 sums, as TFLite (em_store32_i) */
    }
    return EM_OK;
}
