/* edgemem kernels: CMSIS-NN-style contracts. Explicit dims and quant parameters, a status return,
 * no allocation; anything needing scratch has a *_buffer_size(). Shapes in comments. */
#ifndef EM_KERNELS_H
#define EM_KERNELS_H

#include "edgemem.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Integer primitives: the rules of edgemem.h, as functions (the kernels use the inline copies in
 * src/kernels/em_intops_inline.h; these wrap them for callers and tests). */
int32_t em_requant(int32_t acc, int32_t mult, int shift); /* sat32((acc * mult + 2^(shift-1)) >> shift), 64-bit
                                                             product; shift clamped to [1, 62] */
int64_t em_rshift_round(int64_t x, int shift);             /* (x + 2^(shift-1)) >> shift without overflow;
                                                             shift clamped to [1, 63] */
int16_t em_sat16(int64_t x);
int32_t em_sat32(int64_t x);

/* LIF (syn == NULL) or CuBa step on int16 state, snntorch semantics with reset by subtraction, int16 after every
 * operation (as TFLite's ADD and SUB compute it):
 *   reset[i] = mem[i] > thr[i] ? thr[i] : 0                         (from the previous membrane)
 *   c        = sat16(cur[i])
 *   CuBa:      c = sat16(rshift_round(alpha[i] * syn[i], 15) + c); syn[i] = c
 *              (the membrane integrates the stored, saturated syn)
 *   mem[i]   = sat16(sat16(rshift_round(beta[i] * mem[i], 15) - reset[i]) + c)
 *   spk[i]   = mem[i] > thr[i]
 * cur [n] s32, mem/syn [n] s16, beta/alpha [n] Q15, thr [n] s16, spk [n] s8 (0 or 1). */
em_status_t em_lif_s16(const int32_t *cur, int16_t *mem, int16_t *syn, const int16_t *beta,
                       const int16_t *alpha, const int16_t *thr, int n, int8_t *spk);

/* ---- graph kernels (semantics in docs/graph.md, one kernel per op) ----
 * Ops producing requantized results r[o] (FC, CONV1D, ADD, ONOFF) write int16 values into their s32 out: every
 * contribution saturates to int16, and so does the sum it is added to (TFLite's int16 FULLY_CONNECTED outputs and
 * ADD compute exactly this):
 *   EM_OUT_ASSIGN  out[o] = sat16(r[o])
 *   EM_OUT_ACC     out[o] = sat16(out[o] + sat16(r[o]))
 * r[o] itself is computed without intermediate saturation except where a formula says sat32. */
typedef enum { EM_OUT_ASSIGN = 0, EM_OUT_ACC = 1 } em_out_mode_t;
/* ACT functions (op flags bits 1-2). */
typedef enum { EM_ACT_SAT = 0, EM_ACT_RELU = 1, EM_ACT_LUT = 2 } em_act_t;

/* FC, int8 input: r[o] = requant(sat32(bias[o] + sum_i w[o][i] * in[i]), mult[o], shift[o]), stored by mode.
 * in [in_dim] s8, w [out_dim][in_dim] s8, bias/mult [out_dim] s32, shift [out_dim] s8 in [1, 62],
 * out [out_dim] s32 (int16 values). */
em_status_t em_fc_s8_mode(const int8_t *in, const int8_t *w, const int32_t *bias, const int32_t *mult,
                          const int8_t *shift, int in_dim, int out_dim, em_out_mode_t mode, int32_t *out);
/* FC, int16 input, same formula with an int64 dot product (1024 * 128 * 32768 = 2^32 would overflow int32).
 * in [in_dim] s16, w [out_dim][in_dim] s8, bias/mult [out_dim] s32, shift [out_dim] s8, out [out_dim] s32. */
em_status_t em_fc_s16(const int16_t *in, const int8_t *w, const int32_t *bias, const int32_t *mult,
                      const int8_t *shift, int in_dim, int out_dim, em_out_mode_t mode, int32_t *out);

/* Causal conv1d over time, one frame per call, past frames in a ring (state, zero after reset):
 *   r[o] = requant(sat32(bias[o] + sum_{j<k} sum_c w[o][k-1-j][c] * f(t-j)[c]), mult[o], shift[o])
 * with f(t) = in. For k > 1, h = *head mod (k-1) (non-negative): frame t-(k-1)+j (j < k-1) is ring[(h+j) % (k-1)];
 * afterwards ring[h] = in and *head = (h+1) % (k-1). For k = 1, ring and head are unused (may be NULL).
 * in [c_in] s8, ring [k-1][c_in] s8, head [1] s32, w [c_out][k][c_in] s8, bias/mult [c_out] s32,
 * shift [c_out] s8, out [c_out] s32; k in [1, 16]. */
size_t em_conv1d_ring_size(int c_in, int k); /* bytes of ring: (k-1) * c_in */
em_status_t em_conv1d_causal_s8(const int8_t *in, int8_t *ring, int32_t *head, const int8_t *w,
                                const int32_t *bias, const int32_t *mult, const int8_t *shift, int c_in, int c_out,
                                int k, em_out_mode_t mode, int32_t *out);

/* Packed sub-byte weights (docs/graph.md "Packed weights"): the FC and CONV1D formulas above with w packed at wbits
 * = 4 (S4: element e in nibble e % 2 of byte e / 2, low first) or 2 (S2: bit pair e % 4 of byte e / 4), two's
 * complement. Every output row starts on a byte: in_dim (FC) or k * c_in (CONV1D) must be a multiple of 8 / wbits
 * (else EM_ERR_DIMS); wbits other than 4 or 2: EM_ERR_PARAM. w holds out_dim * row * wbits / 8 bytes, any alignment.
 * Other arguments as em_fc_s8_mode, em_fc_s16 and em_conv1d_causal_s8. */
em_status_t em_fc_s8_packed(const int8_t *in, const uint8_t *w, int wbits, const int32_t *bias,
                            const int32_t *mult, const int8_t *shift, int in_dim, int out_dim, em_out_mode_t mode,
                            int32_t *out);
em_status_t em_fc_s16_packed(const int16_t *in, const uint8_t *w, int wbits, const int32_t *bias,
                             const int32_t *mult, const int8_t *shift, int in_dim, int out_dim, em_out_mode_t mode,
                             int32_t *out);
em_status_t em_conv1d_causal_packed(const int8_t *in, int8_t *ring, int32_t *head, const uint8_t *w, int wbits,
                                    const int32_t *bias, const int32_t *mult, const int8_t *shift, int c_in,
                                    int c_out, int k, em_out_mode_t mode, int32_t *out);

/* FC, event-driven (op flag EVENTS): the FC formula summed over the nonzero inputs only, listed first in `events`.
 * For spike input (0/1) a layer costs (spikes x out_dim) MACs. em_fc_s8_events: w s8 [out_dim][in_dim];
 * em_fc_s8_packed_events: w packed rows at wbits 4 or 2 (in_dim a multiple of 8 / wbits, else EM_ERR_DIMS; other
 * wbits: EM_ERR_PARAM). Other arguments as em_fc_s8_mode; events [in_dim] s16 scratch of
 * em_fc_events_buffer_size(in_dim) bytes, garbage afterwards. */
size_t em_fc_events_buffer_size(int in_dim);
em_status_t em_fc_s8_events(const int8_t *in, const int8_t *w, const int32_t *bias, const int32_t *mult,
                            const int8_t *shift, int in_dim, int out_dim, em_out_mode_t mode, int16_t *events,
                            int32_t *out);
em_status_t em_fc_s8_packed_events(const int8_t *in, const uint8_t *w, int wbits, const int32_t *bias,
                                   const int32_t *mult, const int8_t *shift, int in_dim, int out_dim,
                                   em_out_mode_t mode, int16_t *events, int32_t *out);

/* ACT to int8: SAT out = sat8(in); RELU out = clamp(in, 0, 127); LUT out = lut[sat8(in) + 128].
 * in [n] s32, lut [256] s8 (LUT only, else may be NULL), out [n] s8. */
em_status_t em_act_s32_s8(const int32_t *in, int n, em_act_t func, const int8_t *lut, int8_t *out);
/* ACT to int16: SAT out = sat16(in); RELU out = clamp(in, 0, 32767) (no LUT: EM_ERR_PARAM). in [n], out [n]. */
em_status_t em_act_s32_s16(const int32_t *in, int n, em_act_t func, int16_t *out);

/* Leaky integrator (trace is state): trace[i] = sat16(rshift_round(beta[i] * trace[i], 15) + in[i]), the sum
 * exact (in[i] is not saturated to int16 first). in [n] s32, beta [n] Q15, trace [n] s16. */
em_status_t em_leaky_s16(const int32_t *in, const int16_t *beta, int n, int16_t *trace);

/* LMU memory update, int8 input u (spikes are the 0/1 case): two int16 terms and their int16 sum,
 *   am = sat16(rshift_round(sum_j a[i][j] * m_old[c][j], a_shift))      (the dot product exact in int64)
 *   bu = sat16(rshift_round(u[c] * b[i], b_shift))                       (rshift_round(x, 0) = x)
 *   m[c][i] = sat16(am + bu)
 * m [n_u][order] s16 in place, u [n_u] s8, a [order][order] s16 Q(a_shift), b [order] s32, scratch [order] s16
 * (em_lmu_memory_buffer_size(order) bytes; garbage afterwards). a_shift in [1, 62], b_shift in [0, 62] (the blob
 * restricts both to 30). */
size_t em_lmu_memory_buffer_size(int order);
em_status_t em_lmu_s8_s16(int16_t *m, const int8_t *u, const int16_t *a, int a_shift, const int32_t *b,
                          int b_shift, int n_u, int order, int16_t *scratch);

/* ADD (rescaled residual): r[i] = requant(in[i], mult, shift). in [n] s8 or s16, out [n] s32. */
em_status_t em_add_requant_s8(const int8_t *in, int n, int32_t mult, int shift, em_out_mode_t mode, int32_t *out);
em_status_t em_add_requant_s16(const int16_t *in, int n, int32_t mult, int shift, em_out_mode_t mode,
                               int32_t *out);

/* ONOFF (on/off cells): r[i] = in[i], r[n + i] = -in[i]. in [n] s16, out [2n] s32. */
em_status_t em_onoff_s16(const int16_t *in, int n, em_out_mode_t mode, int32_t *out);

/* SPIKE: out[i] = mem[i] > thr[i] (0 or 1), em_lif_s16's spike rule without the update: read before the LIF, the
 * previous step's spikes (1 after a reset where thr < 0). mem [n] s16, thr [n] s16, out [n] s8. */
em_status_t em_spike_s16(const int16_t *mem, const int16_t *thr, int n, int8_t *out);

/* ---- input stages (docs/graph.md "Input stages"): raw samples in, the model's int8 input out ----
 * SENSOR (edgemem/graph/sensor.py is the spec): D samples of C channels of int16 sensor counts -> one step of int8:
 *   sum[c] = sum_d in[d * C + c];  out[c] = sat8(requant(sat32(sum[c] - offset[c]), mult[c], shift[c]))
 * in [D][C] s16 sample-major, offset/mult [C] s32, shift [C] s8, out [C] s8. EM_ERR_DIMS unless C, D >= 1 and
 * C * D <= EM_MAX_DIM; EM_ERR_PARAM unless every mult >= 2^30 and shift in [1, 62]. */
em_status_t em_sensor_s16(const int16_t *in, int channels, int decim, const int32_t *offset, const int32_t *mult,
                          const int8_t *shift, int8_t *out);
/* em_sensor_counts_f32 (float readings -> counts for SENSOR) is in em_graph.h: a firmware feeding raw readings
 * needs it beside em_graph_stage_step. */

/* Log-mel front end (edgemem/graph/logmel.py is the spec: every rounding, bound and the table layout), one hop:
 * frame = history ++ pcm, history <- frame[hop:], out[b] = the band's int8 feature (quantized log-mel, normalized
 * per band). pcm [hop] s16, history [win - hop] s16 (state, zero at the start of a stream; may be NULL when
 * win == hop), out [n_mels] s8, window [win] s16 Q15, t1 [n_fft/2 + 1 + 65] s32 (cos Q30, then the log2 table
 * Q26), filterbank s16 (per band: start bin, bin count, Q15 weights), band_quant [3 * n_mels + 3] s32 (per band
 * offset, multiplier, shift; then zero point, eps low and high words), scratch of em_logmel_buffer_size() bytes,
 * 4-byte aligned (garbage afterwards). Dims: n_fft a power of two in [64, 1024], 1 <= hop <= win <= n_fft,
 * 1 <= n_mels <= 256, else EM_ERR_DIMS (and a buffer size of 0); a NULL pointer: EM_ERR_NULL; a misaligned
 * scratch: EM_ERR_ALIGN; a band outside bins 0 .. n_fft/2, a negative weight, t1[0] != 2^30 or t1[n_fft/4] != 0
 * (cos 0, sin 0), a twiddle outside [-2^30, 2^30] or longer than one (cos^2 + sin^2 > 2^60 + 2^32), a log2 table
 * entry outside [0, 2^26] or below the one before, a shift outside [1, 62], a negative multiplier, |offset| > 2^27,
 * a zero point outside int8 or an eps outside [2^32, 2^56): EM_ERR_PARAM (the blob parser's LOGMEL rules). Cost on the Cortex-M4 (QEMU instruction count, win 480, n_fft 512, 32 bands):
 * about 84k instructions per hop; RAM: history 2 * (win - hop), scratch 4 * (n_fft + 2) bytes, < 100 B of stack. */
size_t em_logmel_buffer_size(int win, int hop, int n_fft, int n_mels); /* 4 * (n_fft + 2) */
em_status_t em_logmel_s16(const int16_t *pcm, int16_t *history, int8_t *out, int win, int hop, int n_fft,
                          int n_mels, const int16_t *window, const int32_t *t1, const int16_t *filterbank,
                          const int32_t *band_quant, void *scratch);

#ifdef __cplusplus
}
#endif
#endif /* EM_KERNELS_H */
