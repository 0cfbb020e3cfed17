/* Fully connected layer with int16 input (a membrane or trace read directly): s8 x s16 -> int64 -> sat32 -> requant. */
#include "em_k.h"
#include "em_intops_inline.h"
#include "em_dot_inline.h"

/* in [in_dim] s16, w [out_dim][in_dim] s8, bias/mult [out_dim] s32, shift [out_dim] s8, out [out_dim] s32. */
void em_k_fc_s16(const int16_t *in, const int8_t *w, const int32_t *bias, const int32_t *mult, const int8_t *shift,
                 int in_dim, int out_dim, int acc, int32_t *out) {
    int o = 0;
    if (in_dim < 512) { /* |dot| <= in_dim * 2^22 < 2^31: int32 sums, four rows a pass (em_dot4_s8_s16) */
        for (; o + 4 <= out_dim; o += 4) {
            int32_t d[4];
            em_dot4_s8_s16(w + (size_t)o * (size_t)in_dim, (size_t)in_dim, in, in_dim, d);
            for (int r = 0; r < 4; r++)
                em_store16_i(&out[o + r], em_requant16(em_add_sat32_i(bias[o + r], d[r]), mult[o + r], shift[o + r]),
                             acc);
        }
    }
    for (; o < out_dim; o += 2) { /* two rows a pass: the input is read once for both */
        const int pair = o + 1 < out_dim;    /* an odd last row pairs with itself */
        const int8_t *w0 = w + (size_t)o * (size_t)in_dim;
        /* |dot| <= 1024 * 128 * 32768 = 2^32: int64, then bias, then sat32 (a real overflow case here) */
        int64_t d[2];
        em_dot2_s8_s16(w0, w0 + (size_t)pair * (size_t)in_dim, in, in_dim, &d[0], &d[1]);
        for (int r = 0; r <= pair; r++)
            em_store16_i(&out[o + r], em_requant16(em_sat32_i(bias[o + r] + d[r]), mult[o + r], shift[o + r]), acc);
    }
}

em_status_t em_fc_s16(const int16_t *in, const int8_t *w, const int32_t *bias, const int32_t *mult,
                      const int8_t *shift, int in_dim, int out_dim, em_out_mode_t mode, int32_t *out) {
    if (!in || !w || !bias || !mult || !shift || !out) return EM_ERR_NULL;
    const em_status_t st = em_k_check_requant(in_dim, out_dim, mode, shift);
    if (st != EM_OK) return st;
    em_k_fc_s16(in, w, bias, mult, shift, in_dim, out_dim, mode == EM_OUT_ACC, out);
    return EM_OK;
}
