/* Packed sub-byte weights (docs/graph.md "Packed weights"), internal to the kernels: element e of an S4 tensor is
 * nibble e % 2 of byte e / 2 (low nibble first), of an S2 tensor bit pair e % 4 of byte e / 4 (low bits first),
 * two's complement. Sign extension by ((x & mask) ^ half) - half: plain integer arithmetic, so no
 * implementation-defined right shift of a negative value and no out-of-range conversion to int8_t. */
#ifndef EM_PACKED_INLINE_H
#define EM_PACKED_INLINE_H

#include <stdint.h>

static inline int32_t em_s4_at(uint32_t x) { return (int32_t)((x & 0xFu) ^ 8u) - 8; } /* low nibble of x */
static inline int32_t em_s2_at(uint32_t x) { return (int32_t)((x & 3u) ^ 2u) - 2; }   /* low 2 bits of x */

/* Element e of a packed tensor w of wbits (4 or 2) bits. */
static inline int32_t em_packed_get(const uint8_t *w, uint32_t e, int wbits) {
    if (wbits == 4) return em_s4_at((uint32_t)w[e >> 1] >> ((e & 1u) << 2));
    return em_s2_at((uint32_t)w[e >> 2] >> ((e & 3u) << 1));
}

/* sum_i w[first + i] * x[i] over n int8 inputs; exact in int32 for n <= 2^20 (|w| <= 8, |x| <= 128).
 * `first` need not start a byte (a CONV1D tap inside a row): elements before the next byte boundary and after the
 * last whole byte go one by one, whole bytes in between are unpacked together. */
static inline int32_t em_dot_packed_s8(const uint8_t *w, uint32_t first, int wbits, const int8_t *x, int n) {
    const uint32_t per = wbits == 4 ? 2u : 4u;
    int32_t acc = 0;
    int i = 0;
    for (; i < n && (first + (uint32_t)i) % per != 0; i++) acc += em_packed_get(w, first + (uint32_t)i, wbits) * x[i];
    const uint8_t *p = w + (first + (uint32_t)i) / per;
    if (wbits == 4) {
        for (; i + 2 <= n; i += 2, p++) {
            const uint32_t b = *p;
            acc += em_s4_at(b) * x[i] + em_s4_at(b >> 4) * x[i + 1];
        }
    } else {
        for (; i + 4 <= n; i += 4, p++) {
            const uint32_t b = *p;
            acc += em_s2_at(b) * x[i] + em_s2_at(b >> 2) * x[i + 1] + em_s2_at(b >> 4) * x[i + 2] +
                   em_s2_at(b >> 6) * x[i + 3];
        }
    }
    for (; i < n; i++) acc += em_packed_get(w, first + (uint32_t)i, wbits) * x[i];
    return acc;
}

/* The offset form, for whole bytes of weights (n a multiple of 8 / wbits): sum_i u[i] * x[i] with u = w + half in
 * [0, 2^wbits), half = 2^(wbits-1). The signed sum is this minus half * sum_i x[i], which the caller computes once per
 * input vector: no sign extension per weight, one xor per byte (b ^ 0x88 or b ^ 0xAA adds half to every field) and
 * a mask or shift per weight. Two rows at once (w0, w1: the input is loaded once for both, as em_dot2_s8 does). */
static inline int32_t em_packed_half(int wbits) { return wbits == 4 ? 8 : 2; }

#define EM_PACKED_DOT2_U(T, ACC)                                                                                    \
    static inline void em_dot2_packed_u_##T(const uint8_t *w0, const uint8_t *w1, int wbits, const T *x, int n,    \
                                            ACC *a0, ACC *a1) {                                                    \
        ACC s0 = 0, s1 = 0;                                                                                        \
        if (wbits == 4) {                                                                                          \
            int i = 0;                                                                                             \
            for (; i + 4 <= n; i += 4, w0 += 2, w1 += 2) { /* two bytes a pass: half the loop overhead */          \
                const uint32_t b0 = ((uint32_t)w0[0] | (uint32_t)w0[1] << 8) ^ 0x8888u;                            \
                const uint32_t b1 = ((uint32_t)w1[0] | (uint32_t)w1[1] << 8) ^ 0x8888u;                            \
                const ACC x0 = x[i], x1 = x[i + 1], x2 = x[i + 2], x3 = x[i + 3];                                  \
                s0 += (ACC)(b0 & 0xFu) * x0 + (ACC)((b0 >> 4) & 0xFu) * x1 + (ACC)((b0 >> 8) & 0xFu) * x2 +      \
                      (ACC)(b0 >> 12) * x3;                                                                        \
                s1 += (ACC)(b1 & 0xFu) * x0 + (ACC)((b1 >> 4) & 0xFu) * x1 + (ACC)((b1 >> 8) & 0xFu) * x2 +      \
                      (ACC)(b1 >> 12) * x3;                                                                        \
            }                                                                                                      \
            for (; i + 2 <= n; i += 2) {                                                                           \
                const uint32_t b0 = (uint32_t)*w0++ ^ 0x88u, b1 = (uint32_t)*w1++ ^ 0x88u;                        \
                const ACC x0 = x[i], x1 = x[i + 1];                                                                \
                s0 += (ACC)(b0 & 0xFu) * x0 + (ACC)(b0 >> 4) * x1;                                                 \
                s1 += (ACC)(b1 & 0xFu) * x0 + (ACC)(b1 >> 4) * x1;                                                 \
            }                                                                                                      \
        } else {                                                                                                   \
            int i = 0;                                                                                             \
            for (; i + 4 <= n; i += 4) {                                                                           \
                const uint32_t b0 = (uint32_t)*w0++ ^ 0xAAu, b1 = (uint32_t)*w1++ ^ 0xAAu;                         \
                const ACC x0 = x[i], x1 = x[i + 1], x2 = x[i + 2], x3 = x[i + 3];                                  \
                s0 += (ACC)(b0 & 3u) * x0 + (ACC)((b0 >> 2) & 3u) * x1 + (ACC)((b0 >> 4) & 3u) * x2 +             \
                      (ACC)(b0 >> 6) * x3;                                                                         \
                s1 += (ACC)(b1 & 3u) * x0 + (ACC)((b1 >> 2) & 3u) * x1 + (ACC)((b1 >> 4) & 3u) * x2 +             \
                      (ACC)(b1 >> 6) * x3;                                                                         \
            }                                                                                                      \
        }                                                                                                          \
        *a0 = s0;                                                                                                  \
        *a1 = s1;                                                                                                  \
    }

/* int8 inputs: |sum| <= n * 15 * 128, exact in int32 for n <= 2^20; int16 inputs in int64. */
EM_PACKED_DOT2_U(int8_t, int32_t)
EM_PACKED_DOT2_U(int16_t, int64_t)
#undef EM_PACKED_DOT2_U

static inline int32_t em_sum_s8(const int8_t *x, int n) {
    int32_t s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    return s;
}

static inline int64_t em_sum_s16(const int16_t *x, int n) {
    int64_t s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    return s;
}

#endif /* EM_PACKED_INLINE_H */
