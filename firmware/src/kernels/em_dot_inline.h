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

#include <stddef.h>
#include <stdint.h>

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1) && defined(__GNUC__)
#include <arm_mve.h>
#define EM_DOT_MVE 1
#elif defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32 && defined(__GNUC__)
#include <arm_acle.h>
#define EM_DOT_DSP 1
/* folds into SXTB16's rotate */
static inline uint32_t em_ror8(uint32_t x) { return (x >> 8) | (x << 24); }
/* SXTB16 with its rotate (bytes 1 and 3 sign-extended to halfwords) as one instruction: gcc 12 does not fold
 * em_ror8 into __sxtb16 (it emits a separate ROR), which costs one instruction per four MACs and row. */
static inline uint32_t em_sxtb16_ror8(uint32_t x) {
    uint32_t r;
    __asm("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
static inline uint32_t em_ld32(const void *p) { /* unaligned word loads are fine on v7-M (LDR, not LDRD/LDM) */
    uint32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
}
/* The multi-row inline asm below keeps 13 to 14 registers live: an unoptimized build (-O0, whose frame pointer takes
 * r7) has not that many free, so there the plain C loops run (the same integers, slower). A build that keeps a frame
 * pointer at -O1 and above (-fno-omit-frame-pointer) must define EM_NO_ASM for the same reason. */
#if defined(__OPTIMIZE__) && !defined(EM_NO_ASM)
#define EM_DOT_ASM 1
#endif
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
        acc = (int32_t)__smlad((int16x2_t)em_sxtb16_ror8(wa), (int16x2_t)em_sxtb16_ror8(wb), (uint32_t)acc);
    }
#endif
    for (; i < n; i++) acc += (int32_t)a[i] * (int32_t)b[i];
    return acc;
}

/* Two rows against one input: *r0 = sum_i a0[i] * b[i], *r1 = sum_i a1[i] * b[i] (each exact in int32 as
 * em_dot_s8). The input's words are loaded and widened once for both rows (CMSIS-NN's two-row kernels do the same),
 * about 1.9 instead of 2.75 instructions a MAC on the M4; em_dot4_s8 below does four rows (about 1.5). */
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
        const int16x2_t be = __sxtb16(wb), bo = (int16x2_t)em_sxtb16_ror8(wb);
        acc0 = (int32_t)__smlad(__sxtb16(w0), be, (uint32_t)acc0);
        acc0 = (int32_t)__smlad((int16x2_t)em_sxtb16_ror8(w0), bo, (uint32_t)acc0);
        acc1 = (int32_t)__smlad(__sxtb16(w1), be, (uint32_t)acc1);
        acc1 = (int32_t)__smlad((int16x2_t)em_sxtb16_ror8(w1), bo, (uint32_t)acc1);
    }
#endif
    for (; i < n; i++) {
        acc0 += (int32_t)a0[i] * (int32_t)b[i];
        acc1 += (int32_t)a1[i] * (int32_t)b[i];
    }
    *r0 = acc0;
    *r1 = acc1;
}

#ifdef EM_DOT_DSP
/* Four rows' words against the widened input pairs xe (inputs 0, 2) and xo (1, 3): per row one LDR, SXTB16,
 * SXTB16 ROR #8 and two SMLAD. Rows 1 and 3 are rows 0 and 2 plus the stride (register offset), rows 0 and 2 then
 * advance by a word, so three registers address four rows. */
#define EM_DOT4_ASM_ROWS                                                                                           \
    "ldr %[t], [%[w0], %[s]]\n\t"                                                                                    \
    "sxtb16 %[te], %[t]\n\t"                                                                                        \
    "sxtb16 %[t], %[t], ror #8\n\t"                                                                                 \
    "smlad %[a1], %[te], %[xe], %[a1]\n\t"                                                                          \
    "smlad %[a1], %[t], %[xo], %[a1]\n\t"                                                                           \
    "ldr %[t], [%[w0]], #4\n\t"                                                                                     \
    "sxtb16 %[te], %[t]\n\t"                                                                                        \
    "sxtb16 %[t], %[t], ror #8\n\t"                                                                                 \
    "smlad %[a0], %[te], %[xe], %[a0]\n\t"                                                                          \
    "smlad %[a0], %[t], %[xo], %[a0]\n\t"                                                                           \
    "ldr %[t], [%[w2], %[s]]\n\t"                                                                                    \
    "sxtb16 %[te], %[t]\n\t"                                                                                        \
    "sxtb16 %[t], %[t], ror #8\n\t"                                                                                 \
    "smlad %[a3], %[te], %[xe], %[a3]\n\t"                                                                          \
    "smlad %[a3], %[t], %[xo], %[a3]\n\t"                                                                           \
    "ldr %[t], [%[w2]], #4\n\t"                                                                                     \
    "sxtb16 %[te], %[t]\n\t"                                                                                        \
    "sxtb16 %[t], %[t], ror #8\n\t"                                                                                 \
    "smlad %[a2], %[te], %[xe], %[a2]\n\t"                                                                          \
    "smlad %[a2], %[t], %[xo], %[a2]\n\t"
#define EM_DOT4_ASM_OPERANDS                                                                                       \
    : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [w0] "+r"(w0), [w2] "+r"(w2), [b] "+r"(b),       \
      [t] "=&r"(t), [te] "=&r"(te), [xe] "=&r"(xe), [xo] "=&r"(xo)                                                 \
    : [s] "r"(stride)                                                                                              \
    : "memory" /* reads the rows and the input: no store to them may move across */
/* The loop of four steps (EM_DOT4_LOOP(STEP): 16 inputs a pass, until b reaches end; the end is read from memory
 * into te, free there, since the 12 registers of the steps leave none for a counter): 3 instructions of loop per 64
 * MACs where a C loop around two steps took 3 per 32. */
#define EM_DOT4_LOOP(STEP)                                                                                         \
    __asm volatile("1:\n\t" STEP STEP STEP STEP "ldr %[te], %[end]\n\t"                                          \
                   "cmp %[b], %[te]\n\t"                                                                           \
                   "bne 1b\n\t"                                                                                    \
                   : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [w0] "+r"(w0), [w2] "+r"(w2),     \
                     [b] "+r"(b), [t] "=&r"(t), [te] "=&r"(te), [xe] "=&r"(xe), [xo] "=&r"(xo)                      \
                   : [s] "r"(stride), [end] "m"(end)                                                               \
                   : "cc", "memory")
/* Both four-row dots' schedule (T: the input's type; STEP: one step of four inputs): four steps a pass while 16
 * inputs remain, then 8, then 4; a0..a3, w0, w2, b, i, n and stride are the caller's. */
#define EM_DOT4_ASM_SCHEDULE(T, STEP)                                                                              \
    uint32_t t, te, xe, xo;                                                                                        \
    if (n >= 16) {                                                                                                 \
        i = n / 16 * 16;                                                                                           \
        const T *const end = b + i;                                                                                \
        EM_DOT4_LOOP(STEP);                                                                                        \
    }                                                                                                              \
    if (i + 8 <= n) {                                                                                              \
        __asm volatile(STEP STEP EM_DOT4_ASM_OPERANDS);                                                            \
        i += 8;                                                                                                    \
    }                                                                                                              \
    if (i + 4 <= n) {                                                                                              \
        __asm volatile(STEP EM_DOT4_ASM_OPERANDS);                                                                 \
        i += 4;                                                                                                    \
    }
#endif
/* Both four-row dots' scalar rest (the inputs past the asm's, or all of them) and the four sums into r. */
#define EM_DOT4_TAIL                                                                                               \
    const int8_t *w1 = w0 + stride, *w3 = w2 + stride;                                                             \
    for (; i < n; i++, b++) {                                                                                      \
        const int32_t x = *b;                                                                                      \
        a0 += (int32_t)*w0++ * x;                                                                                  \
        a1 += (int32_t)*w1++ * x;                                                                                  \
        a2 += (int32_t)*w2++ * x;                                                                                  \
        a3 += (int32_t)*w3++ * x;                                                                                  \
    }                                                                                                              \
    r[0] = a0;                                                                                                     \
    r[1] = a1;                                                                                                     \
    r[2] = a2;                                                                                                     \
    r[3] = a3;

/* Four rows against one input: r[k] = sum_i w[k * stride + i] * b[i], k = 0..3 (each exact in int32 as em_dot_s8).
 * On the M4 one input word is loaded and widened (SXTB16, SXTB16 ROR #8) once for four rows, and each row's word
 * costs one LDR, two SXTB16 and two SMLAD: 48 instructions for 32 MACs (1.5 a MAC) against 2.75 one row at a time
 * (the CMSIS-NN technique, the input widened in registers instead of into a scratch buffer, so the graph format
 * needs no buffer for it). Written in asm because gcc 12, given the same code in C, loads all rows' words first and
 * spills half of them to the stack; here 13 registers stay live (rows 1 and 3 addressed as rows 0 and 2 plus the
 * stride, so three pointers serve four rows). em_dot4_s8_acc adds the four dots to r (CONV1D sums its taps there:
 * k <= 16 taps of at most 2^24 each stay exact in int32). */
static inline void em_dot4_s8_acc(const int8_t *w, size_t stride, const int8_t *b, int n, int32_t r[4]) {
#if defined(EM_DOT_MVE) /* the M55 (which has the DSP extension too): its Helium one-row dots beat this pass */
    for (int k = 0; k < 4; k++) r[k] += em_dot_s8(w + (size_t)k * stride, b, n);
    return;
#endif
    const int8_t *w0 = w, *w2 = w + 2 * stride;
    int32_t a0 = r[0], a1 = r[1], a2 = r[2], a3 = r[3];
    int i = 0;
#ifdef EM_DOT_ASM
    /* one step: four inputs (b), four bytes of each row; rows 1 and 3 first, then 0 and 2 advance the pointers */
#define EM_DOT4_ASM_STEP                                                                                           \
    "ldr %[t], [%[b]], #4\n\t"                                                                                       \
    "sxtb16 %[xe], %[t]\n\t"                                                                                        \
    "sxtb16 %[xo], %[t], ror #8\n\t" EM_DOT4_ASM_ROWS
    EM_DOT4_ASM_SCHEDULE(int8_t, EM_DOT4_ASM_STEP)
#undef EM_DOT4_ASM_STEP
#endif
    EM_DOT4_TAIL
}

static inline void em_dot4_s8(const int8_t *w, size_t stride, const int8_t *b, int n, int32_t r[4]) {
    r[0] = r[1] = r[2] = r[3] = 0;
    em_dot4_s8_acc(w, stride, b, n, r);
}

/* Four rows of int8 weights against one int16 input: r[k] = sum_i w[k * stride + i] * b[i] in int32, exact for
 * n < 512 only (|sum| <= n * 2^22; the caller takes em_dot2_s8_s16's int64 path beyond). The input's pairs are
 * reordered once for four rows (PKHBT, PKHTB: (x0, x2) and (x1, x3), the lanes SXTB16 gives the weights), so each
 * row costs what it does in em_dot4_s8: 24 instructions for 16 MACs. */
static inline int64_t em_dot_s8_s16(const int8_t *w, const int16_t *x, int n); /* below */
static inline void em_dot4_s8_s16(const int8_t *w, size_t stride, const int16_t *b, int n, int32_t r[4]) {
#if defined(EM_DOT_MVE) /* Helium one-row dots (int64 sums, exact here in int32: n < 512) */
    for (int k = 0; k < 4; k++) r[k] = (int32_t)em_dot_s8_s16(w + (size_t)k * stride, b, n);
    return;
#endif
    const int8_t *w0 = w, *w2 = w + 2 * stride;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    int i = 0;
#ifdef EM_DOT_ASM
#define EM_DOT4_S16_ASM_STEP                                                                                       \
    "ldr %[xo], [%[b]], #4\n\t"                                                                                      \
    "ldr %[t], [%[b]], #4\n\t"                                                                                       \
    "pkhbt %[xe], %[xo], %[t], lsl #16\n\t"                                                                          \
    "pkhtb %[xo], %[t], %[xo], asr #16\n\t" EM_DOT4_ASM_ROWS
    EM_DOT4_ASM_SCHEDULE(int16_t, EM_DOT4_S16_ASM_STEP)
#undef EM_DOT4_S16_ASM_STEP
#endif
    EM_DOT4_TAIL
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
        uint32_t even = (uint32_t)__sxtb16(ww), odd = em_sxtb16_ror8(ww);
        int16x2_t w01 = (int16x2_t)((even & 0xFFFFu) | (odd << 16));
        int16x2_t w23 = (int16x2_t)((even >> 16) | (odd & 0xFFFF0000u));
        acc = __smlald(w01, x01, acc);
        acc = __smlald(w23, x23, acc);
    }
#endif
    for (; i < n; i++) acc += (int32_t)w[i] * (int32_t)x[i];
    return acc;
}

/* Three int16 rows (rows 1 and 2 at a[stride], a[2 * stride]) against one int16 vector, in int64 (as em_dot_s16):
 * on the M4 one LDR of the vector's pair serves three rows (LDR + SMLALD each), 14 instructions per 12 MACs plus the
 * loop, against 5 per 4 two rows at a time. Three, not four: six 64-bit accumulators, three pointers, the vector's
 * pointer, pair, row word and a counter fill the 13 registers the asm can have. */
static inline void em_dot3_s16(const int16_t *a, size_t stride, const int16_t *b, int n, int64_t r[3]) {
#if defined(EM_DOT_MVE) /* Helium one-row dots (VMLALDAVA) */
    for (int k = 0; k < 3; k++) r[k] = em_dot_s16(a + (size_t)k * stride, b, n);
    return;
#endif
    const int16_t *a0 = a, *a2 = a + 2 * stride;
    int64_t s0 = 0, s1 = 0, s2 = 0;
    int j = 0;
#ifdef EM_DOT_ASM
    if (n >= 4) {
        const size_t sb = stride * sizeof(int16_t); /* row 1 = row 0 + sb bytes */
        uint32_t cnt = (uint32_t)n / 4u, xb, t;
        j = (int)cnt * 4;
#define EM_DOT3_S16_STEP                                                                                           \
    "ldr %[xb], [%[b]], #4\n\t"                                                                                      \
    "ldr %[t], [%[a0], %[sb]]\n\t"                                                                                   \
    "smlald %Q[s1], %R[s1], %[t], %[xb]\n\t"                                                                         \
    "ldr %[t], [%[a0]], #4\n\t"                                                                                      \
    "smlald %Q[s0], %R[s0], %[t], %[xb]\n\t"                                                                         \
    "ldr %[t], [%[a2]], #4\n\t"                                                                                      \
    "smlald %Q[s2], %R[s2], %[t], %[xb]\n\t"
        __asm volatile("1:\n\t" EM_DOT3_S16_STEP EM_DOT3_S16_STEP
                       "subs %[cnt], %[cnt], #1\n\t"
                       "bne 1b\n\t"
                       : [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [a0] "+r"(a0), [a2] "+r"(a2), [b] "+r"(b),
                         [cnt] "+r"(cnt), [xb] "=&r"(xb), [t] "=&r"(t)
                       : [sb] "r"(sb)
                       : "cc", "memory");
#undef EM_DOT3_S16_STEP
    }
#endif
    const int16_t *a1 = a0 + stride;
    for (; j < n; j++, b++) {
        const int32_t x = *b;
        s0 += (int32_t)*a0++ * x;
        s1 += (int32_t)*a1++ * x;
        s2 += (int32_t)*a2++ * x;
    }
    r[0] = s0;
    r[1] = s1;
    r[2] = s2;
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
        uint32_t even = (uint32_t)__sxtb16(wa), odd = em_sxtb16_ror8(wa);
        acc0 = __smlald((int16x2_t)((even & 0xFFFFu) | (odd << 16)), x01, acc0);
        acc0 = __smlald((int16x2_t)((even >> 16) | (odd & 0xFFFF0000u)), x23, acc0);
        even = (uint32_t)__sxtb16(wb);
        odd = em_sxtb16_ror8(wb);
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
