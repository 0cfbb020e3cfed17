/* ADD: a rescaled residual, r[i] = requant(in[i], mult, shift), assigned or added into an int32 sum. */
#include "em_kernels.h"
#include "em_intops_inline.h"

/* in [n] s8, out [n] s32. */
em_status_t em_add_requant_s8(const int8_t *in, int n, int32_t mult, int shift, em_out_mode_t mode, int32_t *out) {
    if (!in || !out) return EM_ERR_NULL;
    if (n < 1) return EM_ERR_DIMS;
    if (shift < 1 || shift > 62 || (mode != EM_OUT_ASSIGN && mode != EM_OUT_ACC)) return EM_ERR_PARAM;
    const int acc = mode == EM_OUT_ACC;
    for (int i = 0; i < n; i++) em_store32_i(&out[i], em_requant_i(in[i], mult, shift), acc);
    return EM_OK;
}

/* in [n] s16, out [n] s32. */
em_status_t em_add_requant_s16(const int16_t *in, int n, int32_t mult, int shift, em_out_mode_t mode,
                               int32_t *out) {
    if (!in || !out) return EM_ERR_NULL;
    if (n < 1) return EM_ERR_DIMS;
    if (shift < 1 || shift > 62 || (mode != EM_OUT_ASSIGN && mode != EM_OUT_ACC)) return EM_ERR_PARAM;
    const int acc = mode == EM_OUT_ACC;
    for (int i = 0; i < n; i++) em_store32_i(&out[i], em_requant_i(in[i], mult, shift), acc);
    return EM_OK;
}
