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

em_status_t em_lmu_s8_s16(int16_t *m, const int8_t *u, const int16_t *a, int a_shift, const int32_t *b,
                          int b_shift, int n_u, int order, int16_t *scratch) {
    if (!m || !u || !a || !b || !scratch) return EM_ERR_NULL;
    if (n_u < 1 || order < 1 || order > (int)EM_MAX_DIM) return EM_ERR_DIMS;
    if (a_shift < 1 || a_shift > 62 || b_shift < 0 || b_shift > 62) return EM_ERR_PARAM;
    em_k_lmu(m, u, a, a_shift, b, b_shift, n_u, order, scratch);
    return EM_OK;
}
