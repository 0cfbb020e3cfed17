/* ONOFF: on and off cells of a signed int16 vector, [+x, -x] (the L2MU's memory population input). */
#include "em_k.h"
#include "em_intops_inline.h"

/* in [n] s16, out [2n] s32. */
void em_k_onoff(const int16_t *in, int n, int acc, int32_t *out) {
    for (int i = 0; i < n; i++) {
        const int32_t v = in[i];
        em_store32_i(&out[i], v, acc);
        em_store32_i(&out[n + i], -v, acc); /* -(-32768) = 32768 fits int32, then saturates to 32767 */
    }
}

em_status_t em_onoff_s16(const int16_t *in, int n, em_out_mode_t mode, int32_t *out) {
    if (!in || !out) return EM_ERR_NULL;
    if (n < 1) return EM_ERR_DIMS;
    if (mode != EM_OUT_ASSIGN && mode != EM_OUT_ACC) return EM_ERR_PARAM;
    em_k_onoff(in, n, mode == EM_OUT_ACC, out);
    return EM_OK;
}
