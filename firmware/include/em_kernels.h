/* edgemem kernels: CMSIS-NN-style contracts. Explicit dims and quant parameters, a status return,
 * no allocation; anything needing scratch has a *_buffer_size(). Shapes in comments. */
#ifndef EM_KERNELS_H
#define EM_KERNELS_H

#include "edgemem.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Integer primitives (the single C copy of edgemem's integer rules). */
int32_t em_requant(int32_t acc, int32_t mult, int shift);      /* sat32((acc*mult + 2^(shift-1)) >> shift) */
int64_t em_rshift_round(int64_t x, int shift);                  /* (x + 2^(shift-1)) >> shift, shift >= 1 */
int16_t em_sat16(int64_t x);
int32_t em_sat32(int64_t x);

/* Fully connected s8 -> s32 accumulate -> requant, added into acc_out with int32 saturation:
 *   acc_out[o] = sat32(acc_out[o] + requant(bias[o] + sum_i w[o][i] * in[i], mult[o], shift[o]))
 * in [in_dim], w [out_dim][in_dim], bias/mult [out_dim], shift [out_dim], acc_out [out_dim]. */
em_status_t em_fc_s8(const int8_t *in, const int8_t *w, const int32_t *bias, const int32_t *mult,
                     const int8_t *shift, int in_dim, int out_dim, int32_t *acc_out);

/* LIF (syn == NULL) or CuBa step on int16 state, snntorch semantics with reset by subtraction:
 *   reset[i] = mem[i] > thr[i] ? thr[i] : 0                         (from the previous membrane)
 *   c        = sat16(cur[i])
 *   CuBa:      s = rshift_round(alpha[i]*syn[i], 15) + c; syn[i] = sat16(s); c = s
 *              (the membrane integrates the unsaturated s: snntorch's Synaptic update, then a clamp of both)
 *   mem[i]   = sat16(rshift_round(beta[i]*mem[i], 15) + c - reset[i])
 *   spk[i]   = mem[i] > thr[i]
 * cur [n], mem/syn [n], beta/alpha/thr [n], spk [n] (0 or 1). */
em_status_t em_lif_s16(const int32_t *cur, int16_t *mem, int16_t *syn, const int16_t *beta,
                       const int16_t *alpha, const int16_t *thr, int n, int8_t *spk);

/* LMU memory update with saturation, one row of memory per encoder neuron c:
 *   m[c][i] = sat16(rshift_round(sum_j a[i][j] * m_old[c][j], a_shift) + (u[c] ? b[i] : 0))
 * m [n_u][order] (in place), u [n_u] spikes, a [order][order] Q(a_shift), b [order], scratch [order]. */
size_t em_lmu_memory_buffer_size(int order);
em_status_t em_lmu_memory_s16(int16_t *m, const int8_t *u, const int16_t *a, int a_shift, const int32_t *b,
                              int n_u, int order, int16_t *scratch);

#ifdef __cplusplus
}
#endif
#endif /* EM_KERNELS_H */
