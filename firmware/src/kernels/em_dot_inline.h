/* Dot products shared by the kernels (internal). Integer arithmetic only, so the Cortex-M4 DSP paths (as
 * CMSIS-NN) and the Helium (MVE) paths of the Cortex-M55 equal the scalar loops bit for bit: every sum here is
 * exact in its accumulator (the bound is stated per function), and an exact integer sum does not depend on the
 * order of its terms. The unit tests run all three (host: scalar, QEMU M4: DSP, QEMU M55: MVE; test_dot.c checks
 * each function against the literal loop at every length 1..67, 1024 and the int8/int16 extremes).
 *
 * MVE (integer Helium, __ARM_FEATURE_MVE bit 0): one vector holds 16 int8 or 8 int16 lanes. Whole vectors go
 * unpredicated; the last partial vector (n not a multiple of the lane count) is loaded with a VCTP predicate and
 * the zeroing (_z) loads, so lanes past n read no memory and hold 0, which adds nothing. VMLADAVA (int8 x int8,
 * 16 MACs into an int32 scalar) and VMLALDAVA (int16 x int16, 8 MACs into an int64 scalar) accumulate exactly:
 * each product is formed in full and the sum kept in the 32- or 64-bit scalar, as the scalar loops do. */
#ifndef EM_DOT_INLINE_H
#define EM_DOT_INLINE_H

#include <stdint.h>

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1) && defined(__GNUC__)
#include <arm_mve.h>
#define EM_DOT_MVE 1
#elif defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32 && defined(__GNUC__)
#include <arm_acle.h>
#define EM_DOT_DSP 1
/* folds into SXTB16's rotate */
static inline uint32_t em_ror8(uint32_t x) { return (x >> 8) | (x << 24); }
#endif

/* sum_i a[i] * b[i] over n int8 pairs; exact in int32 for n <= 2^17 (|sum| <= n * 2^14). */
static inline int32_t em_dot_s8(const int8_t *a, const int8_t *b, int n) {
    int32_t acc = 0;
    int i = 0;
#if defined(EM_DOT_MVE)
    for (; i + 16 <= n; i += 16) acc = vmladavaq_s8(acc, vldrbq_s8(a + i), vldrbq_s8(b + i));
    if (i < n) { /* the partial last vector */
        const mve_pred16_t p = vctp8q((uint32_t)(n - i));
        acc = vmladavaq_s8(acc, vldrbq_z_s8(a + i, p), vldrbq_z_s8(b + i, p));
        i = n;
    }
#elif defined(EM_DOT_DSP)
    /* SXTB16 widens bytes 0,2 (and, rotated, 1,3) to int16 pairs, SMLAD does two MACs at once. */
    for (; i + 4 <= n; i += 4) {
        uint32_t wa, wb;
        __builtin_memcpy(&wa, a + i, 4); /* unaligned word loads are fine on v7-M */
        __builtin_memcpy(&wb, b + i, 4);
        acc = (int32_t)__smlad(__sxtb16(wa), __sxtb16(wb), (uint32_t)acc);
        acc = (int32_t)__smlad(__sxtb16(em_ror8(wa)), __sxtb16(em_ror8(wb)), (uint32_t)acc);
    }
#endif
    for (; i < n; i++) acc += (int32_t)a[i] * (int32_t)b[i];
    return acc;
}

/* Two rows against one input: *r0 = sum_i a0[i] * b[i], *r1 = sum_i a1[i] * b[i] (each exact in int32 as
 * em_dot_s8). The input's words are loaded and widened once for both rows (CMSIS-NN's two-row kernels do the same),
 * about 1.6 instead of 2.5 instructions a MAC on the M4. */
static inline void em_dot2_s8(const int8_t *a0, const int8_t *a1, const int8_t *b, int n, int32_t *r0,
                              int32_t *r1) {
    int32_t acc0 = 0, acc1 = 0;
    int i = 0;
#if defined(EM_DOT_MVE)
    for (; i + 16 <= n; i += 16) {
        const int8x16_t vb = vldrbq_s8(b + i);
        acc0 = vmladavaq_s8(acc0, vldrbq_s8(a0 + i), vb);
        acc1 = vmladavaq_s8(acc1, vldrbq_s8(a1 + i), vb);
    }
    if (i < n) {
        const mve_pred16_t p = vctp8q((uint32_t)(n - i));
        const int8x16_t vb = vldrbq_z_s8(b + i, p);
        acc0 = vmladavaq_s8(acc0, vldrbq_z_s8(a0 + i, p), vb);
        acc1 = vmladavaq_s8(acc1, vldrbq_z_s8(a1 + i, p), vb);
        i = n;
    }
#elif defined(EM_DOT_DSP)
    for (; i + 4 <= n; i += 4) {
        uint32_t w0, w1, wb;
        __builtin_memcpy(&w0, a0 + i, 4);
        __builtin_memcpy(&w1, a1 + i, 4);
        __builtin_memcpy(&wb, b + i, 4);
        const int16x2_t be = __sxtb16(wb), bo = __sxtb16(em_ror8(wb));
        acc0 = (int32_t)__smlad(__sxtb16(w0), be, (uint32_t)acc0);
        acc0 = (int32_t)__smlad(__sxtb16(em_ror8(w0)), bo, (uint32_t)acc0);
        acc1 = (int32_t)__smlad(__sxtb16(w1), be, (uint32_t)acc1);
        acc1 = (int32_t)__smlad(__sxtb16(em_ror8(w1)), bo, (uint32_t)acc1);
    }
#endif
    for (; i < n; i++) {
        acc0 += (int32_t)a0[i] * (int32_t)b[i];
        acc1 += (int32_t)a1[i] * (int32_t)b[i];
    }
    *r0 = acc0;
    *r1 = acc1;
}

/* sum_j a[j] * b[j] over n int16 pairs in int64 (|sum| <= n * 2^30). */
static inline int64_t em_dot_s16(const int16_t *a, const int16_t *b, int n) {
    int64_t acc = 0;
    int j = 0;
#if defined(EM_DOT_MVE)
    for (; j + 8 <= n; j += 8) acc = vmlaldavaq_s16(acc, vldrhq_s16(a + j), vldrhq_s16(b + j));
    if (j < n) {
        const mve_pred16_t p = vctp16q((uint32_t)(n - j));
        acc = vmlaldavaq_s16(acc, vldrhq_z_s16(a + j, p), vldrhq_z_s16(b + j, p));
        j = n;
    }
#elif defined(EM_DOT_DSP)
    /* SMLALD does two 16x16 MACs into a 64-bit accumulator. */
    for (; j + 2 <= n; j += 2) {
        int16x2_t wa, wb;
        __builtin_memcpy(&wa, a + j, 4); /* rows of A are only 2-byte aligned when order is odd: fine on v7-M */
        __builtin_memcpy(&wb, b + j, 4);
        acc = __smlald(wa, wb, acc);
    }
#endif
    for (; j < n; j++) acc += (int32_t)a[j] * (int32_t)b[j];
    return acc;
}

/* sum_i w[i] * x[i], int8 weights times int16 activations, in int64 (|sum| <= n * 2^22: int32 would overflow at
 * n = 1024, so the DSP path uses SMLALD, not SMLAD). */
static inline int64_t em_dot_s8_s16(const int8_t *w, const int16_t *x, int n) {
    int64_t acc = 0;
    int i = 0;
#if defined(EM_DOT_MVE)
    /* VLDRB.S16 sign-extends 8 int8 weights into int16 lanes: no unpacking */
    for (; i + 8 <= n; i += 8) acc = vmlaldavaq_s16(acc, vldrbq_s16(w + i), vldrhq_s16(x + i));
    if (i < n) {
        const mve_pred16_t p = vctp16q((uint32_t)(n - i));
        acc = vmlaldavaq_s16(acc, vldrbq_z_s16(w + i, p), vldrhq_z_s16(x + i, p));
        i = n;
    }
#elif defined(EM_DOT_DSP)
    for (; i + 4 <= n; i += 4) {
        uint32_t ww;
        int16x2_t x01, x23;
        __builtin_memcpy(&ww, w + i, 4);
        __builtin_memcpy(&x01, x + i, 4);
        __builtin_memcpy(&x23, x + i + 2, 4);
        /* SXTB16 gives (w0, w2) and, rotated, (w1, w3); repack to the halfword pairs (w0, w1), (w2, w3) that line
         * up with x (CMSIS-NN's read_and_pad). gcc emits PKHBT/PKHTB for these masks. */
        uint32_t even = (uint32_t)__sxtb16(ww), odd = (uint32_t)__sxtb16(em_ror8(ww));
        int16x2_t w01 = (int16x2_t)((even & 0xFFFFu) | (odd << 16));
        int16x2_t w23 = (int16x2_t)((even >> 16) | (odd & 0xFFFF0000u));
        acc = __smlald(w01, x01, acc);
        acc = __smlald(w23, x23, acc);
    }
#endif
    for (; i < n; i++) acc += (int32_t)w[i] * (int32_t)x[i];
    return acc;
}

/* Two int16 rows against one int16 vector, in int64 (as em_dot_s16; the vector read once for both). */
static inline void em_dot2_s16(const int16_t *a0, const int16_t *a1, const int16_t *b, int n, int64_t *r0,
                               int64_t *r1) {
    int64_t acc0 = 0, acc1 = 0;
    int j = 0;
#if defined(EM_DOT_MVE)
    for (; j + 8 <= n; j += 8) {
        const int16x8_t vb = vldrhq_s16(b + j);
        acc0 = vmlaldavaq_s16(acc0, vldrhq_s16(a0 + j), vb);
        acc1 = vmlaldavaq_s16(acc1, vldrhq_s16(a1 + j), vb);
    }
    if (j < n) {
        const mve_pred16_t p = vctp16q((uint32_t)(n - j));
        const int16x8_t vb = vldrhq_z_s16(b + j, p);
        acc0 = vmlaldavaq_s16(acc0, vldrhq_z_s16(a0 + j, p), vb);
        acc1 = vmlaldavaq_s16(acc1, vldrhq_z_s16(a1 + j, p), vb);
        j = n;
    }
#elif defined(EM_DOT_DSP)
    for (; j + 2 <= n; j += 2) {
        int16x2_t w0, w1, wb;
        __builtin_memcpy(&w0, a0 + j, 4);
        __builtin_memcpy(&w1, a1 + j, 4);
        __builtin_memcpy(&wb, b + j, 4);
        acc0 = __smlald(w0, wb, acc0);
        acc1 = __smlald(w1, wb, acc1);
    }
#endif
    for (; j < n; j++) {
        acc0 += (int32_t)a0[j] * (int32_t)b[j];
        acc1 += (int32_t)a1[j] * (int32_t)b[j];
    }
    *r0 = acc0;
    *r1 = acc1;
}

/* Two rows of int8 weights against one int16 input, in int64 (as em_dot_s8_s16; the input read once for both). */
static inline void em_dot2_s8_s16(const int8_t *w0, const int8_t *w1, const int16_t *x, int n, int64_t *r0,
                                  int64_t *r1) {
    int64_t acc0 = 0, acc1 = 0;
    int i = 0;
#if defined(EM_DOT_MVE)
    for (; i + 8 <= n; i += 8) {
        const int16x8_t vx = vldrhq_s16(x + i);
        acc0 = vmlaldavaq_s16(acc0, vldrbq_s16(w0 + i), vx);
        acc1 = vmlaldavaq_s16(acc1, vldrbq_s16(w1 + i), vx);
    }
    if (i < n) {
        const mve_pred16_t p = vctp16q((uint32_t)(n - i));
        const int16x8_t vx = vldrhq_z_s16(x + i, p);
        acc0 = vmlaldavaq_s16(acc0, vldrbq_z_s16(w0 + i, p), vx);
        acc1 = vmlaldavaq_s16(acc1, vldrbq_z_s16(w1 + i, p), vx);
        i = n;
    }
#elif defined(EM_DOT_DSP)
    for (; i + 4 <= n; i += 4) {
        uint32_t wa, wb;
        int16x2_t x01, x23;
        __builtin_memcpy(&wa, w0 + i, 4);
        __builtin_memcpy(&wb, w1 + i, 4);
        __builtin_memcpy(&x01, x + i, 4);
        __builtin_memcpy(&x23, x + i + 2, 4);
        uint32_t even = (uint32_t)__sxtb16(wa), odd = (uint32_t)__sxtb16(em_ror8(wa));
        acc0 = __smlald((int16x2_t)((even & 0xFFFFu) | (odd << 16)), x01, acc0);
        acc0 = __smlald((int16x2_t)((even >> 16) | (odd & 0xFFFF0000u)), x23, acc0);
        even = (uint32_t)__sxtb16(wb);
        odd = (uint32_t)__sxtb16(em_ror8(wb));
        acc1 = __smlald((int16x2_t)((even & 0xFFFFu) | (odd << 16)), x01, acc1);
        acc1 = __smlald((int16x2_t)((even >> 16) | (odd & 0xFFFF0000u)), x23, acc1);
    }
#endif
    for (; i < n; i++) {
        acc0 += (int32_t)w0[i] * (int32_t)x[i];
        acc1 += (int32_t)w1[i] * (int32_t)x[i];
    }
    *r0 = acc0;
    *r1 = acc1;
}

#endif /* EM_DOT_INLINE_H */
