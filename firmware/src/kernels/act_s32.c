/* Activations from int32: saturate, ReLU, or a 256-entry table (tanh, sigmoid, GELU built by the exporter). */
#include "em_k.h"
#include "em_intops_inline.h"

static int32_t clamp32(int32_t x, int32_t lo, int32_t hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* in [n] s32, lut [256] s8 (LUT only), out [n] s8. */
void em_k_act_s8(const int32_t *in, int n, em_act_t func, const int8_t *lut, int8_t *out) {
    if (func == EM_ACT_LUT) {
        /* sat8(in) + 128 is in [0, 255] for every int32: the table is never indexed outside */
        for (int i = 0; i < n; i++) out[i] = lut[clamp32(in[i], INT8_MIN, INT8_MAX) + 128];
    } else {
        const int32_t lo = func == EM_ACT_RELU ? 0 : INT8_MIN;
        for (int i = 0; i < n; i++) out[i] = (int8_t)clamp32(in[i], lo, INT8_MAX);
    }
}

em_status_t em_act_s32_s8(const int32_t *in, int n, em_act_t func, const int8_t *lut, int8_t *out) {
    if (!in || !out || (func == EM_ACT_LUT && !lut)) return EM_ERR_NULL;
    if (n < 1) return EM_ERR_DIMS;
    if (func != EM_ACT_SAT && func != EM_ACT_RELU && func != EM_ACT_LUT) return EM_ERR_PARAM;
    em_k_act_s8(in, n, func, lut, out);
    return EM_OK;
}

/* in [n] s32, out [n] s16; func SAT, anything else RELU (the parser allows no LUT to int16). */
void em_k_act_s16(const int32_t *in, int n, em_act_t func, int16_t *out) {
    if (func == EM_ACT_SAT) {
        for (int i = 0; i < n; i++) out[i] = em_sat16_32i(in[i]);
    } else {
        for (int i = 0; i < n; i++) out[i] = (int16_t)clamp32(in[i], 0, INT16_MAX);
    }
}

em_status_t em_act_s32_s16(const int32_t *in, int n, em_act_t func, int16_t *out) {
    if (!in || !out) return EM_ERR_NULL;
    if (n < 1) return EM_ERR_DIMS;
    if (func != EM_ACT_SAT && func != EM_ACT_RELU) return EM_ERR_PARAM; /* tables are int8 only */
    em_k_act_s16(in, n, func, out);
    return EM_OK;
}
