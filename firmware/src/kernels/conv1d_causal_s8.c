/* Causal conv1d over time, streaming: one int8 frame per call, the k-1 previous frames in a ring buffer. */
#include "em_kernels.h"
#include "em_intops_inline.h"
#include "em_dot_inline.h"

size_t em_conv1d_ring_size(int c_in, int k) {
    return (c_in > 0 && k > 1) ? (size_t)(k - 1) * (size_t)c_in : 0;
}

/* in [c_in] s8, ring [k-1][c_in] s8, head [1] s32, w [c_out][k][c_in] s8, bias/mult [c_out] s32,
 * shift [c_out] s8, out [c_out] s32. */
em_status_t em_conv1d_causal_s8(const int8_t *in, int8_t *ring, int32_t *head, const int8_t *w,
                                const int32_t *bias, const int32_t *mult, const int8_t *shift, int c_in, int c_out,
                                int k, em_out_mode_t mode, int32_t *out) {
    if (!in || !w || !bias || !mult || !shift || !out) return EM_ERR_NULL;
    if (k > 1 && (!ring || !head)) return EM_ERR_NULL;
    if (c_in < 1 || c_out < 1 || c_in > (int)EM_MAX_DIM || c_out > (int)EM_MAX_DIM || k < 1 || k > 16)
        return EM_ERR_DIMS;
    if (mode != EM_OUT_ASSIGN && mode != EM_OUT_ACC) return EM_ERR_PARAM;
    for (int o = 0; o < c_out; o++) {
        if (shift[o] < 1 || shift[o] > 62) return EM_ERR_PARAM;
    }
    const int acc = mode == EM_OUT_ACC, past = k - 1;
    /* head is state in the arena: whatever it holds, index the ring only with its remainder in [0, k-1) */
    int h = 0;
    if (past > 0) {
        h = (int)(*head % past);
        if (h < 0) h += past;
    }
    const size_t row = (size_t)k * (size_t)c_in; /* w[o] is [k][c_in] */
    int o = 0;
    for (; o + 2 <= c_out; o += 2) { /* two output channels a pass: each frame is read once for both */
        const int8_t *w0 = w + (size_t)o * row, *w1 = w0 + row;
        /* each tap's dot is exact in int32 (<= 2^24), k <= 16 of them plus the bias in int64 */
        int64_t sum0 = bias[o], sum1 = bias[o + 1];
        int slot = h;
        for (int j = 0; j <= past; j++) { /* tap j pairs with frame t-(k-1)+j: ring[(h+j) % (k-1)], then in */
            const int8_t *f = j < past ? ring + (size_t)slot * (size_t)c_in : in;
            int32_t d0, d1;
            em_dot2_s8(w0 + (size_t)j * (size_t)c_in, w1 + (size_t)j * (size_t)c_in, f, c_in, &d0, &d1);
            sum0 += d0;
            sum1 += d1;
            if (j < past && ++slot == past) slot = 0;
        }
        em_store32_i(&out[o], em_requant_i(em_sat32_i(sum0), mult[o], shift[o]), acc);
        em_store32_i(&out[o + 1], em_requant_i(em_sat32_i(sum1), mult[o + 1], shift[o + 1]), acc);
    }
    for (; o < c_out; o++) {
        const int8_t *wo = w + (size_t)o * row;
        int64_t sum = bias[o];
        int slot = h;
        for (int j = 0; j < past; j++) {
            sum += em_dot_s8(wo + (size_t)j * (size_t)c_in, ring + (size_t)slot * (size_t)c_in, c_in);
            if (++slot == past) slot = 0;
        }
        sum += em_dot_s8(wo + (size_t)past * (size_t)c_in, in, c_in); /* tap k-1: the current frame */
        em_store32_i(&out[o], em_requant_i(em_sat32_i(sum), mult[o], shift[o]), acc);
    }
    if (past > 0) {
        /* the oldest frame's slot takes the current one */
        int8_t *dst = ring + (size_t)h * (size_t)c_in;
        for (int c = 0; c < c_in; c++) dst[c] = in[c];
        *head = h + 1 == past ? 0 : h + 1;
    }
    return EM_OK;
}
