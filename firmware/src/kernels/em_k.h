/* The kernel variants of em_graph.h (em_graph_kernel_t EM_K_x: function em_k_x), internal: the bodies of the public
 * kernels of em_kernels.h without their argument checks. The graph runtime calls these directly: every argument
 * it passes was checked once, when em_graph_parse accepted the blob (docs/graph.md: dims, dtypes, counts, shifts,
 * decays, flags), or comes from a blob em_graph_bind trusts; checking it again on every step would cost each
 * requantizing kernel a pass over its shifts per call and the image the code. The public functions
 * (em_kernels.h) check, then call these. Semantics, shapes and ranges: em_kernels.h; acc = EM_OUT_ACC. */
#ifndef EM_K_H
#define EM_K_H

#include "em_kernels.h"

void em_k_fc_s8(const int8_t *in, const int8_t *w, const int32_t *bias, const int32_t *mult, const int8_t *shift,
                int in_dim, int out_dim, int acc, int32_t *out);
void em_k_fc_s16(const int16_t *in, const int8_t *w, const int32_t *bias, const int32_t *mult, const int8_t *shift,
                 int in_dim, int out_dim, int acc, int32_t *out);
void em_k_fc_s8_packed(const int8_t *in, const uint8_t *w, int wbits, const int32_t *bias, const int32_t *mult,
                       const int8_t *shift, int in_dim, int out_dim, int acc, int32_t *out);
void em_k_fc_s16_packed(const int16_t *in, const uint8_t *w, int wbits, const int32_t *bias, const int32_t *mult,
                        const int8_t *shift, int in_dim, int out_dim, int acc, int32_t *out);
void em_k_conv1d_s8(const int8_t *in, int8_t *ring, int32_t *head, const int8_t *w, const int32_t *bias,
                    const int32_t *mult, const int8_t *shift, int c_in, int c_out, int k, int acc, int32_t *out);
void em_k_conv1d_packed(const int8_t *in, int8_t *ring, int32_t *head, const uint8_t *w, int wbits,
                        const int32_t *bias, const int32_t *mult, const int8_t *shift, int c_in, int c_out, int k,
                        int acc, int32_t *out);
void em_k_fc_s8_events(const int8_t *in, const int8_t *w, const int32_t *bias, const int32_t *mult,
                       const int8_t *shift, int in_dim, int out_dim, int acc, int16_t *events, int32_t *out);
void em_k_fc_s8_packed_events(const int8_t *in, const uint8_t *w, int wbits, const int32_t *bias,
                              const int32_t *mult, const int8_t *shift, int in_dim, int out_dim, int acc,
                              int16_t *events, int32_t *out);
/* func SAT, RELU or LUT (lut then not NULL) */
void em_k_act_s8(const int32_t *in, int n, em_act_t func, const int8_t *lut, int8_t *out);
/* func SAT or RELU (any other value: RELU) */
void em_k_act_s16(const int32_t *in, int n, em_act_t func, int16_t *out);
void em_k_lif(const int32_t *cur, int16_t *mem, int16_t *syn, const int16_t *beta, const int16_t *alpha,
              const int16_t *thr, int n, int8_t *spk);
void em_k_leaky(const int32_t *in, const int16_t *beta, int n, int16_t *trace);
void em_k_lmu(int16_t *m, const int8_t *u, const int16_t *a, int a_shift, const int32_t *b, int b_shift, int n_u,
              int order, int16_t *scratch);
/* em_k_lmu for an A the parser found LEGENDRE-structured (docs/graph.md): the same values in O(order) a row. */
void em_k_lmu_legendre(int16_t *m, const int8_t *u, const int16_t *a, int a_shift, const int32_t *b, int b_shift,
                       int n_u, int order, int16_t *scratch);
void em_k_add_s8(const int8_t *in, int n, int32_t mult, int shift, int acc, int32_t *out);
void em_k_add_s16(const int16_t *in, int n, int32_t mult, int shift, int acc, int32_t *out);
void em_k_onoff(const int16_t *in, int n, int acc, int32_t *out);
void em_k_spike(const int16_t *mem, const int16_t *thr, int n, int8_t *out);
void em_k_sensor(const int16_t *in, int channels, int decim, const int32_t *offset, const int32_t *mult,
                 const int8_t *shift, int8_t *out);
void em_k_logmel(const int16_t *pcm, int16_t *history, int8_t *out, int win, int hop, int n_fft, int n_mels,
                 const int16_t *window, const int32_t *t1, const int16_t *filterbank, const int32_t *band_quant,
                 int32_t *scratch);

/* The public kernels' shared checks: dims in [1, EM_MAX_DIM], mode ASSIGN or ACC, every shift in [1, 62]. */
static inline em_status_t em_k_check_requant(int in_dim, int out_dim, em_out_mode_t mode, const int8_t *shift) {
    if (in_dim < 1 || out_dim < 1 || in_dim > (int)EM_MAX_DIM || out_dim > (int)EM_MAX_DIM) return EM_ERR_DIMS;
    if (mode != EM_OUT_ASSIGN && mode != EM_OUT_ACC) return EM_ERR_PARAM;
    for (int o = 0; o < out_dim; o++) {
        if (shift[o] < 1 || shift[o] > 62) return EM_ERR_PARAM; /* outside it the shift is undefined */
    }
    return EM_OK;
}

#endif /* EM_K_H */
