/* edgemem integer primitives: the public wrappers of em_intops_inline.h (the single C copy of the rules in
 * docs/architecture.md) and the out-of-line requant every kernel calls. Right shifts of negative values must floor;
 * C99 leaves that implementation-defined, so em_asr64 builds the flooring shift from shifts of non-negative values
 * only (gcc folds it back into one arithmetic shift). */
#include "em_kernels.h"
#include "em_intops_inline.h"

int16_t em_sat16(int64_t x) { return em_sat16_i(x); }

int32_t em_sat32(int64_t x) { return em_sat32_i(x); }

/* (x + 2^(s-1)) >> s, shift in [1, 63]; shifts outside are clamped (the contract says s >= 1). */
int64_t em_rshift_round(int64_t x, int shift) {
    if (shift < 1) shift = 1;
    if (shift > 63) shift = 63;
    return em_rshift_round64_i(x, shift);
}

/* sat32(((int64)acc * mult + 2^(shift-1)) >> shift); shift clamped to [1, 62] like the contract's range. */
int32_t em_requant(int32_t acc, int32_t mult, int shift) {
    if (shift < 1) shift = 1;
    if (shift > 62) shift = 62;
    return em_requant_i((int64_t)acc, mult, shift);
}

/* The kernels' requant and LMU rounding (em_intops_inline.h): one copy for every kernel. */
int32_t em_rsr_sat16(int64_t x, int s) { return em_rsr_sat16_i(x, s); }
