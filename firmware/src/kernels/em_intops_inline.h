/* Integer helpers shared by the kernels (internal, not part of the public API): the rules of edgemem.h, each
 * written so a 32-bit core runs it in few instructions. All shifts here floor for negative values without relying
 * on implementation-defined behaviour. */
#ifndef EM_INTOPS_INLINE_H
#define EM_INTOPS_INLINE_H

#include <stdint.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT && \
    defined(__GNUC__)
#include <arm_acle.h>
#define EM_SAT_DSP 1 /* QADD (saturating 32-bit add) and SSAT (saturate to N bits): one instruction each */
#endif

/* floor(x / 2^s), s in [0, 63]: for x < 0, ~x >= 0 and floor(x/2^s) == ~(~x >> s). */
static inline int64_t em_asr64(int64_t x, int s) { return x < 0 ? ~(~x >> s) : x >> s; }
static inline int32_t em_asr32(int32_t x, int s) { return x < 0 ? ~(~x >> s) : x >> s; }

static inline int16_t em_sat16_i(int64_t x) {
#ifdef EM_SAT_DSP
    /* x fits int32 iff its high word is the low word's sign: then one SSAT, else the sign picks the bound (gcc
     * converts the low word modulo 2^32, as it documents) */
    const int32_t lo = (int32_t)(uint32_t)(uint64_t)x, hi = (int32_t)em_asr64(x, 32);
    if (hi == (lo < 0 ? -1 : 0)) return (int16_t)__ssat(lo, 16);
    return hi < 0 ? INT16_MIN : INT16_MAX;
#else
    return (int16_t)(x > INT16_MAX ? INT16_MAX : (x < INT16_MIN ? INT16_MIN : x));
#endif
}
/* int32 flavour: one SSAT on the Cortex-M4 (gcc does not find it in the clamp), two compares elsewhere. The value
 * is in int16 range; typed int32 so that no sign extension follows the SSAT. */
static inline int32_t em_sat16_32i(int32_t x) {
#ifdef EM_SAT_DSP
    return __ssat(x, 16);
#else
    return x > INT16_MAX ? INT16_MAX : (x < INT16_MIN ? INT16_MIN : x);
#endif
}
static inline int32_t em_sat32_i(int64_t x) {
    return (int32_t)(x > INT32_MAX ? INT32_MAX : (x < INT32_MIN ? INT32_MIN : x));
}
/* sat32(a + b), exact for every pair. */
static inline int32_t em_add_sat32_i(int32_t a, int32_t b) {
#ifdef EM_SAT_DSP
    return __qadd(a, b);
#else
    return em_sat32_i((int64_t)a + b);
#endif
}

/* (x + 2^(s-1)) >> s without forming x + 2^(s-1) (which could overflow near INT64_MAX):
 * floor(x/2^s + 1/2) = floor(x/2^s) + bit (s-1) of x. s in [1, 63]. */
static inline int64_t em_rshift_round64_i(int64_t x, int s) {
    return em_asr64(x, s) + (em_asr64(x, s - 1) & 1);
}
/* Same for int32 inputs (Q15 decays: |x| <= 2^30), cheaper on 32-bit cores. s in [1, 31]. */
static inline int32_t em_rshift_round32_i(int32_t x, int s) {
    return em_asr32(x, s) + (em_asr32(x, s - 1) & 1);
}

/* The literal (x + 2^(s-1)) >> s, for callers whose |x| <= 2^62 + 2^55 (then the sum cannot overflow):
 * one add and one shift instead of two shifts. */
static inline int64_t em_rshift_round_bounded_i(int64_t x, int s) {
    return em_asr64(x + ((int64_t)1 << (s - 1)), s);
}

/* requant with a 64-bit accumulator |acc| <= 2^31 + 2^24 (int32 bias + a dot product of at most EM_MAX_DIM
 * int8 pairs) and any int32 mult: |acc * mult| <= 2^62 + 2^55, so the bounded rounding shift applies.
 * shift in [1, 62]. */
static inline int32_t em_requant_i(int64_t acc, int32_t mult, int shift) {
    return em_sat32_i(em_rshift_round_bounded_i(acc * (int64_t)mult, shift));
}

/* sat16(rshift_round(x, s)) for |x| <= 2^62 and s in [1, 62], with one 64-bit shift: y = floor(x / 2^(s-1)) and
 * rshift_round(x, s) = floor((y + 1) / 2) (adding 1/2 before the floor commutes with flooring the halves first), so
 * the result saturates high iff y >= 65535 and low iff y <= -65538; in between y + 1 fits int32. */
static inline int32_t em_rsr_sat16_i(int64_t x, int s) {
    const int64_t y = em_asr64(x, s - 1);
    if (y >= 65535) return INT16_MAX;
    if (y <= -65538) return INT16_MIN;
    return em_asr32((int32_t)y + 1, 1);
}

/* em_rsr_sat16_i out of line (intops.c): one copy serves every kernel, as the step runs one per output (or LMU
 * term), not per MAC. */
int32_t em_rsr_sat16(int64_t x, int s);

/* sat16(requant(acc, mult, shift)) for an int32 acc (sat32 of the sum done by the caller), any int32 mult, shift in
 * [1, 62]: sat16(sat32(v)) = sat16(v), so the int32 saturation of requant needs no step of its own. |acc * mult| <=
 * 2^62. One multiply here, the rest in em_rsr_sat16. */
static inline int32_t em_requant16(int32_t acc, int32_t mult, int shift) {
#if defined(EM_SAT_DSP) && defined(__thumb2__) && defined(__OPTIMIZE__) && !defined(EM_NO_ASM)
    /* Inline on the M4: every FC and CONV1D output pays this (0.2-0.8 instructions a MAC at the shipped shapes), so
     * asm: 7 instructions for shift >= 33, 14 below, against about 25 from gcc's code of the C below. x = acc * mult
     * (SMULL lo, hi; |x| <= 2^62), y = floor(x / 2^(shift-1)) and the result is sat16(floor((y + 1) / 2)) (the rule
     * of em_rsr_sat16_i). shift >= 33: y = hi >> (shift - 33), |y| <= 2^30. shift <= 32: k = shift - 1 in [0, 31],
     * y = lo >> k | hi << (32 - k) (a register shift by 32 gives 0: k = 0 is y = lo), which is floor(x / 2^k) iff
     * hi >> k is y's sign; otherwise |x / 2^k| >= 2^31 and y becomes INT32_MAX or INT32_MIN by hi's sign (the same
     * result after the saturation). Then SSAT #18 (y beyond +-2^17 saturates to the same int16 either way, and y + 1
     * cannot overflow), add 1, SSAT #16 of the sum ASR #1. test_kernels.c checks it against the literal formula. */
    uint32_t lo, hi, t = (uint32_t)shift;
    int32_t r;
    /* acc and mult are read only by the SMULL (which may overwrite them), shift is in t: few registers */
    __asm("smull %[lo], %[hi], %[a], %[m]\n\t"
          "subs %[t], %[t], #33\n\t"
          "bge 1f\n\t"
          "add %[t], %[t], #32\n\t"
          "lsr %[lo], %[lo], %[t]\n\t"
          "rsb %[r], %[t], #32\n\t"
          "lsl %[r], %[hi], %[r]\n\t"
          "orr %[lo], %[lo], %[r]\n\t"
          "asr %[t], %[hi], %[t]\n\t"
          "cmp %[t], %[lo], asr #31\n\t"
          "beq 2f\n\t"
          "mvn %[lo], #0x80000000\n\t"
          "eor %[lo], %[lo], %[hi], asr #31\n\t"
          "b 2f\n"
          "1:\n\t"
          "asr %[lo], %[hi], %[t]\n"
          "2:\n\t"
          "ssat %[lo], #18, %[lo]\n\t"
          "add %[lo], %[lo], #1\n\t"
          "ssat %[r], #16, %[lo], asr #1"
          : [lo] "=r"(lo), [hi] "=r"(hi), [t] "+r"(t), [r] "=r"(r)
          : [a] "r"(acc), [m] "r"(mult)
          : "cc");
    return r;
#else
#ifdef EM_SAT_DSP
    /* x = acc * mult is one SMULL (lo, hi); |x| <= 2^62. y = floor(x / 2^(shift-1)), and the result is
     * sat16(floor((y + 1) / 2)) = sat16((y >> 1) + (y & 1)), which cannot overflow in int32 (em_rsr_sat16_i's rule,
     * same values). */
    const int64_t x = (int64_t)acc * mult;
    const int32_t hi = (int32_t)em_asr64(x, 32);
    if (shift > 32) { /* y = floor(hi / 2^(shift-33)): |y| <= 2^30, fits int32 */
        const int32_t y = em_asr32(hi, shift - 33);
        return __ssat(em_asr32(y, 1) + (y & 1), 16);
    }
    if (shift > 1) { /* k = shift - 1 in [1, 31]: y = (hi:lo) >> k; it fits int32 iff its high word is the low word's sign */
        const int k = shift - 1;
        const uint32_t lo = (uint32_t)(uint64_t)x;
        const int32_t y = (int32_t)((lo >> k) | ((uint32_t)hi << (32 - k))); /* modulo 2^32, as gcc documents */
        if (em_asr32(hi, k) != (y < 0 ? -1 : 0)) return hi < 0 ? INT16_MIN : INT16_MAX; /* |y| >= 2^31 */
        return __ssat(em_asr32(y, 1) + (y & 1), 16);
    }
#endif
    return em_rsr_sat16((int64_t)acc * mult, shift);
#endif
}

/* Store a requantized result r into an s32 sum buffer as int16: assign sat16(r), or (acc != 0, graph flag ACC)
 * add it, *p = sat16(*p + sat16(r)): every contribution and the sum are int16, as TFLite's int16
 * FULLY_CONNECTED outputs and ADD compute them (docs/tflite.md). *p may hold any int32 (a state buffer). */
static inline void em_store16_i(int32_t *p, int32_t c, int acc) { /* c already in int16 range (em_requant16) */
    *p = acc ? em_sat16_32i(em_add_sat32_i(*p, c)) : c;
}
static inline void em_store32_i(int32_t *p, int32_t r, int acc) { em_store16_i(p, em_sat16_32i(r), acc); }

#endif /* EM_INTOPS_INLINE_H */
