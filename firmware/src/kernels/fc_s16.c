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
    int o = 0;
    for (; o + 2 <= out_dim; o += 2) { /* two rows a pass: the input is read once for both */
        /* |dot| <= 1024 * 128 * 32768 = 2^32: int64, then bias, then sat32 (a real overflow case here) */
        int64_t dot0, dot1;
        em_dot2_s8_s16(w + (size_t)o * (size_t)in_dim, w + (size_t)(o + 1) * (size_t)in_dim, in, in_dim, &dot0,
                       &dot1);
        em_store32_i(&out[o], em_requant_i(em_sat32_i(bias[o] + dot0), mult[o], shift[o]), acc);
        em_store32_i(&out[o + 1], em_requant_i(em_sat32_i(bias[o + 1] + dot1), mult[o + 1], shift[o + 1]), acc);
    }
    if (o < out_dim) {
        int64_t dot = em_dot_s8_s16(w + (size_t)o * (size_t)in_dim, in, in_dim);
        em_store32_i(&out[o], em_requant_i(em_sat32_i(bias[o] + dot), mult[o], shift[o]), acc);
    }
    return EM_OK;
}
