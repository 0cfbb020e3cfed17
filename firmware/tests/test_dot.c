/* The dot products of em_dot_inline.h and the packed-weight ones of em_packed_inline.h against the literal loop (int64, one term at a time): every function, every
 * length 1..67 (each tail of the 4-, 8- and 16-lane paths, several whole vectors) and 1024 (EM_MAX_DIM), random
 * values and the extremes (all -128 / 127 / -32768 / 32767, and alternating signs, so each sum reaches its stated
 * bound). The host runs the scalar loops, the M4 (QEMU) the DSP paths, the M55 (QEMU) the Helium (MVE) paths. The
 * vectors start at odd offsets inside their buffers, so no path relies on alignment beyond the element's. */
#include "em_dot_inline.h"
#include "em_packed_inline.h"
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

/* em_dot2_packed_u_T: sum_i (w_i + half) * x[i], w_i the two's complement field i (low bits first), written out
 * literally here. Rows of whole bytes: n a multiple of 2 (S4) or 4 (S2). */
static uint8_t p0[N_MAX / 2 + PAD], p1[N_MAX / 2 + PAD];

static int64_t ref_packed(const uint8_t *w, int wbits, int n, const int8_t *x8, const int16_t *x16) {
    const int per = 8 / wbits, half = 1 << (wbits - 1);
    int64_t s = 0;
    for (int i = 0; i < n; i++) {
        int f = (w[i / per] >> (wbits * (i % per))) & ((1 << wbits) - 1);
        if (f >= half) f -= 2 * half;
        s += (int64_t)(f + half) * (x8 ? x8[i] : x16[i]);
    }
    return s;
}

#ifdef EM_DOT_ASM
static int64_t ref_sum(const int8_t *x8, const int16_t *x16, int n) {
    int64_t s = 0;
    for (int i = 0; i < n; i++) s += x8 ? x8[i] : x16[i];
    return s;
}
#endif

static void check_packed(int wbits, int n, int off) {
    const uint8_t *w0 = p0 + off, *w1 = p1 + off;
    int32_t r0, r1;
    em_dot2_packed_u_int8_t(w0, w1, wbits, a8 + off, n, &r0, &r1);
    CHECK_EQ(r0, ref_packed(w0, wbits, n, a8 + off, NULL));
    CHECK_EQ(r1, ref_packed(w1, wbits, n, a8 + off, NULL));
    int64_t q0, q1;
    em_dot2_packed_u_int16_t(w0, w1, wbits, a16 + off, n, &q0, &q1);
    CHECK_EQ(q0, ref_packed(w0, wbits, n, NULL, a16 + off));
    CHECK_EQ(q1, ref_packed(w1, wbits, n, NULL, a16 + off));
#ifdef EM_DOT_ASM /* the pre-paired M4 path: pairs once, then whole words in asm and the row's tail scalar */
    static uint32_t pk[N_MAX / 2];
    int32_t sum;
    int whole = em_pk_pairs_int8_t(a8 + off, n, wbits, pk, &sum);
    CHECK_EQ(whole, n / (32 / wbits) * (32 / wbits)); /* whole words */
    CHECK_EQ(sum, ref_sum(a8 + off, NULL, n));
    em_dot2_pk_s8(w0, w1, wbits, pk, whole, a8 + off, n, &r0, &r1);
    CHECK_EQ(r0, ref_packed(w0, wbits, n, a8 + off, NULL));
    CHECK_EQ(r1, ref_packed(w1, wbits, n, a8 + off, NULL));
    whole = em_pk_pairs_int16_t(a16 + off, n, wbits, pk, &sum);
    CHECK_EQ(sum, ref_sum(NULL, a16 + off, n));
    int32_t v0, v1; /* the whole words (an int16 row's tail is not taken from the pairs) */
    em_dot2_pk_words(w0, w1, wbits, pk, (uint32_t)whole * (uint32_t)wbits / 32u, &v0, &v1);
    CHECK_EQ(v0, ref_packed(w0, wbits, whole, NULL, a16 + off));
    CHECK_EQ(v1, ref_packed(w1, wbits, whole, NULL, a16 + off));
#endif
}

#ifdef EM_DOT_ASM
/* em_pk_rowpairs: `pairs` row pairs of `words` whole words each, back to back from wr + off, against the literal
 * sums */
static uint8_t wr[2 * 5 * 16 * 4 + PAD];
static void check_rowpairs(int wbits, uint32_t words, uint32_t pairs, int off) {
    static uint32_t pk[N_MAX / 2];
    const int n = (int)words * (32 / wbits);
    int32_t sum, d[2 * 5];
    em_pk_pairs_int8_t(a8 + off, n, wbits, pk, &sum);
    em_pk_rowpairs(wr + off, wbits, pk, words, pairs, d);
    for (uint32_t r = 0; r < 2 * pairs; r++)
        CHECK_EQ(d[r], ref_packed(wr + off + r * words * 4, wbits, n, a8 + off, NULL));
    em_pk_pairs_int16_t(a16 + off, n, wbits, pk, &sum);
    em_pk_rowpairs(wr + off, wbits, pk, words, pairs, d);
    for (uint32_t r = 0; r < 2 * pairs; r++)
        CHECK_EQ(d[r], ref_packed(wr + off + r * words * 4, wbits, n, NULL, a16 + off));
}
#endif

/* weights: random, then every field at its minimum (0x88 / 0xAA bytes: u = 0), maximum (0x77 / 0x55: u = 15 / 3),
 * -1 (0xFF) and 0; inputs: random and the extremes of fill() */
static void test_dot_packed(void) {
    static const uint8_t bytes[2][4] = {{0x88, 0x77, 0xFF, 0x00}, {0xAA, 0x55, 0xFF, 0x00}};
    for (int kind = 0; kind < 5; kind++) {
        fill(kind);
        for (int wb = 0; wb < 2; wb++) {
            const int wbits = wb ? 2 : 4, per = 8 / wbits;
            for (int wk = 0; wk < 5; wk++) {
                for (int i = 0; i < N_MAX / 2 + PAD; i++) {
                    p0[i] = wk == 4 ? (uint8_t)t_rand() : bytes[wb][wk];
                    p1[i] = wk == 4 ? (uint8_t)t_rand() : bytes[wb][3 - wk];
                }
                for (int n = per; n <= 132; n += per) check_packed(wbits, n, (n / per) % (PAD + 1));
                check_packed(wbits, N_MAX, 0);
                check_packed(wbits, N_MAX - per, PAD);
#ifdef EM_DOT_ASM
                for (size_t i = 0; i < sizeof wr; i++)
                    wr[i] = wk == 4 ? (uint8_t)t_rand() : bytes[wb][(wk + i / 8) % 4];
                for (uint32_t words = 1; words <= 16; words++)
                    if (wbits == 2 || words % 2 == 0)
                        for (uint32_t pairs = 1; pairs <= 5; pairs += 2)
                            check_rowpairs(wbits, words, pairs, (int)words % (PAD + 1));
#endif
            }
        }
    }
}

void suite_dot(void) {
    RUN(test_dot_lengths);
    RUN(test_dot_tail_lanes);
    RUN(test_dot_packed);
}
