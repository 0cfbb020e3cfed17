/* LMU memory update m <- A m + B u per encoder neuron, int16 state with saturation. */
#include "em_kernels.h"
#include "em_intops_inline.h"

/* sum_j a[j] * b[j] over n int16 pairs in int64 (|sum| <= 2^40 for n <= EM_MAX_DIM). */
#if defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32 && defined(__GNUC__)
#include <arm_acle.h>
/* Cortex-M4 DSP path: SMLALD does two 16x16 MACs into a 64-bit accumulator; exact, like the scalar loop. */
static int64_t dot_s16(const int16_t *a, const int16_t *b, int n) {
    int64_t acc = 0;
    int j = 0;
    for (; j + 2 <= n; j += 2) {
        int16x2_t wa, wb;
        __builtin_memcpy(&wa, a + j, 4); /* rows of A are only 2-byte aligned when order is odd: fine on v7-M */
        __builtin_memcpy(&wb, b + j, 4);
        acc = __smlald(wa, wb, acc);
    }
    if (j < n) acc += (int32_t)a[j] * (int32_t)b[j];
    return acc;
}
#else
static int64_t dot_s16(const int16_t *a, const int16_t *b, int n) {
    int64_t acc = 0;
    for (int j = 0; j < n; j++) acc += (int32_t)a[j] * (int32_t)b[j];
    return acc;
}
#endif

size_t em_lmu_memory_buffer_size(int order) { return order > 0 ? (size_t)order * sizeof(int16_t) : 0; }

/* m [n_u][order] in place, u [n_u] spikes, a [order][order] Q(a_shift), b [order], scratch [order] int16. */
em_status_t em_lmu_memory_s16(int16_t *m, const int8_t *u, const int16_t *a, int a_shift, const int32_t *b,
                              int n_u, int order, int16_t *scratch) {
    if (!m || !u || !a || !b || !scratch) return EM_ERR_NULL;
    if (n_u < 1 || order < 1 || order > (int)EM_MAX_DIM) return EM_ERR_DIMS;
    if (a_shift < 1 || a_shift > 62) return EM_ERR_PARAM;
    for (int c = 0; c < n_u; c++) {
        int16_t *row = m + (size_t)c * (size_t)order; /* m[c][:] */
        /* the update reads every old m[c][j] for each i, so keep the old row aside */
        for (int j = 0; j < order; j++) scratch[j] = row[j];
        for (int i = 0; i < order; i++) {
            const int16_t *ai = a + (size_t)i * (size_t)order; /* a[i][:] */
            int64_t acc = dot_s16(ai, scratch, order); /* |acc| <= 1024 * 2^30 = 2^40 */
            int64_t v = em_rshift_round_bounded_i(acc, a_shift) + (u[c] ? b[i] : 0);
            row[i] = em_sat16_i(v);
        }
    }
    return EM_OK;
}
