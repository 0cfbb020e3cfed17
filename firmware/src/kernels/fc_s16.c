/* Fully connected layer with int16 input (a membrane or trace read directly): s8 x s16 -> int64 -> sat32 -> requant. */
#include "em_kernels.h"
#include "em_intops_inline.h"
#include "em_dot_inline.h"

/* in [in_dim] s16, w [out_dim][in_dim] s8, bias/mult [out_dim] s32, shift [out_dim] s8, out [out_dim] s32. */
em_status_t em_fc_s16(const int16_t *in, const int8_t *w, const int32_t *bias, const int32_t *mult,
                      const int8_t *shift, int in_dim, int out_dim, em_out_mode_t mode, int32_t *out) {
    if (!in || !w || !bias || !mult || !shift || !out) return EM_ERR_NULL;
    if (in_dim < 1 || out_dim < 1 || in_dim > (int)EM_MAX_DIM || out_dim > (int)EM_MAX_DIM) return EM_ERR_DIMS;
    if (mode != EM_OUT_ASSIGN && mode != EM_OUT_ACC) return EM_ERR_PARAM;
    for (int o = 0; o < out_dim; o++) {
        if (shift[o] < 1 || shift[o] > 62) return EM_ERR_PARAM;
    }
    const int acc = mode == EM_OUT_ACC;
    for (int o = 0; o < out_dim; o++) {
        /* |dot| <= 1024 * 128 * 32768 = 2^32: int64, then bias, then sat32 (a real overflow case here) */
        int64_t dot = em_dot_s8_s16(w + (size_t)o * (size_t)in_dim, in, in_dim);
        int32_t r = em_requant_i(em_sat32_i(bias[o] + dot), mult[o], shift[o]);
        em_store32_i(&out[o], r, acc);
    }
    return EM_OK;
}
