/* LMU memory update m <- A m + B u with int8 input u (a requantized current, not a spike) and a B shift. */
#include "em_k.h"
#include "em_intops_inline.h"
#include "em_dot_inline.h"

size_t em_lmu_memory_buffer_size(int order) { return order > 0 ? (size_t)order * sizeof(int16_t) : 0; }

/* m [n_u][order] s16 in place, u [n_u] s8, a [order][order] Q(a_shift), b [order] s32, scratch [order] s16. */
void em_k_lmu(int16_t *m, const int8_t *u, const int16_t *a, int a_shift, const int32_t *b, int b_shift, int n_u,
              int order, int16_t *scratch) {
    for (int c = 0; c < n_u; c++) {
        int16_t *row = m + (size_t)c * (size_t)order; /* m[c][:] */
        /* the update reads every old m[c][j] for each i, so keep the old row aside; the row then holds the B terms */
        const int32_t uc = u[c];
        for (int i = 0; i < order; i++) {
            scratch[i] = row[i];
            const int64_t ub = (int64_t)uc * b[i]; /* |u * b| <= 2^38 */
            row[i] = (int16_t)(b_shift > 0 ? em_rsr_sat16(ub, b_shift) : em_sat16_i(ub));
        }
        int i = 0;
#ifdef EM_DOT_ASM /* the three-row pass pays on SMLALD only: elsewhere the two-row loop below is as fast */
        for (; i + 3 <= order; i += 3) { /* three rows of A a pass: the old row is read once for all three */
            int64_t acc[3]; /* |acc| <= 1024 * 2^30 = 2^40 */
            em_dot3_s16(a + (size_t)i * (size_t)order, (size_t)order, scratch, order, acc);
            for (int r = 0; r < 3; r++) row[i + r] = em_sat16_32i(em_rsr_sat16(acc[r], a_shift) + row[i + r]);
        }
#endif
        for (; i < order; i += 2) { /* two rows of A a pass (on the M4 the last order % 3 rows) */
            const int pair = i + 1 < order;     /* an odd last row pairs with itself (one code path) */
            const int16_t *ai = a + (size_t)i * (size_t)order; /* a[i][:] */
            int64_t acc[2];                                    /* |acc| <= 1024 * 2^30 = 2^40 */
            em_dot2_s16(ai, ai + (size_t)pair * (size_t)order, scratch, order, &acc[0], &acc[1]);
            /* int16 terms, then their saturated sum: as TFLite's BATCH_MATMULs and ADD (docs/tflite.md) */
            for (int r = 0; r <= pair; r++) row[i + r] = em_sat16_32i(em_rsr_sat16(acc[r], a_shift) + row[i + r]);
        }
    }
}

/* sat16(rshift_round(x, k + 1)) for |x| < 2^62 and k in [1, 29], in 32-bit words (this pass runs it once a row, so
 * a general 64-bit shift would be a large part of its cost): y = floor(x / 2^k) is (hi:lo) >> k; it fits int32 iff
 * hi >> k is the sign of y's low word, else x saturates by its sign; then rshift_round = floor((y + 1) / 2)
 * (em_rsr_sat16_i's rule, same values). */
static inline int32_t lmu_rsr_sat16_k(int64_t x, int k) {
    const int32_t hi = (int32_t)em_asr64(x, 32);
    const uint32_t lo = (uint32_t)(uint64_t)x;
    const int32_t y = (int32_t)((lo >> k) | ((uint32_t)hi << (32 - k))); /* modulo 2^32, as gcc documents */
    if (em_asr32(hi, k) != (y < 0 ? -1 : 0)) return hi < 0 ? INT16_MIN : INT16_MAX;
    return em_sat16_32i(em_asr32(y, 1) + (y & 1));
}

/* The same update for an A with the LEGENDRE structure. The blob parser checked it (graph_blob.c lmu_legendre_ok),
 * with a_shift >= 2 and |b[i]| < 2^22: a[i][j] = a[i][i] [j == i] + r_i s_ij, s_ij = -1 (j > i), (-1)^(i-j+1)
 * (j < i), r_i = -a[i][i+1] (a[i][i-1] on the last row). Then
 *   sum_j a[i][j] m_j = a[i][i] m_i + r_i (P_i - S_i),  P_i = sum_{j<i} (-1)^(i-j+1) m_j,  S_i = sum_{j>i} m_j,
 * with P_0 = 0, P_{i+1} = m_i - P_i and -S_i = (m_0 + ... + m_i) - T, T the row's sum: the very integer of the dense
 * sum, in O(order). Bounds (|m_j| <= 2^15, order <= 2^10): T, the prefix sums, P_i and S_i are sums of at most
 * 2^10 terms of magnitude <= 2^15, so < 2^25 in int32, and |P_i - S_i| <= sum_{j != i} |m_j| < 2^25;
 * |a[i][i] m_i| <= 2^30 and |r_i| <= 2^15, so |r_i (P_i - S_i)| < 2^40 and the int64 sum < 2^41 (the dense path's
 * bound is 2^40). The B term in int32: |2 u b[i]| <= 2^8 * 2^22 = 2^30, and rshift_round(u b, s) =
 * floor((floor(2 u b / 2^s) + 1) / 2) for every s >= 0 (s = 0 gives u b itself), so no branch on b_shift.
 * Pass 1 keeps the old row in scratch (as the dense path leaves it) and puts the B terms in the row; pass 2 adds A m. */
void em_k_lmu_legendre(int16_t *m, const int8_t *u, const int16_t *a, int a_shift, const int32_t *b, int b_shift,
                       int n_u, int order, int16_t *scratch) {
    const int k = a_shift - 1;
    for (int c = 0; c < n_u; c++) {
        int16_t *row = m + (size_t)c * (size_t)order;
        const int32_t u2 = 2 * (int32_t)u[c];
        int32_t total = 0;
        for (int i = 0; i < order; i++) {
            const int32_t mi = row[i];
            scratch[i] = (int16_t)mi;
            total += mi;
            row[i] = (int16_t)em_sat16_32i(em_asr32(em_asr32(u2 * b[i], b_shift) + 1, 1));
        }
        int32_t p = 0, neg_s = -total; /* P_i, and -S_i once m_i is added */
        const int16_t *d = a;          /* a[i][i] */
        for (int i = 0; i + 1 < order; i++, d += order + 1) {
            const int32_t mi = scratch[i];
            neg_s += mi;
            /* r_i (P_i - S_i) = a[i][i+1] * -(P_i - S_i) */
            const int64_t acc = (int64_t)d[1] * -(p + neg_s) + (int32_t)d[0] * mi;
            p = mi - p;
            row[i] = (int16_t)em_sat16_32i(lmu_rsr_sat16_k(acc, k) + row[i]);
        }
        const int32_t ml = scratch[order - 1]; /* the last row: S = 0, r = a[i][i-1] */
        const int64_t acc = (order > 1 ? (int64_t)d[-1] * p : 0) + (int32_t)d[0] * ml;
        row[order - 1] = (int16_t)em_sat16_32i(lmu_rsr_sat16_k(acc, k) + row[order - 1]);
    }
}

em_status_t em_lmu_s8_s16(int16_t *m, const int8_t *u, const int16_t *a, int a_shift, const int32_t *b,
                          int b_shift, int n_u, int order, int16_t *scratch) {
    if (!m || !u || !a || !b || !scratch) return EM_ERR_NULL;
    if (n_u < 1 || order < 1 || order > (int)EM_MAX_DIM) return EM_ERR_DIMS;
    if (a_shift < 1 || a_shift > 62 || b_shift < 0 || b_shift > 62) return EM_ERR_PARAM;
    em_k_lmu(m, u, a, a_shift, b, b_shift, n_u, order, scratch);
    return EM_OK;
}
