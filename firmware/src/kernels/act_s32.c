/* Activations from int32: saturate, ReLU, or a 256-entry table (tanh, sigmoid, GELU built by the exporter). */
#include "em_kernels.h"
#include "em_intops_inline.h"

static int32_t clamp32(int32_t x, int32_t lo, int32_t hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* in [n] s32, lut [256] s8 (LUT only), out [n] s8. */
em_status_t em_act_s32_s8(const int32_t *in, int n, em_act_t func, const int8_t *lut, int8_t *out) {
    if (!in || !out || (func == EM_ACT_LUT && !lut)) return EM_ERR_NULL;
    if (n < 1) return EM_ERR_DIMS;
    switch (func) {
    case EM_ACT_SAT:
        for (int i = 0; i < n; i++) out[i] = (int8_t)clamp32(in[i], INT8_MIN, INT8_MAX);
        return EM_OK;
    case EM_ACT_RELU:
        for (int i = 0; i < n; i++) out[i] = (int8_t)clamp32(in[i], 0, INT8_MAX);
        return EM_OK;
    case EM_ACT_LUT:
        /* sat8(in) + 128 is in [0, 255] for every int32: the table is never indexed outside */
        for (int i = 0; i < n; i++) out[i] = lut[clamp32(in[i], INT8_MIN, INT8_MAX) + 128];
        return EM_OK;
    }
    return EM_ERR_PARAM;
}

/* in [n] s32, out [n] s16. */
em_status_t em_act_s32_s16(const int32_t *in, int n, em_act_t func, int16_t *out) {
    if (!in || !out) return EM_ERR_NULL;
    if (n < 1) return EM_ERR_DIMS;
    switch (func) {
    case EM_ACT_SAT:
        for (int i = 0; i < n; i++) out[i] = em_sat16_32i(in[i]);
        return EM_OK;
    case EM_ACT_RELU:
        for (int i = 0; i < n; i++) out[i] = (int16_t)clamp32(in[i], 0, INT16_MAX);
        return EM_OK;
    case EM_ACT_LUT:
        break; /* tables are int8 only */
    }
    return EM_ERR_PARAM;
}
