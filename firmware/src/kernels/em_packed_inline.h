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

/* The same with int16 inputs, in int64 (|sum| <= n * 2^18: int32 would do up to n = 2^13, int64 costs nothing
 * that matters on the scalar path and keeps the bound obvious). */
static inline int64_t em_dot_packed_s16(const uint8_t *w, uint32_t first, int wbits, const int16_t *x, int n) {
    const uint32_t per = wbits == 4 ? 2u : 4u;
    int64_t acc = 0;
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

#endif /* EM_PACKED_INLINE_H */
