/* LMU memory update m <- A m + B u with int8 input u (a requantized current, not a spike) and a B shift. */
#include "em_k.h"
#include "em_intops_inline.h"
#include "em_dot_inline.h"

size_t em_lmu_memory_buffer_size(int order) { return order > 0 ? (size_t)order * sizeof(int16_t) : 0; }

/* rshift_round(x, k + 1) for k in [1, 31] when |floor(x / 2^k)| <= 2^30: y = floor(x / 2^k) fits int32 and is the
 * low word of the 64-bit shift, (lo >> k) | (hi << (32 - k)); rshift_round(x, k + 1) = floor((y + 1) / 2)
 * (em_rsr_sat16_i's rule) and y + 1 cannot overflow. Five instructions on the M4 against a 64-bit shift. */
static inline int32_t lmu_rsr_fit(int64_t x, int k) {
    const uint32_t lo = (uint32_t)(uint64_t)x, hi = (uint32_t)((uint64_t)x >> 32);
    return em_asr32((int32_t)((lo >> k) | (hi << (32 - k))) + 1, 1);
}

#if defined(EM_DOT_ASM) && defined(__thumb2__)
#define LMU_ROWS_ASM 1
/* One block of 8 MACs: LDM loads four words (8 codes) of the A row and four of the old m, four SMLALD add their
 * pair products into the 64-bit sum r5:r4. 24 bytes (every instruction 32-bit: .w), which the entry offset counts
 * on. */
#define LMU_LDM8                                                                                                   \
    "ldmia.w r6!, {r0-r3}\n\t"                                                                                     \
    "ldmia r7!, {r8-r11}\n\t"                                                                                      \
    "smlald r4, r5, r0, r8\n\t"                                                                                    \
    "smlald r4, r5, r1, r9\n\t"                                                                                    \
    "smlald r4, r5, r2, r10\n\t"                                                                                   \
    "smlald r4, r5, r3, r11\n\t"
/* Every row of A against the old m x (both 4-byte aligned, order a multiple of 8), for k = a_shift - 1 in [10, 29]:
 * row[i] = sat16(sat16(rshift_round(sum_j a[i][j] x[j], k + 1)) + row[i]), row[i] holding the B term. The sum is exact
 * in int64 (|sum| <= 2^40), so lmu_rsr_fit's rule applies (|sum / 2^k| <= 2^30). p: order * 2 (bytes), k, 32 - k, 1 +
 * 24 * ((4 - order / 8) & 3) and 2^k. The loop does four blocks a pass and each row enters it that many bytes in (the
 * PC loaded from the frame; + 1: Thumb), so order / 8 blocks run without a test per block. Each row's sum starts at
 * 2^k, so the low word of its shift by k is y + 1 (|sum| + 2^k < 2^41: no overflow). A's rows are contiguous, so one
 * pointer (r6) walks all of A; x restarts each row. Per row: 6 instructions per 8 MACs, the loop test once per 32
 * MACs, 12 around (0.81 a MAC in the loop: one row at a time, as two rows' LDMs and sums need more than the 14
 * registers there are). Written as a whole function (naked: its own prologue) since the loop holds 14 registers, more
 * than an asm statement can ask of gcc; the row's end, x, k and the entry live on its stack. */
#define LMU_ARG __attribute__((unused)) /* read by the asm: r0 to r3 */
__attribute__((naked, noinline)) static void lmu_rows_m4(int16_t *row LMU_ARG, const int16_t *a LMU_ARG,
                                                           const int16_t *x LMU_ARG, const int32_t *p LMU_ARG) {
    /* frame: [sp] 2^k, 0, x, entry (one LDM starts a row: sum, x and the jump into the loop), k, 32 - k, end of row */
    __asm volatile("push {r4-r11, lr}\n\t"
                   "sub sp, sp, #28\n\t"
                   "ldr r4, [r3]\n\t"
                   "add r12, r2, r4\n\t" /* end of x */
                   "add r4, r0, r4\n\t"  /* end of row */
                   "str r4, [sp, #24]\n\t"
                   "ldr r4, [r3, #16]\n\t"
                   "movs r5, #0\n\t"
                   "strd r4, r5, [sp]\n\t"
                   "str r2, [sp, #8]\n\t"
                   "ldr r4, [r3, #12]\n\t"
                   "adr.w r5, 2f\n\t"
                   "add r4, r4, r5\n\t"
                   "str r4, [sp, #12]\n\t"
                   "ldrd r4, r5, [r3, #4]\n\t"
                   "strd r4, r5, [sp, #16]\n\t"
                   "mov lr, r0\n\t"
                   "mov r6, r1\n"
                   "1:\n\t"
                   "ldmia.w sp, {r4, r5, r7, pc}\n" /* the sum starts at 2^k: y + 1 below without an add */
                   "2:\n\t" LMU_LDM8 LMU_LDM8 LMU_LDM8 LMU_LDM8 "cmp r7, r12\n\t"
                   "bne 2b\n\t"
                   "ldrd r0, r1, [sp, #16]\n\t"
                   "lsr r4, r4, r0\n\t"
                   "lsl r5, r5, r1\n\t"
                   "orr r4, r4, r5\n\t"
                   "ssat r4, #16, r4, asr #1\n\t"
                   "ldrh r2, [lr]\n\t"
                   "qadd16 r4, r4, r2\n\t" /* low halfword: sat16(A term + B term), the one stored */
                   "strh r4, [lr], #2\n\t"
                   "ldr r0, [sp, #24]\n\t"
                   "cmp lr, r0\n\t"
                   "bne 1b\n\t"
                   "add sp, sp, #28\n\t"
                   "pop {r4-r11, pc}\n\t");
}
#endif

/* b clamped to int24. For b_shift <= 8 the B term does not change: |b| >= 2^23 and u != 0 give |u b / 2^b_shift| >=
 * 2^15, a saturated term, and the clamped b (+-2^23 or 2^23 - 1, same sign) saturates it the same way; u = 0 gives
 * 0 either way. Then |u b| <= 2^30: int32. */
static inline int32_t lmu_sat24(int32_t x) {
#ifdef EM_SAT_DSP
    return __ssat(x, 24);
#else
    return x > 0x7FFFFF ? 0x7FFFFF : x < -0x800000 ? -0x800000 : x;
#endif
}

/* scratch = the old row, row[i] = sat16(rshift_round(u b[i], b_shift)) (the B terms; |u b| <= 2^38), one loop per
 * kind of shift so that none branches per element. b_shift in [9, 30]: lmu_rsr_fit (|u b / 2^(b_shift-1)| <=
 * 2^30). [1, 8]: with b clamped to int24 (lmu_sat24) u b is an int32 MUL and the rounding floor((floor(u b /
 * 2^(b_shift-1)) + 1) / 2) an ASR, an add and SSAT's shift. 0: sat16(u b), the same clamp. Larger shifts (the
 * public kernel takes up to 62): em_requant16. */
static void lmu_b_terms(int16_t *row, int16_t *scratch, int32_t uc, const int32_t *b, int b_shift, int order) {
    if (b_shift >= 9 && b_shift <= 30) {
        for (int i = 0; i < order; i++) {
            scratch[i] = row[i];
            row[i] = (int16_t)em_sat16_32i(lmu_rsr_fit((int64_t)uc * b[i], b_shift - 1));
        }
    } else if (b_shift >= 1 && b_shift <= 8) {
        for (int i = 0; i < order; i++) {
            scratch[i] = row[i];
            row[i] = (int16_t)em_sat16_32i(em_asr32(em_asr32(uc * lmu_sat24(b[i]), b_shift - 1) + 1, 1));
        }
    } else if (b_shift == 0) {
        for (int i = 0; i < order; i++) {
            scratch[i] = row[i];
            row[i] = (int16_t)em_sat16_32i(uc * lmu_sat24(b[i]));
        }
    } else {
        for (int i = 0; i < order; i++) {
            scratch[i] = row[i];
            row[i] = (int16_t)em_requant16(uc, b[i], b_shift); /* its contract: |u b| <= 2^62, shift >= 1 */
        }
    }
}

/* m [n_u][order] s16 in place, u [n_u] s8, a [order][order] Q(a_shift), b [order] s32, scratch [order] s16.
 * Per channel: the old row goes to scratch (the update reads every old m[c][j] for each i) and the row takes the B
 * terms, then each row i of A against scratch: m[c][i] = sat16(sat16(rshift_round(A m, a_shift)) + B term): int16
 * terms, then their saturated sum, as TFLite's BATCH_MATMULs and ADD (docs/tflite.md). The M4 (DSP, optimized
 * build) takes lmu_rows_m4 where it applies; otherwise em_dot_s16 a row (Helium on the M55). One row, not
 * em_dot2_s16's two: measured on the M55, two rows a pass cost kws_lmuformer 1,591 and har_l2mu 451 instructions a
 * step more (psmnist_lmu 245 less), and the order-2 test fixture more on every core. */
void em_k_lmu(int16_t *m, const int8_t *u, const int16_t *a, int a_shift, const int32_t *b, int b_shift, int n_u,
              int order, int16_t *scratch) {
    /* a_shift in [11, 30]: |A m| <= 2^40 (order <= 2^10), so |A m / 2^(a_shift - 1)| <= 2^30 (lmu_rsr_fit); every
     * shipped model has 15. */
    const int fast_a = a_shift >= 11 && a_shift <= 30;
#ifdef LMU_ROWS_ASM
    const int32_t p[5] = {2 * order, a_shift - 1, 33 - a_shift, 1 + 24 * ((4 - (order >> 3)) & 3),
                          (int32_t)1 << (a_shift - 1)};
    const int rows_asm = fast_a && (order & 7) == 0 && (((uintptr_t)a | (uintptr_t)scratch) & 3u) == 0u;
#endif
    for (int c = 0; c < n_u; c++) {
        int16_t *row = m + (size_t)c * (size_t)order; /* m[c][:] */
        const int32_t uc = u[c];
        lmu_b_terms(row, scratch, uc, b, b_shift, order);
#ifdef LMU_ROWS_ASM
        if (rows_asm) {
            lmu_rows_m4(row, a, scratch, p);
            continue;
        }
#endif
        const int16_t *ai = a; /* a[i][:] */
        for (int i = 0; i < order; i++, ai += order) {
            const int64_t acc = em_dot_s16(ai, scratch, order);
            const int32_t at = fast_a ? em_sat16_32i(lmu_rsr_fit(acc, a_shift - 1)) : em_rsr_sat16(acc, a_shift);
            row[i] = (int16_t)em_sat16_32i(at + row[i]);
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
