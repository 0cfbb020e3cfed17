/* Kernel tests: the integer primitives against the literal formulas, the LIF kernel against hand values and a
 * naive reference (the other graph kernels: test_graph_kernels.c). */
#include <string.h>

#include "em_intops_inline.h"
#include "em_kernels.h"
#include "em_test.h"

/* The spec formulas written literally (host gcc shifts arithmetically; inputs chosen so nothing overflows). */
static int64_t ref_sat(int64_t x, int bits) {
    int64_t hi = ((int64_t)1 << (bits - 1)) - 1, lo = -hi - 1;
    return x > hi ? hi : x < lo ? lo : x;
}
static int64_t ref_rshift_round(int64_t x, int s) { return (x + ((int64_t)1 << (s - 1))) >> s; }
static int32_t ref_requant(int64_t acc, int32_t m, int s) { return (int32_t)ref_sat(ref_rshift_round(acc * m, s), 32); }

static void test_sat(void) {
    CHECK_EQ(em_sat16(32767), 32767);
    CHECK_EQ(em_sat16(32768), 32767);
    CHECK_EQ(em_sat16(-32768), -32768);
    CHECK_EQ(em_sat16(-32769), -32768);
    CHECK_EQ(em_sat16(INT64_MAX), 32767);
    CHECK_EQ(em_sat16(INT64_MIN), -32768);
    CHECK_EQ(em_sat16(-5), -5);
    CHECK_EQ(em_sat32((int64_t)INT32_MAX + 1), INT32_MAX);
    CHECK_EQ(em_sat32((int64_t)INT32_MIN - 1), INT32_MIN);
    CHECK_EQ(em_sat32(INT32_MAX), INT32_MAX);
    CHECK_EQ(em_sat32(INT32_MIN), INT32_MIN);
    CHECK_EQ(em_sat32(INT64_MAX), INT32_MAX);
    CHECK_EQ(em_sat32(INT64_MIN), INT32_MIN);
    CHECK_EQ(em_sat32(123456), 123456);
}

static void test_rshift_round(void) {
    CHECK_EQ(em_rshift_round(5, 1), 3);   /* 2.5 -> 3 (half up) */
    CHECK_EQ(em_rshift_round(-5, 1), -2); /* -2.5 -> -2 (half up, floor shift) */
    CHECK_EQ(em_rshift_round(-6, 2), -1); /* -1.5 -> -1 */
    CHECK_EQ(em_rshift_round(-7, 2), -2); /* -1.75 -> -2 */
    CHECK_EQ(em_rshift_round(-1, 15), 0);
    CHECK_EQ(em_rshift_round(-16384, 15), 0);  /* -0.5 -> 0 */
    CHECK_EQ(em_rshift_round(-16385, 15), -1);
    CHECK_EQ(em_rshift_round(16384, 15), 1);   /* 0.5 -> 1 */
    /* no overflow at the int64 edges (x + 2^(s-1) would overflow) */
    CHECK_EQ(em_rshift_round(INT64_MAX, 1), (int64_t)1 << 62);
    CHECK_EQ(em_rshift_round(INT64_MIN, 1), -((int64_t)1 << 62));
    CHECK_EQ(em_rshift_round(INT64_MAX, 63), 1);
    CHECK_EQ(em_rshift_round(INT64_MIN, 63), -1);
    for (int k = 0; k < 20000; k++) {
        int s = t_range(1, 40);
        int64_t x = (int64_t)t_range(INT32_MIN, INT32_MAX) * 65536 + t_range(-65536, 65536);
        CHECK_EQ(em_rshift_round(x, s), ref_rshift_round(x, s));
    }
}

static void test_requant(void) {
    const int32_t half = 1 << 30; /* mult 2^30 with shift 31 multiplies by 0.5: exposes ties */
    CHECK_EQ(em_requant(1, half, 31), 1);   /* 0.5 -> 1 */
    CHECK_EQ(em_requant(-1, half, 31), 0);  /* -0.5 -> 0 */
    CHECK_EQ(em_requant(3, half, 31), 2);   /* 1.5 -> 2 */
    CHECK_EQ(em_requant(-3, half, 31), -1); /* -1.5 -> -1 */
    CHECK_EQ(em_requant(-4, half, 31), -2);
    CHECK_EQ(em_requant(-5, half, 31), -2); /* -2.5 -> -2 */
    CHECK_EQ(em_requant(0, INT32_MAX, 62), 0);
    /* shift 1: x * M / 2 saturates at both ends */
    CHECK_EQ(em_requant(INT32_MAX, INT32_MAX, 1), INT32_MAX);
    CHECK_EQ(em_requant(INT32_MIN, INT32_MAX, 1), INT32_MIN);
    CHECK_EQ(em_requant(1, half, 1), 1 << 29); /* 2^29 + 0.5 -> 2^29 */
    CHECK_EQ(em_requant(-1, half, 1), -(1 << 29));
    CHECK_EQ(em_requant(4, half, 1), INT32_MAX);          /* 2^31 just saturates */
    CHECK_EQ(em_requant(-4, half, 1), INT32_MIN);         /* -2^31 fits exactly */
    CHECK_EQ(em_requant(-5, half, 1), INT32_MIN);
    /* shift 62: the largest products round to +-1 */
    CHECK_EQ(em_requant(INT32_MAX, INT32_MAX, 62), 1);
    CHECK_EQ(em_requant(INT32_MIN, INT32_MAX, 62), -1);
    CHECK_EQ(em_requant(1 << 30, 1 << 30, 62), 0);        /* 0.25 */
    CHECK_EQ(em_requant(1 << 30, INT32_MAX, 62), 0);      /* just under 0.5 */
    CHECK_EQ(em_requant(INT32_MIN, 1 << 30, 62), 0);      /* exactly -0.5 -> 0 */
    for (int k = 0; k < 50000; k++) {
        int32_t acc = t_range(INT32_MIN, INT32_MAX), m = t_range(1 << 30, INT32_MAX);
        int s = t_range(1, 62);
        if (k % 3 == 0) acc = t_range(-100000, 100000);
        CHECK_EQ(em_requant(acc, m, s), ref_requant(acc, m, s));
    }
}

/* The kernels' out-of-line requant (em_intops_inline.h): sat16(requant(acc)) and sat16(rshift_round(x, s)) equal
 * the literal formulas over the whole int32 acc and mult range, every shift, and at each saturation edge. */
static void test_requant16(void) {
    for (int k = 0; k < 200000; k++) {
        const int32_t acc = k % 4 == 0 ? t_range(-70000, 70000) : t_range(INT32_MIN, INT32_MAX);
        const int32_t m = k % 3 == 0 ? t_range(INT32_MIN, INT32_MAX) : t_range(1 << 30, INT32_MAX);
        const int s = t_range(1, 62);
        CHECK_EQ(em_requant16(acc, m, s), ref_sat(ref_requant(acc, m, s), 16));
    }
    const int32_t ex[] = {0, 1, -1, 2, -2, INT32_MAX, INT32_MIN, INT32_MAX - 1, INT32_MIN + 1, 1 << 30, -(1 << 30)};
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++)
        for (size_t j = 0; j < sizeof ex / sizeof ex[0]; j++)
            for (int s = 1; s <= 62; s++)
                CHECK_EQ(em_requant16(ex[i], ex[j], s), ref_sat(ref_requant(ex[i], ex[j], s), 16));
    /* acc * mult = e * 2^(s-1) + d with mult = 2^t: the edges where y = floor(x / 2^(s-1)) saturates or not (y near
     * +-2^16) and where y stops fitting int32, for every shift the M4's asm splits at (s <= 32 and s >= 33) */
    for (int s = 1; s <= 62; s++)
        for (int t = 0; t <= 30; t++) {
            const int e0 = s - 1 - t; /* acc = e * 2^e0 + d */
            if (e0 < 0 || e0 > 14) continue;
            const int32_t edges[] = {65534, 65535, 65536, -65536, -65537, -65538, -65539, 32767, -32768, 0, 1, -1};
            for (size_t e = 0; e < sizeof edges / sizeof edges[0]; e++)
                for (int d = -2; d <= 2; d++) {
                    const int32_t acc = (int32_t)(edges[e] * ((int64_t)1 << e0) + d);
                    CHECK_EQ(em_requant16(acc, (int32_t)1 << t, s), ref_sat(ref_requant(acc, (int32_t)1 << t, s), 16));
                    CHECK_EQ(em_requant16(acc, -((int32_t)1 << t), s),
                             ref_sat(ref_requant(acc, -((int32_t)1 << t), s), 16));
                }
        }
    /* rshift_round then sat16, around the edges where y = floor(x / 2^(s-1)) decides: 65534/65535 and -65537/-65538 */
    for (int s = 1; s <= 62; s++) {
        const int64_t edges[] = {65534, 65535, 65536, -65536, -65537, -65538, -65539, 0, 1, -1};
        for (size_t e = 0; e < sizeof edges / sizeof edges[0] && s <= 46; e++) /* |x| <= 2^62 beyond */
            for (int d = -2; d <= 2; d++) {
                const int64_t x = edges[e] * ((int64_t)1 << (s - 1)) + d;
                CHECK_EQ(em_rsr_sat16(x, s), ref_sat(ref_rshift_round(x, s), 16));
            }
        for (int k = 0; k < 2000; k++) {
            const int64_t x = (int64_t)t_range(INT32_MIN, INT32_MAX) * ((int64_t)1 << t_range(0, 30)) + t_range(-9, 9);
            CHECK_EQ(em_rsr_sat16(x, s), ref_sat(ref_rshift_round(x, s), 16));
        }
    }
    CHECK_EQ(em_rsr_sat16((int64_t)1 << 62, 62), 1);
    CHECK_EQ(em_rsr_sat16(-((int64_t)1 << 62), 62), -1);
    CHECK_EQ(em_rsr_sat16(((int64_t)1 << 62) - 1, 1), INT16_MAX);
    CHECK_EQ(em_rsr_sat16(-((int64_t)1 << 62), 1), INT16_MIN);
    /* the store: int16 contributions and an int16 sum, whatever int32 the sum buffer held */
    int32_t p = INT32_MAX;
    em_store32_i(&p, 5, 1);
    CHECK_EQ(p, INT16_MAX);
    p = INT32_MIN;
    em_store32_i(&p, INT32_MIN, 1);
    CHECK_EQ(p, INT16_MIN);
    p = 40000;
    em_store32_i(&p, INT32_MIN, 1);
    CHECK_EQ(p, 40000 - 32768);
    em_store32_i(&p, 70000, 0);
    CHECK_EQ(p, INT16_MAX);
    CHECK_EQ(em_add_sat32_i(INT32_MAX, 1), INT32_MAX);
    CHECK_EQ(em_add_sat32_i(INT32_MIN, -1), INT32_MIN);
    CHECK_EQ(em_add_sat32_i(INT32_MIN, INT32_MAX), -1);
}

static void ref_lif(const int32_t *cur, int16_t *mem, int16_t *syn, const int16_t *beta, const int16_t *alpha,
                    const int16_t *thr, int n, int8_t *spk) {
    for (int i = 0; i < n; i++) {
        int64_t reset = mem[i] > thr[i] ? thr[i] : 0;
        int64_t c = ref_sat(cur[i], 16);
        if (syn) {
            c = ref_sat(ref_rshift_round((int64_t)alpha[i] * syn[i], 15) + c, 16);
            syn[i] = (int16_t)c; /* the membrane sees the stored, saturated synaptic current (as TFLite) */
        }
        mem[i] = (int16_t)ref_sat(ref_sat(ref_rshift_round((int64_t)beta[i] * mem[i], 15) - reset, 16) + c, 16);
        spk[i] = mem[i] > thr[i];
    }
}

static void test_lif_hand(void) {
    /* LIF: beta 0.5, thr 100 */
    int16_t mem[3] = {0, 150, 101}, beta[3] = {16384, 16384, 16384}, thr[3] = {100, 100, 100};
    int32_t cur[3] = {120, 0, 1000000};
    int8_t spk[3];
    CHECK_EQ(em_lif_s16(cur, mem, NULL, beta, NULL, thr, 3, spk), EM_OK);
    CHECK_EQ(mem[0], 120); /* 0*0.5 + 120 */
    CHECK_EQ(spk[0], 1);
    CHECK_EQ(mem[1], -25); /* 75 + 0 - 100 (reset by subtraction: 150 > thr) */
    CHECK_EQ(spk[1], 0);
    CHECK_EQ(mem[2], 32767 - 100 + 51); /* cur saturates to 32767 first, then 51 - 100 + 32767 = 32718 */
    CHECK_EQ(spk[2], 1);
    /* ties in the decay round half up: 0.5 * 3 = 1.5 -> 2, 0.5 * -3 = -1.5 -> -1 */
    int16_t m2[2] = {3, -3};
    int32_t z[2] = {0, 0};
    CHECK_EQ(em_lif_s16(z, m2, NULL, beta, NULL, thr, 2, spk), EM_OK);
    CHECK_EQ(m2[0], 2);
    CHECK_EQ(m2[1], -1);
    /* membrane saturates low: beta 1-2^-15 on -32768 with a big negative current */
    int16_t m3[1] = {-32768}, b3[1] = {32767}, t3[1] = {1};
    int32_t c3[1] = {INT32_MIN};
    CHECK_EQ(em_lif_s16(c3, m3, NULL, b3, NULL, t3, 1, spk), EM_OK);
    CHECK_EQ(m3[0], -32768);
    CHECK_EQ(spk[0], 0);
    /* CuBa: syn = 0.5 * syn + c, mem = 0.5 * mem + syn - reset */
    int16_t mem4[1] = {300}, syn4[1] = {1000}, alpha4[1] = {16384}, beta4[1] = {16384}, thr4[1] = {200};
    int32_t cur4[1] = {40};
    CHECK_EQ(em_lif_s16(cur4, mem4, syn4, beta4, alpha4, thr4, 1, spk), EM_OK);
    CHECK_EQ(syn4[0], 540);
    CHECK_EQ(mem4[0], 150 + 540 - 200);
    CHECK_EQ(spk[0], 1);
    /* syn saturates, and the membrane integrates the saturated value (int16 after each op, as TFLite) */
    int16_t syn5[1] = {32000}, mem5[1] = {-20000};
    int32_t cur5[1] = {40000};
    CHECK_EQ(em_lif_s16(cur5, mem5, syn5, beta4, alpha4, thr4, 1, spk), EM_OK);
    CHECK_EQ(syn5[0], 32767); /* 16000 + 32767 (the current saturates first) */
    CHECK_EQ(mem5[0], -10000 + 32767);
    int16_t syn6[1] = {32000}, mem6[1] = {-40000 / 2};
    int32_t cur6[1] = {20000};
    CHECK_EQ(em_lif_s16(cur6, mem6, syn6, beta4, alpha4, thr4, 1, spk), EM_OK);
    CHECK_EQ(syn6[0], 32767);          /* 16000 + 20000 = 36000 -> saturated */
    CHECK_EQ(mem6[0], -10000 + 32767); /* the saturated syn, not 36000 */
    /* decay - reset saturates before the current is added: thr -30000 fires at rest; a full membrane decays to
     * 32767 - (-30000) -> 32767, then + (-20000) = 12767 (not 32767 + 30000 - 20000 -> 32767) */
    int16_t mem7[1] = {32767}, b7[1] = {32767}, t7[1] = {-30000};
    int32_t cur7[1] = {-20000};
    CHECK_EQ(em_lif_s16(cur7, mem7, NULL, b7, NULL, t7, 1, spk), EM_OK);
    CHECK_EQ(mem7[0], 12767);
    CHECK_EQ(em_lif_s16(cur5, mem5, syn5, beta4, NULL, thr4, 1, spk), EM_ERR_NULL);
    CHECK_EQ(em_lif_s16(cur5, mem5, NULL, beta4, NULL, thr4, 0, spk), EM_ERR_DIMS);
}

static void test_lif_random(void) {
    enum { N = 64 };
    int16_t mem[N], syn[N], rmem[N], rsyn[N], beta[N], alpha[N], thr[N];
    int32_t cur[N];
    int8_t spk[N], rspk[N];
    for (int k = 0; k < 500; k++) {
        int cuba = k % 2;
        for (int i = 0; i < N; i++) {
            mem[i] = rmem[i] = (int16_t)t_range(-32768, 32767);
            syn[i] = rsyn[i] = (int16_t)t_range(-32768, 32767);
            beta[i] = (int16_t)t_range(0, 32767);
            alpha[i] = (int16_t)t_range(0, 32767);
            thr[i] = (int16_t)t_range(1, 32767);
            cur[i] = k % 3 ? t_range(-40000, 40000) : t_range(INT32_MIN, INT32_MAX);
        }
        CHECK_EQ(em_lif_s16(cur, mem, cuba ? syn : NULL, beta, alpha, thr, N, spk), EM_OK);
        ref_lif(cur, rmem, cuba ? rsyn : NULL, beta, alpha, thr, N, rspk);
        CHECK(memcmp(mem, rmem, sizeof mem) == 0);
        CHECK(memcmp(syn, rsyn, sizeof syn) == 0);
        CHECK(memcmp(spk, rspk, sizeof spk) == 0);
    }
}


/* Log-mel (the bit-exact check against the Python spec is tests/test_logmel.py): a DC frame and silence, whose
 * spectra need only the twiddles at k = 0, n_fft/4, n_fft/2, checked by hand. n_fft = win = 64, hop 32, 2 bands:
 * band 0 = bin 0 (weight 32767), band 1 = bins 5..6 (no energy: eps only). Output scale 4 steps per octave:
 * out = round(4 log2(mel + eps)), mult 2^30, shift 48. */
static double t_ln(double x) { /* 2 atanh((x-1)/(x+1)), x in [1, 2] */
    const double z = (x - 1) / (x + 1), z2 = z * z;
    double term = z, sum = 0;
    for (int k = 0; k < 30; k++, term *= z2) sum += term / (2 * k + 1);
    return 2 * sum;
}

static void test_logmel(void) {
    enum { N = 64, M = 32, W = 64, H = 32, B = 2 };
    int16_t window[W], fb[2 + 1 + 2 + 2] = {0, 1, 32767, 5, 2, 16000, 16000}, hist[W - H], pcm[H];
    int32_t t1[M + 1 + 65], scratch[N + 2 + 1];
    int8_t out[B];
    /* eps = round(1e-6 * 2^71) = 2361183241434823 = 549755 * 2^32 + 3495622342 */
    const int32_t bq[3 * B + 3] = {0, 1 << 30, 48, 0, 1 << 30, 48, 0, (int32_t)(3495622342u - 4294967296ll), 549755};
    for (int i = 0; i < W; i++) window[i] = 32767;
    for (int k = 0; k <= M; k++) t1[k] = 12345; /* unused by DC and silence */
    t1[0] = 1 << 30;
    t1[M / 2] = 0;
    t1[M] = -(1 << 30);
    for (int i = 0; i <= 64; i++) t1[M + 1 + i] = (int32_t)(t_ln(1.0 + i / 64.0) / t_ln(2.0) * 67108864.0 + 0.5);
    /* silence: mel 0, 4 log2(1e-6) = -79.7 */
    for (int i = 0; i < W - H; i++) hist[i] = 0;
    for (int i = 0; i < H; i++) pcm[i] = 0;
    CHECK_EQ(em_logmel_s16(pcm, hist, out, W, H, N, B, window, t1, fb, bq, scratch), EM_OK);
    CHECK_EQ(out[0], -80);
    CHECK_EQ(out[1], -80);
    /* DC 1000: X[0] = 64 * 1000/32768 * 32767/32768, mel = X0^2 * 32767/32768 = 3.8144, 4 log2 = 7.73 */
    for (int i = 0; i < H; i++) pcm[i] = 1000;
    CHECK_EQ(em_logmel_s16(pcm, hist, out, W, H, N, B, window, t1, fb, bq, scratch), EM_OK);
    CHECK_EQ(hist[0], 1000); /* the history is the frame's last W - H samples */
    /* half the frame was the zero history (a step: band 1 gets energy): X[0] halves, 4 log2 = 7.73 - 8 = -0.27 */
    CHECK_EQ(out[0], 0);
    CHECK_EQ(em_logmel_s16(pcm, hist, out, W, H, N, B, window, t1, fb, bq, scratch), EM_OK);
    CHECK_EQ(out[0], 8);
    CHECK_EQ(out[1], -80);
    /* errors */
    CHECK_EQ(em_logmel_buffer_size(W, H, N, B), (N + 2) * 4);
    CHECK_EQ(em_logmel_buffer_size(W, H, 96, B), 0);
    CHECK_EQ(em_logmel_s16(NULL, hist, out, W, H, N, B, window, t1, fb, bq, scratch), EM_ERR_NULL);
    CHECK_EQ(em_logmel_s16(pcm, hist, out, W, H, N, B, window, t1, fb, bq, NULL), EM_ERR_NULL);
    CHECK_EQ(em_logmel_s16(pcm, hist, out, W, H, 2048, B, window, t1, fb, bq, scratch), EM_ERR_DIMS);
    CHECK_EQ(em_logmel_s16(pcm, hist, out, W, W + 1, N, B, window, t1, fb, bq, scratch), EM_ERR_DIMS);
    CHECK_EQ(em_logmel_s16(pcm, hist, out, N + 1, H, N, B, window, t1, fb, bq, scratch), EM_ERR_DIMS);
    CHECK_EQ(em_logmel_s16(pcm, hist, out, W, H, N, 257, window, t1, fb, bq, scratch), EM_ERR_DIMS);
    CHECK_EQ(em_logmel_s16(pcm, hist, out, W, H, N, B, window, t1, fb, bq, (char *)scratch + 2), EM_ERR_ALIGN);
    fb[4] = 40; /* band 1 past bin 32 */
    CHECK_EQ(em_logmel_s16(pcm, hist, out, W, H, N, B, window, t1, fb, bq, scratch), EM_ERR_PARAM);
}

void suite_kernels(void) {
    RUN(test_sat);
    RUN(test_rshift_round);
    RUN(test_requant);
    RUN(test_requant16);
    RUN(test_lif_hand);
    RUN(test_lif_random);
    RUN(test_logmel);
}
