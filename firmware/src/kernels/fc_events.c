/* Event-driven FC for sparse int8 input (spikes): the nonzero inputs are listed once, then every output sums only
 * their weights, so a layer whose input spiked in s of in_dim places costs s * out_dim MACs instead of
 * in_dim * out_dim. Same formula as em_fc_s8_mode / em_fc_s8_packed: integer sums are exact in any order. */
#include "em_kernels.h"
#include "em_intops_inline.h"
#include "em_packed_inline.h"

size_t em_fc_events_buffer_size(int in_dim) { return in_dim > 0 ? (size_t)in_dim * sizeof(int16_t) : 0; }

/* in [in_dim] s8, w [out_dim][in_dim] at wbits (8: s8; 4, 2: packed rows), bias/mult [out_dim] s32,
 * shift [out_dim] s8, events [in_dim] s16 scratch (em_fc_events_buffer_size; garbage afterwards),
 * out [out_dim] s32. */
em_status_t em_fc_s8_events(const int8_t *in, const uint8_t *w, int wbits, const int32_t *bias, const int32_t *mult,
                            const int8_t *shift, int in_dim, int out_dim, em_out_mode_t mode, int16_t *events,
                            int32_t *out) {
    if (!in || !w || !bias || !mult || !shift || !events || !out) return EM_ERR_NULL;
    if (in_dim < 1 || out_dim < 1 || in_dim > (int)EM_MAX_DIM || out_dim > (int)EM_MAX_DIM) return EM_ERR_DIMS;
    if (wbits != 8 && wbits != 4 && wbits != 2) return EM_ERR_PARAM;
    if (wbits != 8 && in_dim % (8 / wbits) != 0) return EM_ERR_DIMS; /* packed rows start on whole bytes */
    if (mode != EM_OUT_ASSIGN && mode != EM_OUT_ACC) return EM_ERR_PARAM;
    for (int o = 0; o < out_dim; o++) {
        if (shift[o] < 1 || shift[o] > 62) return EM_ERR_PARAM;
    }
    int n = 0, binary = 1;
    for (int i = 0; i < in_dim; i++) {
        if (in[i] != 0) {
            events[n++] = (int16_t)i;
            binary &= in[i] == 1;
        }
    }
    const int acc = mode == EM_OUT_ACC;
    const size_t row_bytes = (size_t)in_dim * (size_t)wbits / 8u;
    for (int o = 0; o < out_dim; o++) {
        const uint8_t *row = w + (size_t)o * row_bytes;
        int32_t dot = 0; /* |dot| <= 1024 * 128 * 128 = 2^24 */
        if (wbits == 8 && binary) { /* spikes: every listed input is 1, the sum is the listed weights' */
            const int8_t *r8 = (const int8_t *)row;
            int k = 0;
            for (; k + 2 <= n; k += 2) dot += (int32_t)r8[events[k]] + (int32_t)r8[events[k + 1]];
            if (k < n) dot += r8[events[k]];
        } else if (wbits == 8) {
            const int8_t *r8 = (const int8_t *)row;
            for (int k = 0; k < n; k++) dot += (int32_t)r8[events[k]] * in[events[k]];
        } else if (binary) {
            for (int k = 0; k < n; k++) dot += em_packed_get(row, (uint32_t)events[k], wbits);
        } else {
            for (int k = 0; k < n; k++) dot += em_packed_get(row, (uint32_t)events[k], wbits) * in[events[k]];
        }
        em_store32_i(&out[o], em_requant_i(em_sat32_i((int64_t)bias[o] + dot), mult[o], shift[o]), acc);
    }
    return EM_OK;
}
