/* Fully connected int8 layer for graph blobs: s8 x s8 -> int32 dot -> sat32(+ bias) -> requant -> int16 store. */
#include "em_k.h"
#include "em_intops_inline.h"
#include "em_dot_inline.h"

/* in [in_dim] s8, w [out_dim][in_dim] s8, bias/mult [out_dim] s32, shift [out_dim] s8, out [out_dim] s32.
 * in_dim <= EM_MAX_DIM keeps the int32 dot product exact: |sum| <= 1024 * 128 * 128 = 2^24. */
void em_k_fc_s8(const int8_t *in, const int8_t *w, const int32_t *bias, const int32_t *mult, const int8_t *shift,
                int in_dim, int out_dim, int acc, int32_t *out) {
    /* four rows a pass (em_dot4_s8: each input word loaded and widened once for four rows), then the last
     * out_dim % 4 rows one at a time */
    const size_t stride = (size_t)in_dim;
    int o = 0;
    for (; o + 4 <= out_dim; o += 4) {
        int32_t d[4];
        em_dot4_s8(w + (size_t)o * stride, stride, in, in_dim, d); /* w[o..o+3][:] . in */
        for (int r = 0; r < 4; r++) /* sat32 before the requant (docs/graph.md): only a hostile bias gets there */
            em_store16_i(&out[o + r], em_requant16(em_add_sat32_i(bias[o + r], d[r]), mult[o + r], shift[o + r]),
                         acc);
    }
    for (; o < out_dim; o++) {
        const int32_t dot = em_dot_s8(w + (size_t)o * stride, in, in_dim); /* w[o][:] . in */
        em_store16_i(&out[o], em_requant16(em_add_sat32_i(bias[o], dot), mult[o], shift[o]), acc);
    }
}

em_status_t em_fc_s8_mode(const int8_t *in, const int8_t *w, const int32_t *bias, const int32_t *mult,
                          const int8_t *shift, int in_dim, int out_dim, em_out_mode_t mode, int32_t *out) {
    if (!in || !w || !bias || !mult || !shift || !out) return EM_ERR_NULL;
    const em_status_t st = em_k_check_requant(in_dim, out_dim, mode, shift);
    if (st != EM_OK) return st;
    em_k_fc_s8(in, w, bias, mult, shift, in_dim, out_dim, mode == EM_OUT_ACC, out);
    return EM_OK;
}
