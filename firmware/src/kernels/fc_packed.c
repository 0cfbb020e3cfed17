/* FC and causal CONV1D with packed sub-byte weights (S4 / S2, docs/graph.md "Packed weights"): the same formulas
 * as em_fc_s8_mode, em_fc_s16 and em_conv1d_causal_s8, the weights unpacked on the fly (no arena scratch), two rows a
 * pass in the offset form of em_packed_inline.h (the input's sum, taken once, removes the weights' offset). On the
 * M4/M7/M33 (EM_DOT_ASM) an input of at most EM_PK_MAX_IN elements (a CONV1D: its k * c_in window, taps of whole
 * words) is paired once per call into a stack buffer and the rows' whole words run in em_pk_rowpairs (one asm loop
 * over all row pairs, about 1.3 instructions a MAC) or em_dot2_pk_words; longer inputs pair per row pair
 * (em_dot2_packed_s8/_s16). Elsewhere, and for the tail of a row, scalar (or Helium) code. */
#include "em_k.h"
#include "em_intops_inline.h"
#include "em_packed_inline.h"

/* The public kernels' checks: wbits, dims (rows of `row` weights fill whole bytes), mode, shifts. */
static em_status_t check_packed(int wbits, int in_dim, int out_dim, int row, em_out_mode_t mode,
                                const int8_t *shift) {
    if (wbits != 4 && wbits != 2) return EM_ERR_PARAM;
    if (in_dim < 1 || out_dim < 1 || in_dim > (int)EM_MAX_DIM || out_dim > (int)EM_MAX_DIM) return EM_ERR_DIMS;
    if (row % (8 / wbits) != 0) return EM_ERR_DIMS; /* a row would start inside a byte */
    return em_k_check_requant(in_dim, out_dim, mode, shift);
}

/* Rows o and, if pair, o + 1: out = store16(requant16(sat32(bias + dot))). dot = the signed sum (the offset form's sum
 * minus the offset), exact in int32: |dot| <= n * 8 * 32768 = 2^28 for n <= 1024 int16 inputs (a CONV1D's window of
 * k * c_in <= 2^14 int8 inputs: 2^24), so sat32(bias + dot) is one QADD (em_add_sat32_i) where the int64 sum and its
 * saturation took about ten instructions a row. */
static inline void store_pair(int32_t *out, const int32_t *bias, const int32_t *mult, const int8_t *shift, int o,
                              int pair, int32_t dot0, int32_t dot1, int acc) {
    em_store16_i(&out[o], em_requant16(em_add_sat32_i(bias[o], dot0), mult[o], shift[o]), acc);
    if (pair) em_store16_i(&out[o + 1], em_requant16(em_add_sat32_i(bias[o + 1], dot1), mult[o + 1], shift[o + 1]), acc);
}

#ifdef EM_DOT_ASM
enum { PK_ROWS = 32 }; /* rows whose whole-word sums pk_rows takes in one call (a stack array of 33 int32) */

/* d[r] = the offset-form sum over the whole words (whole elements) of row r < rows (d[rows] written too when rows is
 * odd: the last row is paired with itself), pk the input's pairs. Rows of whole words only (every shipped shape):
 * em_pk_rowpairs, the row-pair loop in the asm; else one em_dot2_pk_words call per pair. */
static void pk_rows(const uint8_t *w, size_t row_bytes, int rows, int wbits, const uint32_t *pk, int whole,
                    int32_t *d) {
    const uint32_t words = (uint32_t)whole * (uint32_t)wbits / 32u;
    int r = 0;
    if (rows >= 2 && words > 0 && (size_t)words * 4u == row_bytes && (wbits == 2 || words % 2u == 0)) {
        em_pk_rowpairs(w, wbits, pk, words, (uint32_t)rows / 2u, d);
        r = rows & ~1;
        w += (size_t)r * row_bytes;
    }
    for (; r < rows; r += 2, w += 2 * row_bytes)
        em_dot2_pk_words(w, r + 1 < rows ? w + row_bytes : w, wbits, pk, words, &d[r], &d[r + 1]);
}

static inline void store_one(int32_t *out, const int32_t *bias, const int32_t *mult, const int8_t *shift, int o,
                             int32_t dot, int acc) {
    em_store16_i(&out[o], em_requant16(em_add_sat32_i(bias[o], dot), mult[o], shift[o]), acc);
}

/* The rows of a packed FC (or CONV1D window) of n inputs from its pairs pk (whole elements of them,
 * em_pk_pairs_int8_t, or em_pk_pairs_int16_t when whole == n, then |off| and |dot| < 2^27) and the offset
 * correction off = half * sum(x); x: the int8 inputs, read only for the rows' tails (whole < n). */
static void pk_fc_s8(const uint8_t *w, int wbits, const uint32_t *pk, int whole, const int8_t *x, int n, int32_t off,
                     const int32_t *bias, const int32_t *mult, const int8_t *shift, int out_dim, int acc,
                     int32_t *out) {
    const size_t row_bytes = (size_t)n * (size_t)wbits / 8u, tail_at = (size_t)whole * (size_t)wbits / 8u;
    for (int o = 0; o < out_dim; o += PK_ROWS) {
        const int rows = out_dim - o < PK_ROWS ? out_dim - o : PK_ROWS;
        int32_t d[PK_ROWS + 1];
        pk_rows(w + (size_t)o * row_bytes, row_bytes, rows, wbits, pk, whole, d);
        if (whole < n) /* the rows' last elements, fewer than a word's: scalar */
            for (int r = 0; r < rows; r += 2) {
                const uint8_t *w0 = w + (size_t)(o + r) * row_bytes + tail_at;
                int32_t t0, t1;
                em_dot2_packed_u_int8_t(w0, r + 1 < rows ? w0 + row_bytes : w0, wbits, x + whole, n - whole, &t0,
                                        &t1);
                d[r] += t0;
                d[r + 1] += t1;
            }
        for (int r = 0; r < rows; r++) store_one(out, bias, mult, shift, o + r, d[r] - off, acc);
    }
}
#endif

void em_k_fc_s8_packed(const int8_t *in, const uint8_t *w, int wbits, const int32_t *bias, const int32_t *mult,
                       const int8_t *shift, int in_dim, int out_dim, int acc, int32_t *out) {
    const size_t row_bytes = (size_t)in_dim * (size_t)wbits / 8u;
#ifdef EM_DOT_ASM
    if (in_dim <= EM_PK_MAX_IN) { /* the input paired once for all rows */
        uint32_t pk[EM_PK_MAX_IN / 2];
        int32_t sum;
        const int whole = em_pk_pairs_int8_t(in, in_dim, wbits, pk, &sum);
        pk_fc_s8(w, wbits, pk, whole, in, in_dim, em_packed_half(wbits) * sum, bias, mult, shift, out_dim, acc, out);
        return;
    }
#endif
    const int32_t off = em_packed_half(wbits) * em_sum_s8(in, in_dim); /* rows are whole bytes (checked) */
    for (int o = 0; o < out_dim; o += 2) {
        const int pair = o + 1 < out_dim; /* an odd last row pairs with itself */
        int32_t d[2];
        em_dot2_packed_s8(w + (size_t)o * row_bytes, w + (size_t)(o + pair) * row_bytes, wbits, in, in_dim,
                                &d[0], &d[1]);
        store_pair(out, bias, mult, shift, o, pair, d[0] - off, d[1] - off, acc);
    }
}

em_status_t em_fc_s8_packed(const int8_t *in, const uint8_t *w, int wbits, const int32_t *bias,
                            const int32_t *mult, const int8_t *shift, int in_dim, int out_dim, em_out_mode_t mode,
                            int32_t *out) {
    if (!in || !w || !bias || !mult || !shift || !out) return EM_ERR_NULL;
    const em_status_t st = check_packed(wbits, in_dim, out_dim, in_dim, mode, shift);
    if (st != EM_OK) return st;
    em_k_fc_s8_packed(in, w, wbits, bias, mult, shift, in_dim, out_dim, mode == EM_OUT_ACC, out);
    return EM_OK;
}

void em_k_fc_s16_packed(const int16_t *in, const uint8_t *w, int wbits, const int32_t *bias, const int32_t *mult,
                        const int8_t *shift, int in_dim, int out_dim, int acc, int32_t *out) {
    const size_t row_bytes = (size_t)in_dim * (size_t)wbits / 8u;
#ifdef EM_DOT_ASM
    if (in_dim <= EM_PK_MAX_IN && in_dim % (32 / wbits) == 0) {
        /* rows of whole words (the shipped shapes): the input re-paired once for all rows, all in int32
         * (|off| <= 8 * 160 * 2^15, |dot| <= 160 * 15 * 2^15); other rows pair per row pair below */
        uint32_t pk[EM_PK_MAX_IN / 2];
        int32_t sum;
        const int whole = em_pk_pairs_int16_t(in, in_dim, wbits, pk, &sum);
        pk_fc_s8(w, wbits, pk, whole, NULL, in_dim, em_packed_half(wbits) * sum, bias, mult, shift, out_dim, acc,
                 out);
        return;
    }
#endif
    const int64_t off = em_packed_half(wbits) * em_sum_s16(in, in_dim);
    for (int o = 0; o < out_dim; o += 2) {
        const int pair = o + 1 < out_dim;
        int64_t d[2];
        em_dot2_packed_s16(w + (size_t)o * row_bytes, w + (size_t)(o + pair) * row_bytes, wbits, in, in_dim,
                                 &d[0], &d[1]);
        store_pair(out, bias, mult, shift, o, pair, (int32_t)(d[0] - off), (int32_t)(d[1] - off), acc);
    }
}

em_status_t em_fc_s16_packed(const int16_t *in, const uint8_t *w, int wbits, const int32_t *bias,
                             const int32_t *mult, const int8_t *shift, int in_dim, int out_dim, em_out_mode_t mode,
                             int32_t *out) {
    if (!in || !w || !bias || !mult || !shift || !out) return EM_ERR_NULL;
    const em_status_t st = check_packed(wbits, in_dim, out_dim, in_dim, mode, shift);
    if (st != EM_OK) return st;
    em_k_fc_s16_packed(in, w, wbits, bias, mult, shift, in_dim, out_dim, mode == EM_OUT_ACC, out);
    return EM_OK;
}

void em_k_conv1d_packed(const int8_t *in, int8_t *ring, int32_t *head, const uint8_t *w, int wbits,
                        const int32_t *bias, const int32_t *mult, const int8_t *shift, int c_in, int c_out, int k,
                        int acc, int32_t *out) {
    const int past = k - 1;
    int h = 0; /* as em_conv1d_causal_s8: only the remainder of head indexes the ring */
    if (past > 0) {
        h = (int)(*head % past);
        if (h < 0) h += past;
    }
    const size_t row_bytes = (size_t)k * (size_t)c_in * (size_t)wbits / 8u;
    const int per = 8 / wbits;
#ifdef EM_DOT_ASM
    if (c_in % (32 / wbits) == 0 && k * c_in <= EM_PK_MAX_IN) {
        /* every tap whole words: the window's pairs tap after tap (the ring's oldest slot first, the input last),
         * so that a row (k taps back to back) is one FC row over them; the window's sum is the pairs' sums' */
        uint32_t pk[EM_PK_MAX_IN / 2];
        int32_t window = 0, sum;
        int slot = h;
        for (int j = 0; j <= past; j++) {
            em_pk_pairs_int8_t(j < past ? ring + (size_t)slot * (size_t)c_in : in, c_in, wbits,
                               pk + (size_t)j * (size_t)c_in / 2u, &sum);
            window += sum;
            if (j < past && ++slot == past) slot = 0;
        }
        pk_fc_s8(w, wbits, pk, k * c_in, NULL, k * c_in, em_packed_half(wbits) * window, bias, mult, shift, c_out,
                 acc, out);
    } else
#endif
    if (c_in % per == 0) { /* every tap starts on a byte: the offset form, two rows a pass */
        const size_t tap_bytes = (size_t)c_in / (size_t)per;
        /* the window is the ring (every slot, in any order) and the input: its sum removes the weights' offset */
        const int32_t window = em_sum_s8(in, c_in) + (past > 0 ? em_sum_s8(ring, past * c_in) : 0);
        const int32_t off = em_packed_half(wbits) * window;
        for (int o = 0; o < c_out; o += 2) {
            const int pair = o + 1 < c_out;
            const uint8_t *w0 = w + (size_t)o * row_bytes, *w1 = w + (size_t)(o + pair) * row_bytes;
            int32_t s[2] = {0, 0}, d[2];
            int slot = h;
            for (int j = 0; j <= past; j++) { /* tap j: frame t - past + j, the ring's oldest first; tap past: in */
                const int8_t *x = j < past ? ring + (size_t)slot * (size_t)c_in : in;
                em_dot2_packed_s8(w0 + (size_t)j * tap_bytes, w1 + (size_t)j * tap_bytes, wbits, x, c_in, &d[0],
                                        &d[1]);
                s[0] += d[0];
                s[1] += d[1];
                if (j < past && ++slot == past) slot = 0;
            }
            store_pair(out, bias, mult, shift, o, pair, s[0] - off, s[1] - off, acc);
        }
    } else {
        for (int o = 0; o < c_out; o++) {
            const uint8_t *wo = w + (size_t)o * row_bytes;
            int64_t sum = bias[o];
            int slot = h;
            for (int j = 0; j < past; j++) { /* tap j starts at element j * c_in of the row, maybe inside a byte */
                sum += em_dot_packed_s8(wo, (uint32_t)(j * c_in), wbits, ring + (size_t)slot * (size_t)c_in, c_in);
                if (++slot == past) slot = 0;
            }
            sum += em_dot_packed_s8(wo, (uint32_t)(past * c_in), wbits, in, c_in);
            em_store16_i(&out[o], em_requant16(em_sat32_i(sum), mult[o], shift[o]), acc);
        }
    }
    if (past > 0) {
        int8_t *dst = ring + (size_t)h * (size_t)c_in;
        for (int c = 0; c < c_in; c++) dst[c] = in[c];
        *head = h + 1 == past ? 0 : h + 1;
    }
}

em_status_t em_conv1d_causal_packed(const int8_t *in, int8_t *ring, int32_t *head, const uint8_t *w, int wbits,
                                    const int32_t *bias, const int32_t *mult, const int8_t *shift, int c_in,
                                    int c_out, int k, em_out_mode_t mode, int32_t *out) {
    if (!in || !w || !bias || !mult || !shift || !out) return EM_ERR_NULL;
    if (k > 1 && (!ring || !head)) return EM_ERR_NULL;
    if (k < 1 || k > 16) return EM_ERR_DIMS;
    const em_status_t st = check_packed(wbits, c_in, c_out, k * c_in, mode, shift);
    if (st != EM_OK) return st;
    em_k_conv1d_packed(in, ring, head, w, wbits, bias, mult, shift, c_in, c_out, k, mode == EM_OUT_ACC, out);
    return EM_OK;
}
