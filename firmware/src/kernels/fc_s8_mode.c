/* Fully connected int8 layer for graph blobs: s8 x s8 -> int32 dot -> sat32(+ bias) -> requant -> int16 store. */
#include "em_kernels.h"
#include "em_intops_inline.h"
#include "em_dot_inline.h"

/* in [in_dim] s8, w [out_dim][in_dim] s8, bias/mult [out_dim] s32, shift [out_dim] s8, out [out_dim] s32. */
em_status_t em_fc_s8_mode(const int8_t *in, const int8_t *w, const int32_t *bias, const int32_t *mult,
                          const int8_t *shift, int in_dim, int out_dim, em_out_mode_t mode, int32_t *out) {
    if (!in || !w || !bias || !mult || !shift || !out) return EM_ERR_NULL;
    /* in_dim <= EM_MAX_DIM keeps the int32 dot product exact: |sum| <= 1024 * 128 * 128 = 2^24. */
    if (in_dim < 1 || out_dim < 1 || in_dim > (int)EM_MAX_DIM || out_dim > (int)EM_MAX_DIM) return EM_ERR_DIMS;
    if (mode != EM_OUT_ASSIGN && mode != EM_OUT_ACC) return EM_ERR_PARAM;
    for (int o = 0; o < out_dim; o++) {
        if (shift[o] < 1 || shift[o] > 62) return EM_ERR_PARAM; /* outside it the shift is undefined */
    }
    const int acc = mode == EM_OUT_ACC;
    /* two rows a pass: the input is read once for both; an odd last row pairs with itself (one code path) */
    for (int o = 0; o < out_dim; o += 2) {
        const int pair = o + 1 < out_dim;
        const int8_t *w0 = w + (size_t)o * (size_t)in_dim;
        int32_t d[2];
        em_dot2_s8(w0, w0 + (size_t)pair * (size_t)in_dim, in, in_dim, &d[0], &d[1]);
        /* sat32 before the requant (docs/graph.md): only a hostile bias near the int32 limits gets there */
        for (int r = 0; r <= pair; r++)
            em_store32_i(&out[o + r], em_requant16(em_add_sat32_i(bias[o + r], d[r]), mult[o + r], shift[o + r]), acc);
    }
    return EM_OK;
}
