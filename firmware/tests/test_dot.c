/* The dot products of em_dot_inline.h against the literal loop (int64, one term at a time): every function, every
 * length 1..67 (each tail of the 4-, 8- and 16-lane paths, several whole vectors) and 1024 (EM_MAX_DIM), random
 * values and the extremes (all -128 / 127 / -32768 / 32767, and alternating signs, so each sum reaches its stated
 * bound). The host runs the scalar loops, the M4 (QEMU) the DSP paths, the M55 (QEMU) the Helium (MVE) paths. The
 * vectors start at odd offsets inside their buffers, so no path relies on alignment beyond the element's. */
#include "em_dot_inline.h"
#include "em_test.h"

enum { N_MAX = 1024, PAD = 3 };

static int8_t a8[N_MAX + PAD], b8[N_MAX + PAD], c8[N_MAX + PAD];
static int16_t a16[N_MAX + PAD], b16[N_MAX + PAD], c16[N_MAX + PAD];

static int64_t ref_s8(const int8_t *a, const int8_t *b, int n) {
    int64_t s = 0;
    for (int i = 0; i < n; i++) s += (int64_t)a[i] * b[i];
    return s;
}
static int64_t ref_s16(const int16_t *a, const int16_t *b, int n) {
    int64_t s = 0;
    for (int i = 0; i < n; i++) s += (int64_t)a[i] * b[i];
    return s;
}
static int64_t ref_s8_s16(const int8_t *w, const int16_t *x, int n) {
    int64_t s = 0;
    for (int i = 0; i < n; i++) s += (int64_t)w[i] * x[i];
    return s;
}

/* fill: 0 random, 1 minimum, 2 maximum, 3 alternating min/max (a) against max/min (b): every product at its most
 * negative, 4 a at the minimum against b at the minimum (the largest positive products) */
static void fill(int kind) {
    for (int i = 0; i < N_MAX + PAD; i++) {
        const int odd = i & 1;
        switch (kind) {
        case 0:
            a8[i] = (int8_t)t_range(-128, 127), b8[i] = (int8_t)t_range(-128, 127), c8[i] = (int8_t)t_range(-128, 127);
            a16[i] = (int16_t)t_range(-32768, 32767), b16[i] = (int16_t)t_range(-32768, 32767);
            c16[i] = (int16_t)t_range(-32768, 32767);
            break;
        case 1:
            a8[i] = b8[i] = c8[i] = -128;
            a16[i] = b16[i] = c16[i] = -32768;
            break;
        case 2:
            a8[i] = b8[i] = c8[i] = 127;
            a16[i] = b16[i] = c16[i] = 32767;
            break;
        case 3:
            a8[i] = c8[i] = odd ? 127 : -128, b8[i] = odd ? -128 : 127;
            a16[i] = c16[i] = odd ? 32767 : -32768, b16[i] = odd ? -32768 : 32767;
            break;
        default:
            a8[i] = b8[i] = -128, c8[i] = 127;
            a16[i] = b16[i] = -32768, c16[i] = 32767;
            break;
        }
    }
}

static void check_len(int n, int off) {
    const int8_t *a = a8 + off, *b = b8 + off, *c = c8 + off;
    const int16_t *x = a16 + off, *y = b16 + off, *z = c16 + off;
    CHECK_EQ(em_dot_s8(a, b, n), ref_s8(a, b, n));
    int32_t r0, r1;
    em_dot2_s8(a, c, b, n, &r0, &r1);
    CHECK_EQ(r0, ref_s8(a, b, n));
    CHECK_EQ(r1, ref_s8(c, b, n));
    CHECK_EQ(em_dot_s16(x, y, n), ref_s16(x, y, n));
    int64_t q0, q1;
    em_dot2_s16(x, z, y, n, &q0, &q1);
    CHECK_EQ(q0, ref_s16(x, y, n));
    CHECK_EQ(q1, ref_s16(z, y, n));
    CHECK_EQ(em_dot_s8_s16(a, y, n), ref_s8_s16(a, y, n));
    em_dot2_s8_s16(a, c, y, n, &q0, &q1);
    CHECK_EQ(q0, ref_s8_s16(a, y, n));
    CHECK_EQ(q1, ref_s8_s16(c, y, n));
}

static void test_dot_lengths(void) {
    for (int kind = 0; kind < 5; kind++) {
        fill(kind);
        for (int n = 1; n <= 67; n++) check_len(n, n % (PAD + 1));
        check_len(N_MAX, 0);
        check_len(N_MAX - 1, PAD);
    }
}

/* The last element of a partial vector decides the sum: a wrong tail predicate (one lane too few or too many, or a
 * lane past n read) changes it. Lanes past n hold a poison value that would show in the sum. */
static void test_dot_tail_lanes(void) {
    fill(0);
    for (int n = 1; n <= 40; n++) {
        for (int i = n; i < N_MAX + PAD; i++) a8[i] = b8[i] = c8[i] = 127, a16[i] = b16[i] = c16[i] = 32767;
        a8[n - 1] = -128, b8[n - 1] = -128, c8[n - 1] = 127;
        a16[n - 1] = -32768, b16[n - 1] = -32768, c16[n - 1] = 32767;
        check_len(n, 0);
    }
}

void suite_dot(void) {
    RUN(test_dot_lengths);
    RUN(test_dot_tail_lanes);
}
