/* Packed sub-byte weights (docs/graph.md "Packed weights"), internal to the kernels: element e of an S4 tensor is
 * nibble e % 2 of byte e / 2 (low nibble first), of an S2 tensor bit pair e % 4 of byte e / 4 (low bits first),
 * two's complement. Sign extension by ((x & mask) ^ half) - half: plain integer arithmetic, so no
 * implementation-defined right shift of a negative value and no out-of-range conversion to int8_t. */
#ifndef EM_PACKED_INLINE_H
#define EM_PACKED_INLINE_H

#include <stddef.h>
#include <stdint.h>

#include "em_dot_inline.h" /* EM_DOT_MVE, arm_mve.h; EM_DOT_DSP, em_ld32, em_sxtb16_ror8 */

static inline int32_t em_s4_at(uint32_t x) { return (int32_t)((x & 0xFu) ^ 8u) - 8; } /* low nibble of x */
static inline int32_t em_s2_at(uint32_t x) { return (int32_t)((x & 3u) ^ 2u) - 2; }   /* low 2 bits of x */
#ifdef EM_DOT_DSP
/* single instructions gcc 12 does not find from the portable formulas (it takes three): SBFX of bits 7..4; ADD
 * with an arithmetic-shifted operand (bits 31..30 of t sign-extended), which C writes only with an
 * implementation-defined shift */
static inline int32_t em_s4_hi(uint32_t b) {
    int32_t r;
    __asm("sbfx %0, %1, #4, #4" : "=r"(r) : "r"(b));
    return r;
}
static inline int32_t em_add_s2_top(int32_t acc, uint32_t t) {
    int32_t r;
    __asm("add %0, %1, %2, asr #30" : "=r"(r) : "r"(acc), "r"(t));
    return r;
}
#else
static inline int32_t em_s4_hi(uint32_t b) { return em_s4_at(b >> 4); } /* bits 7..4 of b */
static inline int32_t em_add_s2_top(int32_t acc, uint32_t t) { return acc + em_s2_at(t >> 30); } /* bits 31..30 */
#endif

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

#ifdef EM_DOT_MVE
/* Helium (MVE) first part of em_dot2_packed_u_T (below): the same sums u[i] * x[i], i in [0, done), done returned;
 * the caller's scalar loops take [done, n). Each u (0 .. 15 or 0 .. 3) is moved into its own lane in element order
 * with shifts and inserts (VSLI), then multiplied with the inputs lane by lane and summed exactly into the int32 or
 * int64 scalar (VMLADAVA, VMLALDAVA), as em_dot_inline.h does. Contiguous loads only (no gathers).
 *   int8 x, S4: 8 bytes widened into u16 lanes, b | b >> 4 << 8: read as 16 u8 lanes = 16 weights.
 *   int8 x, S2: 4 bytes widened into u32 lanes, byte j of the lane = bits 2j, 2j+1 of b: 16 weights.
 *   int16 x, S4: 4 bytes widened into u32 lanes, b | b >> 4 << 16: read as 8 u16 lanes = 8 weights.
 *   These three end with a VCTP-predicated vector: the weight bytes and inputs past n are not read, the inputs
 *   load as 0 there (so the weights' lanes there add nothing), done = n.
 *   int16 x, S2: the int8 S2 weights of 4 bytes, split into even and odd elements (VMOVLB/VMOVLT), against the
 *   inputs loaded even/odd apart (VLD2): whole 16-element blocks only (VLD2 has no predicate), the rest scalar. */
static inline int em_vdot2_packed_u_int8_t(const uint8_t *w0, const uint8_t *w1, int wbits, const int8_t *x, int n,
                                           int32_t *s0, int32_t *s1) {
    int32_t a0 = 0, a1 = 0;
    int i = 0;
    if (wbits == 4) {
        const uint16_t half = 0x88u, nib = 0x0F0Fu;
        for (; i < n; i += 16, w0 += 8, w1 += 8) {
            const mve_pred16_t pw = vctp16q((uint32_t)(n - i) / 2u), px = vctp8q((uint32_t)(n - i));
            const int8x16_t vx = vldrbq_z_s8(x + i, px);
            const uint16x8_t b0 = veorq_u16(vldrbq_z_u16(w0, pw), vdupq_n_u16(half));
            const uint16x8_t b1 = veorq_u16(vldrbq_z_u16(w1, pw), vdupq_n_u16(half));
            const uint16x8_t u0 = vandq_u16(vsliq_n_u16(b0, vshrq_n_u16(b0, 4), 8), vdupq_n_u16(nib));
            const uint16x8_t u1 = vandq_u16(vsliq_n_u16(b1, vshrq_n_u16(b1, 4), 8), vdupq_n_u16(nib));
            a0 = vmladavaq_s8(a0, vreinterpretq_s8_u16(u0), vx);
            a1 = vmladavaq_s8(a1, vreinterpretq_s8_u16(u1), vx);
        }
    } else {
        const uint32_t half = 0xAAu, pairs = 0x03030303u;
        for (; i < n; i += 16, w0 += 4, w1 += 4) {
            const mve_pred16_t pw = vctp32q((uint32_t)(n - i) / 4u), px = vctp8q((uint32_t)(n - i));
            const int8x16_t vx = vldrbq_z_s8(x + i, px);
            const uint32x4_t b0 = veorq_u32(vldrbq_z_u32(w0, pw), vdupq_n_u32(half));
            const uint32x4_t b1 = veorq_u32(vldrbq_z_u32(w1, pw), vdupq_n_u32(half));
            /* (b << 18) | (b << 12) | (b << 6) | b, each insert keeping the bits below it: bits 2j, 2j+1 of b land
             * in byte j; the mask drops the rest */
            const uint32x4_t u0 = vandq_u32(
                vsliq_n_u32(vsliq_n_u32(vsliq_n_u32(b0, b0, 6), b0, 12), b0, 18), vdupq_n_u32(pairs));
            const uint32x4_t u1 = vandq_u32(
                vsliq_n_u32(vsliq_n_u32(vsliq_n_u32(b1, b1, 6), b1, 12), b1, 18), vdupq_n_u32(pairs));
            a0 = vmladavaq_s8(a0, vreinterpretq_s8_u32(u0), vx);
            a1 = vmladavaq_s8(a1, vreinterpretq_s8_u32(u1), vx);
        }
    }
    *s0 = a0;
    *s1 = a1;
    return n;
}

static inline int em_vdot2_packed_u_int16_t(const uint8_t *w0, const uint8_t *w1, int wbits, const int16_t *x, int n,
                                            int64_t *s0, int64_t *s1) {
    int64_t a0 = 0, a1 = 0;
    int i = 0;
    if (wbits == 4) {
        const uint32_t half = 0x88u, nib = 0x000F000Fu;
        for (; i < n; i += 8, w0 += 4, w1 += 4) {
            const mve_pred16_t pw = vctp32q((uint32_t)(n - i) / 2u), px = vctp16q((uint32_t)(n - i));
            const int16x8_t vx = vldrhq_z_s16(x + i, px);
            const uint32x4_t b0 = veorq_u32(vldrbq_z_u32(w0, pw), vdupq_n_u32(half));
            const uint32x4_t b1 = veorq_u32(vldrbq_z_u32(w1, pw), vdupq_n_u32(half));
            const uint32x4_t u0 = vandq_u32(vsliq_n_u32(b0, vshrq_n_u32(b0, 4), 16), vdupq_n_u32(nib));
            const uint32x4_t u1 = vandq_u32(vsliq_n_u32(b1, vshrq_n_u32(b1, 4), 16), vdupq_n_u32(nib));
            a0 = vmlaldavaq_s16(a0, vreinterpretq_s16_u32(u0), vx);
            a1 = vmlaldavaq_s16(a1, vreinterpretq_s16_u32(u1), vx);
        }
    } else {
        const uint32_t half = 0xAAu, pairs = 0x03030303u;
        for (; i + 16 <= n; i += 16, w0 += 4, w1 += 4) {
            const int16x8x2_t vx = vld2q_s16(x + i); /* val[0]: x[i + 2k], val[1]: x[i + 2k + 1] */
            const uint32x4_t b0 = veorq_u32(vldrbq_u32(w0), vdupq_n_u32(half));
            const uint32x4_t b1 = veorq_u32(vldrbq_u32(w1), vdupq_n_u32(half));
            const uint8x16_t u0 = vreinterpretq_u8_u32(vandq_u32(
                vsliq_n_u32(vsliq_n_u32(vsliq_n_u32(b0, b0, 6), b0, 12), b0, 18), vdupq_n_u32(pairs)));
            const uint8x16_t u1 = vreinterpretq_u8_u32(vandq_u32(
                vsliq_n_u32(vsliq_n_u32(vsliq_n_u32(b1, b1, 6), b1, 12), b1, 18), vdupq_n_u32(pairs)));
            a0 = vmlaldavaq_s16(a0, vreinterpretq_s16_u16(vmovlbq_u8(u0)), vx.val[0]);
            a0 = vmlaldavaq_s16(a0, vreinterpretq_s16_u16(vmovltq_u8(u0)), vx.val[1]);
            a1 = vmlaldavaq_s16(a1, vreinterpretq_s16_u16(vmovlbq_u8(u1)), vx.val[0]);
            a1 = vmlaldavaq_s16(a1, vreinterpretq_s16_u16(vmovltq_u8(u1)), vx.val[1]);
        }
    }
    *s0 = a0;
    *s1 = a1;
    return i;
}
#define EM_PACKED_VDOT2(T, w0, w1, wbits, x, n, s0, s1) em_vdot2_packed_u_##T(w0, w1, wbits, x, n, s0, s1)
#else
#define EM_PACKED_VDOT2(T, w0, w1, wbits, x, n, s0, s1) 0
#endif

/* The offset form, for whole bytes of weights (n a multiple of 8 / wbits): sum_i u[i] * x[i] with u = w + half in
 * [0, 2^wbits), half = 2^(wbits-1). The signed sum is this minus half * sum_i x[i], which the caller computes once per
 * input vector: no sign extension per weight, one xor per byte (b ^ 0x88 or b ^ 0xAA adds half to every field) and
 * a mask or shift per weight. Two rows at once (w0, w1: the input is loaded once for both, as em_dot2_s8 does). */
static inline int32_t em_packed_half(int wbits) { return wbits == 4 ? 8 : 2; }

#define EM_PACKED_DOT2_U(T, ACC)                                                                                    \
    static inline void em_dot2_packed_u_##T(const uint8_t *w0, const uint8_t *w1, int wbits, const T *x, int n,    \
                                            ACC *a0, ACC *a1) {                                                    \
        ACC s0 = 0, s1 = 0;                                                                                        \
        int i = EM_PACKED_VDOT2(T, w0, w1, wbits, x, n, &s0, &s1); /* MVE: the vector part; else 0 */             \
        w0 += (size_t)i * (size_t)wbits / 8u;                                                                      \
        w1 += (size_t)i * (size_t)wbits / 8u;                                                                      \
        if (wbits == 4) {                                                                                          \
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

/* em_dot2_packed_u_int8_t with the whole words of both rows on the M4's SIMD: a word of S4 weights holds elements
 * e..e+7, its halfword lanes pair element i with i+4, so (u >> 4k) & 0x000F000F is the pair (u_k, u_{k+4}) in int16
 * lanes, one AND with a shifted operand; the input is paired the same way once for both rows (PKHBT/PKHTB, then
 * SXTB16 and SXTB16 ROR #8: (x_k, x_{k+4})) and SMLAD does two MACs. Per eight weights of a row: LDR, EOR, four AND,
 * four SMLAD (1.25 a MAC; the shared input pairing adds 8 per eight inputs), against about 4 a MAC unpacked one
 * nibble at a time. S2 the same with sixteen elements a word (pairs i, i + 8; mask 0x00030003), in two halves of
 * eight so that the input pairs of one half fit the registers. Rows and x any alignment (LDR, not LDRD). */
static inline void em_dot2_packed_s8(const uint8_t *w0, const uint8_t *w1, int wbits, const int8_t *x, int n,
                                     int32_t *a0, int32_t *a1) {
    int32_t s0 = 0, s1 = 0;
    int i = 0;
#ifdef EM_DOT_ASM /* not on the M55 (no EM_DOT_DSP there): em_dot2_packed_u_* takes its Helium path */
    /* asm: gcc 12 neither finds PKHBT/PKHTB here nor ANDs with a shifted operand, and spills (about twice the code) */
    uint32_t p0, p1, p2, p3, t, te;
    const uint32_t mk = wbits == 4 ? 0x000F000Fu : 0x00030003u;
    /* the input pairing: four input bytes at [x + A] and four at [x + B] -> p0..p3 = (x_A+k, x_B+k), k = 0..3 */
#define EM_PK_PAIRS(A, B)                                                                                          \
    "ldr %[p1], [%[x], #" #A "]\n\t"                                                                                 \
    "ldr %[p3], [%[x], #" #B "]\n\t"                                                                                 \
    "pkhbt %[p0], %[p1], %[p3], lsl #16\n\t"                                                                         \
    "pkhtb %[p2], %[p3], %[p1], asr #16\n\t"                                                                         \
    "sxtb16 %[p1], %[p0], ror #8\n\t"                                                                                \
    "sxtb16 %[p0], %[p0]\n\t"                                                                                        \
    "sxtb16 %[p3], %[p2], ror #8\n\t"                                                                                \
    "sxtb16 %[p2], %[p2]\n\t"
    /* four lane pairs of the offset weights in W (fields F0.. of BITS bits) against p0..p3 into ACC (also the
     * paired-input passes' below: #undef after them) */
#define EM_PK_MACS(W, ACC, F0, BITS)                                                                               \
    "and %[te], %[mk], %[" W "], lsr #(" #F0 ")\n\t"                                                                 \
    "smlad %[" ACC "], %[te], %[p0], %[" ACC "]\n\t"                                                                 \
    "and %[te], %[mk], %[" W "], lsr #(" #F0 " + " #BITS ")\n\t"                                                      \
    "smlad %[" ACC "], %[te], %[p1], %[" ACC "]\n\t"                                                                 \
    "and %[te], %[mk], %[" W "], lsr #(" #F0 " + 2 * " #BITS ")\n\t"                                                  \
    "smlad %[" ACC "], %[te], %[p2], %[" ACC "]\n\t"                                                                 \
    "and %[te], %[mk], %[" W "], lsr #(" #F0 " + 3 * " #BITS ")\n\t"                                                  \
    "smlad %[" ACC "], %[te], %[p3], %[" ACC "]\n\t"
    /* the input pairing of one S4 word's eight inputs, x advanced by the loads (post-increment: no ADD a pass) */
#define EM_PK_PAIRS_NEXT8                                                                                          \
    "ldr %[p1], [%[x]], #4\n\t"                                                                                    \
    "ldr %[p3], [%[x]], #4\n\t"                                                                                    \
    "pkhbt %[p0], %[p1], %[p3], lsl #16\n\t"                                                                        \
    "pkhtb %[p2], %[p3], %[p1], asr #16\n\t"                                                                        \
    "sxtb16 %[p1], %[p0], ror #8\n\t"                                                                               \
    "sxtb16 %[p0], %[p0]\n\t"                                                                                       \
    "sxtb16 %[p3], %[p2], ror #8\n\t"                                                                               \
    "sxtb16 %[p2], %[p2]\n\t"
/* one S4 word of each of two rows (w0, w1) against the pairs p0..p3 into s0, s1 (also the paired-input passes') */
#define EM_PK_S4_TWO_ROWS                                                                                          \
    "ldr %[t], [%[w0]], #4\n\t"                                                                                    \
    "eor %[t], %[t], #0x88888888\n\t" /* + 8 in every nibble: u = w + 8 in [0, 15] */                             \
    EM_PK_MACS("t", "s0", 0, 4)                                                                                    \
    "ldr %[t], [%[w1]], #4\n\t"                                                                                    \
    "eor %[t], %[t], #0x88888888\n\t"                                                                              \
    EM_PK_MACS("t", "s1", 0, 4)
#define EM_PK_S4_WORDS EM_PK_PAIRS_NEXT8 EM_PK_S4_TWO_ROWS
    if (wbits == 4 && n >= 8) {
        /* a word of S4: elements 0..7, lanes (k, k + 4); per 8 inputs 8 shared + 2 x 10, and per 16 inputs (two
         * words a pass) the loop's SUBS and BNE: 58 instructions / 32 MACs */
        uint32_t cnt = (uint32_t)n / 16u;
        i = (int)cnt * 16;
        if (cnt)
            __asm volatile("1:\n\t" EM_PK_S4_WORDS EM_PK_S4_WORDS
                           "subs %[cnt], %[cnt], #1\n\t"
                           "bne 1b\n\t"
                           : [s0] "+r"(s0), [s1] "+r"(s1), [w0] "+r"(w0), [w1] "+r"(w1), [x] "+r"(x), [cnt] "+r"(cnt),
                             [p0] "=&r"(p0), [p1] "=&r"(p1), [p2] "=&r"(p2), [p3] "=&r"(p3), [t] "=&r"(t),
                             [te] "=&r"(te)
                           : [mk] "r"(mk)
                           : "cc", "memory");
        if (i + 8 <= n) { /* an odd word */
            i += 8;
            __asm volatile(EM_PK_S4_WORDS
                           : [s0] "+r"(s0), [s1] "+r"(s1), [w0] "+r"(w0), [w1] "+r"(w1), [x] "+r"(x), [p0] "=&r"(p0),
                             [p1] "=&r"(p1), [p2] "=&r"(p2), [p3] "=&r"(p3), [t] "=&r"(t), [te] "=&r"(te)
                           : [mk] "r"(mk)
                           : "memory");
        }
#undef EM_PK_S4_WORDS
#undef EM_PK_PAIRS_NEXT8
    } else if (wbits == 2 && n >= 16) {
        /* a word of S2: elements 0..15, lanes (k, k + 8), in halves 0..3 / 8..11 and 4..7 / 12..15 */
        uint32_t cnt = (uint32_t)n / 16u, t1;
        i = (int)cnt * 16;
        __asm volatile("1:\n\t"
                       "ldr %[t], [%[w0]], #4\n\t"
                       "eor %[t], %[t], #0xAAAAAAAA\n\t" /* + 2 in every field: u = w + 2 in [0, 3] */
                       "ldr %[t1], [%[w1]], #4\n\t"
                       "eor %[t1], %[t1], #0xAAAAAAAA\n\t"
                       EM_PK_PAIRS(0, 8)
                       EM_PK_MACS("t", "s0", 0, 2)
                       EM_PK_MACS("t1", "s1", 0, 2)
                       EM_PK_PAIRS(4, 12)
                       EM_PK_MACS("t", "s0", 8, 2)
                       EM_PK_MACS("t1", "s1", 8, 2)
                       "adds %[x], %[x], #16\n\t"
                       "subs %[cnt], %[cnt], #1\n\t"
                       "bne 1b\n\t"
                       : [s0] "+r"(s0), [s1] "+r"(s1), [w0] "+r"(w0), [w1] "+r"(w1), [x] "+r"(x), [cnt] "+r"(cnt),
                         [p0] "=&r"(p0), [p1] "=&r"(p1), [p2] "=&r"(p2), [p3] "=&r"(p3), [t] "=&r"(t), [t1] "=&r"(t1),
                         [te] "=&r"(te)
                       : [mk] "r"(mk)
                       : "cc", "memory");
    }
    if (i == n) { /* whole words only (the shipped shapes): skip the scalar part's tests, about 15 instructions */
        *a0 = s0;
        *a1 = s1;
        return;
    }
#endif
    int32_t r0, r1;
    em_dot2_packed_u_int8_t(w0, w1, wbits, x, n - i, &r0, &r1);
    *a0 = s0 + r0;
    *a1 = s1 + r1;
}

/* em_dot2_packed_u_int16_t on the M4's SIMD, as em_dot2_packed_s8 with int16 inputs: the lane pairs (x_k, x_k+4)
 * (S2: x_k, x_k+8) are PKHBT/PKHTB of two input words, no sign extension. |u * x| <= 15 * 32768 < 2^19, so the
 * whole-word part sums exactly in int32 for n <= 1024 (< 2^29); the caller's int64 takes it from there. */
static inline void em_dot2_packed_s16(const uint8_t *w0, const uint8_t *w1, int wbits, const int16_t *x, int n,
                                      int64_t *a0, int64_t *a1) {
    int32_t s0 = 0, s1 = 0;
    int i = 0;
#ifdef EM_DOT_ASM /* not on the M55 (no EM_DOT_DSP there): em_dot2_packed_u_* takes its Helium path */
    uint32_t p0, p1, p2, p3, t, te;
    const uint32_t mk = wbits == 4 ? 0x000F000Fu : 0x00030003u;
    /* input halfwords at byte offsets A (x_k, x_k+1), B (x_k+d, x_k+d+1), C (x_k+2, ..), D (x_k+d+2, ..) ->
     * p0..p3 = (x_k+j, x_k+d+j), j = 0..3 */
#define EM_PK_PAIRS16(A, B, C, D)                                                                                  \
    "ldr %[p1], [%[x], #" #A "]\n\t"                                                                                 \
    "ldr %[te], [%[x], #" #B "]\n\t"                                                                                 \
    "pkhbt %[p0], %[p1], %[te], lsl #16\n\t"                                                                         \
    "pkhtb %[p1], %[te], %[p1], asr #16\n\t"                                                                         \
    "ldr %[p3], [%[x], #" #C "]\n\t"                                                                                 \
    "ldr %[te], [%[x], #" #D "]\n\t"                                                                                 \
    "pkhbt %[p2], %[p3], %[te], lsl #16\n\t"                                                                         \
    "pkhtb %[p3], %[te], %[p3], asr #16\n\t"
    if (wbits == 4 && n >= 8) {
        uint32_t cnt = (uint32_t)n / 8u;
        i = (int)cnt * 8;
        __asm volatile("1:\n\t" EM_PK_PAIRS16(0, 8, 4, 12)
                       "ldr %[t], [%[w0]], #4\n\t"
                       "eor %[t], %[t], #0x88888888\n\t"
                       EM_PK_MACS("t", "s0", 0, 4)
                       "ldr %[t], [%[w1]], #4\n\t"
                       "eor %[t], %[t], #0x88888888\n\t"
                       EM_PK_MACS("t", "s1", 0, 4)
                       "adds %[x], %[x], #16\n\t"
                       "subs %[cnt], %[cnt], #1\n\t"
                       "bne 1b\n\t"
                       : [s0] "+r"(s0), [s1] "+r"(s1), [w0] "+r"(w0), [w1] "+r"(w1), [x] "+r"(x), [cnt] "+r"(cnt),
                         [p0] "=&r"(p0), [p1] "=&r"(p1), [p2] "=&r"(p2), [p3] "=&r"(p3), [t] "=&r"(t), [te] "=&r"(te)
                       : [mk] "r"(mk)
                       : "cc", "memory");
    } else if (wbits == 2 && n >= 16) {
        uint32_t cnt = (uint32_t)n / 16u, t1;
        i = (int)cnt * 16;
        __asm volatile("1:\n\t"
                       "ldr %[t], [%[w0]], #4\n\t"
                       "eor %[t], %[t], #0xAAAAAAAA\n\t"
                       "ldr %[t1], [%[w1]], #4\n\t"
                       "eor %[t1], %[t1], #0xAAAAAAAA\n\t"
                       EM_PK_PAIRS16(0, 16, 4, 20)
                       EM_PK_MACS("t", "s0", 0, 2)
                       EM_PK_MACS("t1", "s1", 0, 2)
                       EM_PK_PAIRS16(8, 24, 12, 28)
                       EM_PK_MACS("t", "s0", 8, 2)
                       EM_PK_MACS("t1", "s1", 8, 2)
                       "adds %[x], %[x], #32\n\t"
                       "subs %[cnt], %[cnt], #1\n\t"
                       "bne 1b\n\t"
                       : [s0] "+r"(s0), [s1] "+r"(s1), [w0] "+r"(w0), [w1] "+r"(w1), [x] "+r"(x), [cnt] "+r"(cnt),
                         [p0] "=&r"(p0), [p1] "=&r"(p1), [p2] "=&r"(p2), [p3] "=&r"(p3), [t] "=&r"(t), [t1] "=&r"(t1),
                         [te] "=&r"(te)
                       : [mk] "r"(mk)
                       : "cc", "memory");
    }
#undef EM_PK_PAIRS16
#undef EM_PK_PAIRS
    if (i == n) {
        *a0 = s0;
        *a1 = s1;
        return;
    }
#endif
    int64_t r0, r1;
    em_dot2_packed_u_int16_t(w0, w1, wbits, x, n - i, &r0, &r1);
    *a0 = s0 + r0;
    *a1 = s1 + r1;
}

#ifdef EM_DOT_ASM
/* The pre-paired path (M4/M7/M33 optimized builds): the FC's input is paired ONCE per call into int16 lanes in the
 * order the weight lanes need, so the rows' loop only loads the pairs (LDM) instead of building them per row pair.
 * A word of S4 weights (elements e..e+7) ANDed with 0x000F000F after LSR #4k holds (u_{e+k}, u_{e+k+4}) in its two
 * halfwords; S2 (e..e+15) with 0x00030003 after LSR #2k holds (u_{e+k}, u_{e+k+8}). So the pairs buffer holds, per
 * block of 8 (S4) or 16 (S2) inputs, the words (x_{e+k} low, x_{e+k+d} high), k = 0 .. d-1, d = 4 or 8: one word
 * per two inputs. Bounded: inputs beyond EM_PK_MAX_IN keep the per-row-pair pairing (em_dot2_packed_s8/_s16). */
/* the caller's stack buffer: EM_PK_MAX_IN / 2 words = 320 bytes (the shipped packed shapes: <= 144 inputs) */
#define EM_PK_MAX_IN 160

/* Pairs of x[0 .. whole), whole = n rounded down to a block (8 inputs for S4, 16 for S2); returns whole, and in
 * *sum the sum of all n inputs (the offset form's correction; exact in int32 for n <= 2^16). Four pairs from two
 * input words: int8: PKHBT / PKHTB put bytes (k, k+1) of word a and of word b together, SXTB16 (ROR #8) widens
 * them to (x_k, x_{k+d}) and (x_{k+1}, x_{k+1+d}); int16: PKHBT / PKHTB of the halfwords directly. The sum by SMLAD
 * of each pair with (1, 1), as the pairs are made: about 17 instructions per 8 inputs, once per call. */
static inline int em_pk_pairs_int8_t(const int8_t *x, int n, int wbits, uint32_t *pk, int32_t *sum) {
    const int d = wbits == 4 ? 4 : 8, whole = n / (2 * d) * (2 * d);
    int32_t s = 0;
    for (int e = 0; e < whole; e += 2 * d)
        for (int h = 0; h < d; h += 4, pk += 4) { /* pairs k = e+h .. e+h+3 */
            const uint32_t a = em_ld32(x + e + h), b = em_ld32(x + e + h + d);
            const uint32_t lo = (a & 0xFFFFu) | (b << 16), hi = (a >> 16) | (b & 0xFFFF0000u);
            pk[0] = __sxtb16(lo);
            pk[1] = em_sxtb16_ror8(lo);
            pk[2] = __sxtb16(hi);
            pk[3] = em_sxtb16_ror8(hi);
            s = __smlad(pk[0], 0x00010001u, __smlad(pk[1], 0x00010001u, s));
            s = __smlad(pk[2], 0x00010001u, __smlad(pk[3], 0x00010001u, s));
        }
    for (int i = whole; i < n; i++) s += x[i];
    *sum = s;
    return whole;
}

static inline int em_pk_pairs_int16_t(const int16_t *x, int n, int wbits, uint32_t *pk, int32_t *sum) {
    const int d = wbits == 4 ? 4 : 8, whole = n / (2 * d) * (2 * d);
    int32_t s = 0;
    for (int e = 0; e < whole; e += 2 * d)
        for (int h = 0; h < d; h += 4, pk += 4) {
            const uint32_t a0 = em_ld32(x + e + h), a1 = em_ld32(x + e + h + 2);
            const uint32_t b0 = em_ld32(x + e + h + d), b1 = em_ld32(x + e + h + d + 2);
            pk[0] = (a0 & 0xFFFFu) | (b0 << 16);
            pk[1] = (a0 >> 16) | (b0 & 0xFFFF0000u);
            pk[2] = (a1 & 0xFFFFu) | (b1 << 16);
            pk[3] = (a1 >> 16) | (b1 & 0xFFFF0000u);
            s = __smlad(pk[0], 0x00010001u, __smlad(pk[1], 0x00010001u, s));
            s = __smlad(pk[2], 0x00010001u, __smlad(pk[3], 0x00010001u, s));
        }
    for (int i = whole; i < n; i++) s += x[i];
    *sum = s;
    return whole;
}

/* The asm pieces of em_dot2_pk_words and em_pk_rowpairs. p0..p3 live in fixed ascending registers (r4, r5, r6,
 * r8) so that one LDM loads four pair words: not r7 (the Thumb frame pointer where one is kept) nor r9 (the
 * platform register of some ABIs). */
#define EM_PKP_LD4 "ldmia %[pk]!, {r4, r5, r6, r8}\n\t" /* p0..p3 */
/* one word (8 S4 weights) of each row */
#define EM_PKP_S4_WORD EM_PKP_LD4 EM_PK_S4_TWO_ROWS
/* one word (16 S2 weights) of each row, in two halves of four pair words */
#define EM_PKP_S2_WORD                                                                                             \
    "ldr %[t], [%[w0]], #4\n\t"                                                                                    \
    "eor %[t], %[t], #0xAAAAAAAA\n\t" /* + 2 in every field: u = w + 2 in [0, 3] */                               \
    "ldr %[t1], [%[w1]], #4\n\t"                                                                                   \
    "eor %[t1], %[t1], #0xAAAAAAAA\n\t"                                                                            \
    EM_PKP_LD4                                                                                                     \
    EM_PK_MACS("t", "s0", 0, 2)                                                                                    \
    EM_PK_MACS("t1", "s1", 0, 2)                                                                                   \
    EM_PKP_LD4                                                                                                     \
    EM_PK_MACS("t", "s0", 8, 2)                                                                                    \
    EM_PK_MACS("t1", "s1", 8, 2)

/* sum over the whole words of rows w0, w1 (words = whole / (32 / wbits)) of u * x against the pairs pk, in int32:
 * |u * x| <= 15 * 32768, so exact for whole <= 1024 (int16 x; int8 x: any). Per 8 S4 weights of a row: LDR, EOR,
 * four AND, four SMLAD, plus one LDM of four pair words shared by both rows: (1 + 2 x 10) / 16 MACs, the loop's
 * SUBS/BNE every two words (S4) or one word (S2, 16 MACs a row). Rows any alignment (LDR); pk word-aligned (LDM). */
static inline void em_dot2_pk_words(const uint8_t *w0, const uint8_t *w1, int wbits, const uint32_t *pk,
                                    uint32_t words, int32_t *a0, int32_t *a1) {
    int32_t s0 = 0, s1 = 0;
    register uint32_t p0 __asm("r4"), p1 __asm("r5"), p2 __asm("r6"), p3 __asm("r8");
    uint32_t t, t1, te;
    const uint32_t mk = wbits == 4 ? 0x000F000Fu : 0x00030003u;
    if (wbits == 4) {
        uint32_t cnt = words / 2u;
        if (cnt)
            __asm volatile("1:\n\t" EM_PKP_S4_WORD EM_PKP_S4_WORD
                           "subs %[cnt], %[cnt], #1\n\t"
                           "bne 1b\n\t"
                           : [s0] "+r"(s0), [s1] "+r"(s1), [w0] "+r"(w0), [w1] "+r"(w1), [pk] "+r"(pk),
                             [cnt] "+r"(cnt), [p0] "=&r"(p0), [p1] "=&r"(p1), [p2] "=&r"(p2), [p3] "=&r"(p3),
                             [t] "=&r"(t), [te] "=&r"(te)
                           : [mk] "r"(mk)
                           : "cc", "memory");
        if (words & 1u)
            __asm volatile(EM_PKP_S4_WORD
                           : [s0] "+r"(s0), [s1] "+r"(s1), [w0] "+r"(w0), [w1] "+r"(w1), [pk] "+r"(pk),
                             [p0] "=&r"(p0), [p1] "=&r"(p1), [p2] "=&r"(p2), [p3] "=&r"(p3), [t] "=&r"(t),
                             [te] "=&r"(te)
                           : [mk] "r"(mk)
                           : "memory");
        (void)t1;
    } else if (words) {
        uint32_t cnt = words;
        __asm volatile("1:\n\t" EM_PKP_S2_WORD
                       "subs %[cnt], %[cnt], #1\n\t"
                       "bne 1b\n\t"
                       : [s0] "+r"(s0), [s1] "+r"(s1), [w0] "+r"(w0), [w1] "+r"(w1), [pk] "+r"(pk), [cnt] "+r"(cnt),
                         [p0] "=&r"(p0), [p1] "=&r"(p1), [p2] "=&r"(p2), [p3] "=&r"(p3), [t] "=&r"(t), [t1] "=&r"(t1),
                         [te] "=&r"(te)
                       : [mk] "r"(mk)
                       : "cc", "memory");
    }
    *a0 = s0;
    *a1 = s1;
}

/* em_dot2_pk_words for `pairs` (>= 1) row pairs at once, rows back to back of exactly `words` (>= 1) whole words
 * each (S4: words even): d[2j], d[2j + 1] = the sums of rows 2j, 2j + 1. The row-pair loop is in the asm too, its
 * state (pair count, d, the pairs' start, the inner count, the row stride) in stack slots ("m" operands: the inner
 * loop needs 13 (S4) or 14 (S2) registers): 14 instructions a row pair, against about 40 around a call per pair. */
static inline void em_pk_rowpairs(const uint8_t *w, int wbits, const uint32_t *pk, uint32_t words, uint32_t pairs,
                                  int32_t *d) {
    register uint32_t p0 __asm("r4"), p1 __asm("r5"), p2 __asm("r6"), p3 __asm("r8");
    uint32_t s0, s1, t, t1, te, cnt;
    const uint8_t *w1;
    const uint32_t *pkp;
    const uint32_t mk = wbits == 4 ? 0x000F000Fu : 0x00030003u;
    uint32_t m_np = pairs, m_rb = words * 4u, m_cnt = wbits == 4 ? words / 2u : words;
    uint32_t m_pk = (uint32_t)(uintptr_t)pk, m_d = (uint32_t)(uintptr_t)d;
#define EM_PKP_ROWS_HEAD                                                                                           \
    "2:\n\t"                                                                                                         \
    "movs %[s0], #0\n\t"                                                                                             \
    "movs %[s1], #0\n\t"                                                                                             \
    "ldr %[cnt], %[m_cnt]\n\t"                                                                                       \
    "ldr %[pk], %[m_pk]\n\t"                                                                                         \
    "ldr %[te], %[m_rb]\n\t"                                                                                         \
    "add %[w1], %[w0], %[te]\n\t"                                                                                    \
    "1:\n\t"
#define EM_PKP_ROWS_TAIL                                                                                           \
    "subs %[cnt], %[cnt], #1\n\t"                                                                                    \
    "bne 1b\n\t"                                                                                                     \
    "ldr %[te], %[m_d]\n\t"                                                                                          \
    "strd %[s0], %[s1], [%[te]], #8\n\t"                                                                             \
    "str %[te], %[m_d]\n\t"                                                                                          \
    "mov %[w0], %[w1]\n\t" /* w0 ended at row 2j + 1, w1 at row 2j + 2: the next pair's first row */             \
    "ldr %[te], %[m_np]\n\t"                                                                                         \
    "subs %[te], %[te], #1\n\t"                                                                                      \
    "str %[te], %[m_np]\n\t"                                                                                         \
    "bne 2b\n\t"
    if (wbits == 4) {
        __asm volatile(EM_PKP_ROWS_HEAD EM_PKP_S4_WORD EM_PKP_S4_WORD EM_PKP_ROWS_TAIL
                       : [s0] "=&r"(s0), [s1] "=&r"(s1), [w0] "+r"(w), [w1] "=&r"(w1), [pk] "=&r"(pkp),
                         [cnt] "=&r"(cnt), [p0] "=&r"(p0), [p1] "=&r"(p1), [p2] "=&r"(p2), [p3] "=&r"(p3),
                         [t] "=&r"(t), [te] "=&r"(te), [m_np] "+m"(m_np), [m_d] "+m"(m_d)
                       : [mk] "r"(mk), [m_rb] "m"(m_rb), [m_cnt] "m"(m_cnt), [m_pk] "m"(m_pk)
                       : "cc", "memory");
        (void)t1;
    } else {
        __asm volatile(EM_PKP_ROWS_HEAD EM_PKP_S2_WORD EM_PKP_ROWS_TAIL
                       : [s0] "=&r"(s0), [s1] "=&r"(s1), [w0] "+r"(w), [w1] "=&r"(w1), [pk] "=&r"(pkp),
                         [cnt] "=&r"(cnt), [p0] "=&r"(p0), [p1] "=&r"(p1), [p2] "=&r"(p2), [p3] "=&r"(p3),
                         [t] "=&r"(t), [t1] "=&r"(t1), [te] "=&r"(te), [m_np] "+m"(m_np), [m_d] "+m"(m_d)
                       : [mk] "r"(mk), [m_rb] "m"(m_rb), [m_cnt] "m"(m_cnt), [m_pk] "m"(m_pk)
                       : "cc", "memory");
    }
#undef EM_PKP_ROWS_HEAD
#undef EM_PKP_ROWS_TAIL
}
#undef EM_PKP_S2_WORD
#undef EM_PKP_S4_WORD
#undef EM_PKP_LD4
#undef EM_PK_S4_TWO_ROWS
#undef EM_PK_MACS

/* em_dot2_packed_u_int8_t (the offset form's sums) of rows w0, w1 over x[0 .. n) with pk = em_pk_pairs_int8_t(x,
 * n, ...) and whole its result: the whole words through em_dot2_pk_words, the rest of the row by the scalar loops
 * (as pk_fc_s8 in fc_packed.c does per chunk of rows). */
static inline void em_dot2_pk_s8(const uint8_t *w0, const uint8_t *w1, int wbits, const uint32_t *pk, int whole,
                                 const int8_t *x, int n, int32_t *a0, int32_t *a1) {
    em_dot2_pk_words(w0, w1, wbits, pk, (uint32_t)whole * (uint32_t)wbits / 32u, a0, a1);
    if (whole == n) return; /* the shipped shapes: no scalar part's tests */
    const size_t b = (size_t)whole * (size_t)wbits / 8u;
    int32_t r0, r1;
    em_dot2_packed_u_int8_t(w0 + b, w1 + b, wbits, x + whole, n - whole, &r0, &r1);
    *a0 += r0;
    *a1 += r1;
}

#endif /* EM_DOT_ASM */

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
