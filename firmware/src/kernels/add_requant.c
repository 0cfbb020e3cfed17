/* ADD: a rescaled residual, r[i] = requant(in[i], mult, shift), assigned or added into an int16 sum. */
#include "em_k.h"
#include "em_intops_inline.h"

/* in [n] s8, out [n] s32. */
void em_k_add_s8(const int8_t *in, int n, int32_t mult, int shift, int acc, int32_t *out) {
    for (int i = 0; i < n; i++) em_store16_i(&out[i], em_requant16(in[i], mult, shift), acc);
}

/* in [n] s16, out [n] s32. */
void em_k_add_s16(const int16_t *in, int n, int32_t mult, int shift, int acc, int32_t *out) {
    for (int i = 0; i < n; i++) em_store16_i(&out[i], em_requant16(in[i], mult, shift), acc);
}

static em_status_t check_add(const void *in, int n, int shift, em_out_mode_t mode, const int32_t *out) {
    if (!in || !out) return EM_ERR_NULL;
    if (n < 1) return EM_ERR_DIMS;
    if (shift < 1 || shift > 62 || (mode != EM_OUT_ASSIGN && mode != EM_OUT_ACC)) return EM_ERR_PARAM;
    return EM_OK;
}

em_status_t em_add_requant_s8(const int8_t *in, int n, int32_t mult, int shift, em_out_mode_t mode, int32_t *out) {
    const em_status_t st = check_add(in, n, shift, mode, out);
    if (st == EM_OK) em_k_add_s8(in, n, mult, shift, mode == EM_OUT_ACC, out);
    return st;
}

em_status_t em_add_requant_s16(const int16_t *in, int n, int32_t mult, int shift, em_out_mode_t mode,
                               int32_t *out) {
    const em_status_t st = check_add(in, n, shift, mode, out);
    if (st == EM_OK) em_k_add_s16(in, n, mult, shift, mode == EM_OUT_ACC, out);
    return st;
}
