/* LMU memory update m <- A m + B u per encoder neuron, int16 state with saturation. */
#include "em_kernels.h"
#include "em_intops_inline.h"
#include "em_dot_inline.h"

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
            int64_t acc = em_dot_s16(ai, scratch, order); /* |acc| <= 1024 * 2^30 = 2^40 */
            /* int16 terms, then their saturated sum: as TFLite's BATCH_MATMULs and ADD (docs/tflite.md) */
            int64_t v = (int64_t)em_sat16_i(em_rshift_round_bounded_i(acc, a_shift)) + em_sat16_i(u[c] ? b[i] : 0);
            row[i] = em_sat16_i(v);
        }
    }
    return EM_OK;
}
