/* Causal conv1d over time, streaming: one int8 frame per call, the k-1 previous frames in a ring buffer. */
#include "em_k.h"
#include "em_intops_inline.h"
#include "em_dot_inline.h"

size_t em_conv1d_ring_size(int c_in, int k) {
    return (c_in > 0 && k > 1) ? (size_t)(k - 1) * (size_t)c_in : 0;
}

/* in [c_in] s8, ring [k-1][c_in] s8, head [1] s32, w [c_out][k][c_in] s8, bias/mult [c_out] s32,
 * shift [c_out] s8, out [c_out] s32. */
void em_k_conv1d_s8(const int8_t *in, int8_t *ring, int32_t *head, const int8_t *w, const int32_t *bias,
                    const int32_t *mult, const int8_t *shift, int c_in, int c_out, int k, int acc, int32_t *out) {
    const int past = k - 1;
    /* head is state in the arena: whatever it holds, index the ring only with its remainder in [0, k-1) */
    int h = 0;
    if (past > 0) {
        h = (int)(*head % past);
        if (h < 0) h += past;
    }
    const size_t row = (size_t)k * (size_t)c_in; /* w[o] is [k][c_in] */
    int o = 0;
    for (; o + 4 <= c_out; o += 4) { /* four output channels a pass: each frame word is loaded and widened once */
        const int8_t *w0 = w + (size_t)o * row;
        /* each tap's dot is at most 2^24, k <= 16 of them 2^28: exact in int32, so sat32(bias + d) is one QADD */
        int32_t d[4] = {0, 0, 0, 0};
        int slot = h;
        for (int j = 0; j <= past; j++) { /* tap j pairs with frame t-(k-1)+j: ring[(h+j) % (k-1)], then in */
            const int8_t *f = j < past ? ring + (size_t)slot * (size_t)c_in : in;
            em_dot4_s8_acc(w0 + (size_t)j * (size_t)c_in, row, f, c_in, d);
            if (j < past && ++slot == past) slot = 0;
        }
        for (int r = 0; r < 4; r++)
            em_store16_i(&out[o + r], em_requant16(em_add_sat32_i(bias[o + r], d[r]), mult[o + r], shift[o + r]), acc);
    }
    for (; o < c_out; o += 2) { /* the last c_out % 4 channels two at a time */
        const int pair = o + 1 < c_out;  /* an odd last channel pairs with itself */
        const int8_t *w0 = w + (size_t)o * row, *w1 = w0 + (size_t)pair * row;
        int64_t sum[2] = {bias[o], bias[o + pair]};
        int slot = h;
        for (int j = 0; j <= past; j++) {
            const int8_t *f = j < past ? ring + (size_t)slot * (size_t)c_in : in;
            int32_t d0, d1;
            em_dot2_s8(w0 + (size_t)j * (size_t)c_in, w1 + (size_t)j * (size_t)c_in, f, c_in, &d0, &d1);
            sum[0] += d0;
            sum[1] += d1;
            if (j < past && ++slot == past) slot = 0;
        }
        for (int r = 0; r <= pair; r++)
            em_store16_i(&out[o + r], em_requant16(em_sat32_i(sum[r]), mult[o + r], shift[o + r]), acc);
    }
    if (past > 0) {
        /* the oldest frame's slot takes the current one */
        int8_t *dst = ring + (size_t)h * (size_t)c_in;
        for (int c = 0; c < c_in; c++) dst[c] = in[c];
        *head = h + 1 == past ? 0 : h + 1;
    }
}

em_status_t em_conv1d_causal_s8(const int8_t *in, int8_t *ring, int32_t *head, const int8_t *w,
                                const int32_t *bias, const int32_t *mult, const int8_t *shift, int c_in, int c_out,
                                int k, em_out_mode_t mode, int32_t *out) {
    if (!in || !w || !bias || !mult || !shift || !out) return EM_ERR_NULL;
    if (k > 1 && (!ring || !head)) return EM_ERR_NULL;
    if (k < 1 || k > 16) return EM_ERR_DIMS;
    const em_status_t st = em_k_check_requant(c_in, c_out, mode, shift);
    if (st != EM_OK) return st;
    em_k_conv1d_s8(in, ring, head, w, bias, mult, shift, c_in, c_out, k, mode == EM_OUT_ACC, out);
    return EM_OK;
}
