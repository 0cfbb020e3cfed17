/* Event-driven FC for sparse int8 input (spikes): the nonzero inputs are listed once, then every output sums only
 * their weights, so a layer whose input spiked in s of in_dim places costs s * out_dim MACs instead of
 * in_dim * out_dim. Same formula as em_fc_s8_mode / em_fc_s8_packed: integer sums are exact in any order.
 * Two functions, s8 and packed weights, so a firmware links only the one its model uses. */
#include "em_k.h"
#include "em_intops_inline.h"
#include "em_packed_inline.h" /* also em_dot_inline.h: EM_DOT_MVE, arm_mve.h */

size_t em_fc_events_buffer_size(int in_dim) { return in_dim > 0 ? (size_t)in_dim * sizeof(int16_t) : 0; }

/* The event list: events[0 .. n) = indices of the nonzero inputs (n returned), *binary = every one of them is 1. */
static inline int list_events(const int8_t *in, int in_dim, int16_t *events, int *binary) {
    int k = 0, all_one = 1;
    for (int i = 0; i < in_dim; i++) {
        if (in[i] != 0) {
            events[k++] = (int16_t)i;
            all_one &= in[i] == 1;
        }
    }
    *binary = all_one;
    return k;
}

#ifdef EM_DOT_MVE
/* Helium (MVE, Cortex-M55): sum_k row[ev[k]] (binary) or sum_k row[ev[k]] * in[ev[k]] over the n listed events,
 * 8 a pass: the event indices (< EM_MAX_DIM, read as u16 byte offsets) gather the weights (and inputs) with VLDRB.S16,
 * VADDVA / VMLADAVA sum them exactly into the int32 (|sum| <= 2^24); the last pass is VCTP-predicated (its lanes
 * past n gather nothing and add 0). The same sums as the scalar loops below. */
static inline int32_t vdot_events(const int8_t *row, const int8_t *in, const int16_t *events, int n, int binary) {
    int32_t dot = 0;
    if (binary) {
        for (int k = 0; k < n; k += 8) {
            const mve_pred16_t p = vctp16q((uint32_t)(n - k));
            const uint16x8_t idx = vldrhq_z_u16((const uint16_t *)(events + k), p);
            dot = vaddvaq_s16(dot, vldrbq_gather_offset_z_s16(row, idx, p));
        }
    } else {
        for (int k = 0; k < n; k += 8) {
            const mve_pred16_t p = vctp16q((uint32_t)(n - k));
            const uint16x8_t idx = vldrhq_z_u16((const uint16_t *)(events + k), p);
            dot = vmladavaq_s16(dot, vldrbq_gather_offset_z_s16(row, idx, p), vldrbq_gather_offset_z_s16(in, idx, p));
        }
    }
    return dot;
}
#endif

/* in [in_dim] s8, w [out_dim][in_dim] s8, bias/mult [out_dim] s32, shift [out_dim] s8, events [in_dim] s16
 * scratch (em_fc_events_buffer_size; garbage afterwards), out [out_dim] s32. */
void em_k_fc_s8_events(const int8_t *in, const int8_t *w, const int32_t *bias, const int32_t *mult,
                       const int8_t *shift, int in_dim, int out_dim, int acc, int16_t *events, int32_t *out) {
    int binary;
    const int n = list_events(in, in_dim, events, &binary);
    for (int o = 0; o < out_dim; o++) {
        const int8_t *row = w + (size_t)o * (size_t)in_dim;
#ifdef EM_DOT_MVE
        const int32_t dot = vdot_events(row, in, events, n, binary);
#else
        int32_t dot = 0; /* |dot| <= 1024 * 128 * 128 = 2^24 */
        if (binary) { /* spikes: every listed input is 1, the sum is the listed weights' */
            for (int k = 0; k < n; k++) dot += row[events[k]];
        } else {
            for (int k = 0; k < n; k++) dot += (int32_t)row[events[k]] * in[events[k]];
        }
#endif
        em_store16_i(&out[o], em_requant16(em_add_sat32_i(bias[o], dot), mult[o], shift[o]), acc);
    }
}

em_status_t em_fc_s8_events(const int8_t *in, const int8_t *w, const int32_t *bias, const int32_t *mult,
                            const int8_t *shift, int in_dim, int out_dim, em_out_mode_t mode, int16_t *events,
                            int32_t *out) {
    if (!in || !w || !bias || !mult || !shift || !events || !out) return EM_ERR_NULL;
    const em_status_t st = em_k_check_requant(in_dim, out_dim, mode, shift);
    if (st != EM_OK) return st;
    em_k_fc_s8_events(in, w, bias, mult, shift, in_dim, out_dim, mode == EM_OUT_ACC, events, out);
    return EM_OK;
}

/* sat32(bias + dot), requantized, stored (or accumulated) for rows o .. o + 3 */
static inline void store4(int32_t *out, const int32_t *bias, const int32_t *mult, const int8_t *shift, int o,
                          int32_t d0, int32_t d1, int32_t d2, int32_t d3, int acc) {
    em_store16_i(&out[o], em_requant16(em_add_sat32_i(bias[o], d0), mult[o], shift[o]), acc);
    em_store16_i(&out[o + 1], em_requant16(em_add_sat32_i(bias[o + 1], d1), mult[o + 1], shift[o + 1]), acc);
    em_store16_i(&out[o + 2], em_requant16(em_add_sat32_i(bias[o + 2], d2), mult[o + 2], shift[o + 2]), acc);
    em_store16_i(&out[o + 3], em_requant16(em_add_sat32_i(bias[o + 3], d3), mult[o + 3], shift[o + 3]), acc);
}

/* As em_k_fc_s8_events with w [out_dim] packed rows of in_dim elements at wbits 4 or 2 (in_dim a multiple of
 * 8 / wbits: rows start on whole bytes); the same integers, sum_k w[e_k] * in[e_k] in any order. Both widths are
 * written out (no width test per event). S4: the events are listed low nibbles first, then high nibbles (element e
 * in group e % 2), so each group's weights come out of their bytes with a constant shift (one SBFX on the M4); for
 * spikes the list holds the byte (e / 2) itself: per event and row the index, the byte, SBFX and the add, about 6
 * instructions where em_packed_get's index arithmetic took 14. S2 keeps one list in input order (four groups a row
 * cost more loop than they save at the spike rates of the shipped models, ~10 %); for spikes each entry holds the
 * byte and the left shift that brings the field to bits 31..30, computed once for all rows (then per weight: LDRB,
 * LSL, ADD with ASR #30 on the M4). Spikes run four rows a pass (the event's index loaded once for four weights;
 * the rows past a multiple of four one by one): about 3.75 instructions per event and row for S4, 4.25 for S2,
 * against 5 for the int8 event FC. */
void em_k_fc_s8_packed_events(const int8_t *in, const uint8_t *w, int wbits, const int32_t *bias,
                              const int32_t *mult, const int8_t *shift, int in_dim, int out_dim, int acc,
                              int16_t *events, int32_t *out) {
    const size_t row_bytes = (size_t)in_dim * (size_t)wbits / 8u;
    int n = 0, binary = 1;
    if (wbits == 2) {
        n = list_events(in, in_dim, events, &binary);
        int o = 0;
        if (binary) {
            /* spikes: the byte and the left shift that puts the field at bits 31..30, byte << 5 | (30 - 2 * (e % 4)),
             * once for every row (byte <= 255: fits int16) */
            for (int k = 0; k < n; k++) events[k] = (int16_t)((events[k] >> 2) << 5 | (30 - ((events[k] & 3) << 1)));
            for (; o + 4 <= out_dim; o += 4) { /* four rows a pass: one event decode for four weights */
                const uint8_t *r0 = w + (size_t)o * row_bytes, *r1 = r0 + row_bytes, *r2 = r1 + row_bytes,
                              *r3 = r2 + row_bytes;
                int32_t d0 = 0, d1 = 0, d2 = 0, d3 = 0;
                for (int k = 0; k < n; k++) {
                    const uint32_t v = (uint16_t)events[k], b = v >> 5, sh = v & 31u;
                    d0 = em_add_s2_top(d0, (uint32_t)r0[b] << sh);
                    d1 = em_add_s2_top(d1, (uint32_t)r1[b] << sh);
                    d2 = em_add_s2_top(d2, (uint32_t)r2[b] << sh);
                    d3 = em_add_s2_top(d3, (uint32_t)r3[b] << sh);
                }
                store4(out, bias, mult, shift, o, d0, d1, d2, d3, acc);
            }
        }
        for (; o < out_dim; o++) {
            const uint8_t *row = w + (size_t)o * row_bytes;
            int32_t dot = 0; /* |dot| <= 1024 * 2 * 128 */
            if (binary) {
                for (int k = 0; k < n; k++) {
                    const uint32_t v = (uint16_t)events[k];
                    dot = em_add_s2_top(dot, (uint32_t)row[v >> 5] << (v & 31u));
                }
            } else {
                for (int k = 0; k < n; k++) {
                    const int e = events[k];
                    dot += em_s2_at((uint32_t)row[e >> 2] >> ((e & 3) << 1)) * in[e];
                }
            }
            em_store16_i(&out[o], em_requant16(em_add_sat32_i(bias[o], dot), mult[o], shift[o]), acc);
        }
        return;
    }
    int high = 0; /* events[0 .. high): low nibbles, [high .. n): high nibbles */
    for (int g = 0; g < 2; g++) {
        if (g == 1) high = n;
        for (int i = g; i < in_dim; i += 2) {
            if (in[i] != 0) {
                events[n++] = (int16_t)i;
                binary &= in[i] == 1;
            }
        }
    }
    int o = 0;
    if (binary) {
        for (int k = 0; k < n; k++) events[k] = (int16_t)(events[k] >> 1);
        for (; o + 4 <= out_dim; o += 4) { /* four rows a pass: each event's byte index loaded once for four */
            const uint8_t *r0 = w + (size_t)o * row_bytes, *r1 = r0 + row_bytes, *r2 = r1 + row_bytes,
                          *r3 = r2 + row_bytes;
            int32_t d0 = 0, d1 = 0, d2 = 0, d3 = 0;
            for (int k = 0; k < high; k++) {
                const int e = events[k];
                d0 += em_s4_at(r0[e]);
                d1 += em_s4_at(r1[e]);
                d2 += em_s4_at(r2[e]);
                d3 += em_s4_at(r3[e]);
            }
            for (int k = high; k < n; k++) {
                const int e = events[k];
                d0 += em_s4_hi(r0[e]);
                d1 += em_s4_hi(r1[e]);
                d2 += em_s4_hi(r2[e]);
                d3 += em_s4_hi(r3[e]);
            }
            store4(out, bias, mult, shift, o, d0, d1, d2, d3, acc);
        }
    }
    for (; o < out_dim; o++) {
        const uint8_t *row = w + (size_t)o * row_bytes;
        int32_t dot = 0; /* |dot| <= 1024 * 8 * 128 = 2^20 */
        if (binary) {
            for (int k = 0; k < high; k++) dot += em_s4_at(row[events[k]]);
            for (int k = high; k < n; k++) dot += em_s4_hi(row[events[k]]);
        } else {
            for (int k = 0; k < high; k++) dot += em_s4_at(row[events[k] >> 1]) * in[events[k]];
            for (int k = high; k < n; k++) dot += em_s4_at((uint32_t)row[events[k] >> 1] >> 4) * in[events[k]];
        }
        em_store16_i(&out[o], em_requant16(em_add_sat32_i(bias[o], dot), mult[o], shift[o]), acc);
    }
}

em_status_t em_fc_s8_packed_events(const int8_t *in, const uint8_t *w, int wbits, const int32_t *bias,
                                   const int32_t *mult, const int8_t *shift, int in_dim, int out_dim,
                                   em_out_mode_t mode, int16_t *events, int32_t *out) {
    if (!in || !w || !bias || !mult || !shift || !events || !out) return EM_ERR_NULL;
    if (wbits != 4 && wbits != 2) return EM_ERR_PARAM;
    if (in_dim > 0 && in_dim % (8 / wbits) != 0) return EM_ERR_DIMS; /* packed rows start on whole bytes */
    const em_status_t st = em_k_check_requant(in_dim, out_dim, mode, shift);
    if (st != EM_OK) return st;
    em_k_fc_s8_packed_events(in, w, wbits, bias, mult, shift, in_dim, out_dim, mode == EM_OUT_ACC, events, out);
    return EM_OK;
}
