/* Kernel tests: integer primitives against the literal formulas, kernels against naive references. */
#include <string.h>

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

static void ref_fc(const int8_t *in, const int8_t *w, const int32_t *bias, const int32_t *mult,
                   const int8_t *shift, int in_dim, int out_dim, int32_t *acc) {
    for (int o = 0; o < out_dim; o++) {
        int64_t dot = bias[o];
        for (int i = 0; i < in_dim; i++) dot += (int64_t)w[o * in_dim + i] * in[i];
        acc[o] = (int32_t)ref_sat((int64_t)acc[o] + ref_sat(ref_requant(dot, mult[o], shift[o]), 16), 16);
    }
}

static void test_fc_s8(void) {
    enum { MAXI = 64, MAXO = 16 };
    static int8_t in[MAXI], w[MAXO * MAXI], shift[MAXO];
    static int32_t bias[MAXO], mult[MAXO], acc[MAXO], ref[MAXO];
    for (int k = 0; k < 400; k++) {
        int n_in = t_range(1, MAXI), n_out = t_range(1, MAXO);
        for (int i = 0; i < n_in; i++) in[i] = (int8_t)(k % 2 ? t_range(0, 1) : t_range(-128, 127));
        for (int i = 0; i < n_in * n_out; i++) w[i] = (int8_t)t_range(-128, 127);
        for (int o = 0; o < n_out; o++) {
            bias[o] = k % 5 == 0 ? t_range(INT32_MIN, INT32_MAX) : t_range(-5000, 5000);
            mult[o] = t_range(1 << 30, INT32_MAX);
            shift[o] = (int8_t)(k % 7 == 0 ? t_range(1, 62) : t_range(20, 34));
            acc[o] = ref[o] = k % 4 == 0 ? t_range(INT32_MIN, INT32_MAX) : t_range(-1000, 1000);
        }
        CHECK_EQ(em_fc_s8(in, w, bias, mult, shift, n_in, n_out, acc), EM_OK);
        ref_fc(in, w, bias, mult, shift, n_in, n_out, ref);
        CHECK(memcmp(acc, ref, sizeof(int32_t) * (size_t)n_out) == 0);
    }
    /* the contribution and the add into acc_out saturate to int16 (as TFLite's int16 FC output and ADD) */
    in[0] = 127;
    w[0] = 127;
    bias[0] = 0;
    mult[0] = 1 << 30;
    shift[0] = 1;
    acc[0] = 32767 - 5;
    CHECK_EQ(em_fc_s8(in, w, bias, mult, shift, 1, 1, acc), EM_OK);
    CHECK_EQ(acc[0], 32767);
    in[0] = -128;
    acc[0] = -32768 + 5;
    CHECK_EQ(em_fc_s8(in, w, bias, mult, shift, 1, 1, acc), EM_OK);
    CHECK_EQ(acc[0], -32768);
    acc[0] = 40000; /* a contribution of -2^31 saturates to -32768 first: 40000 - 32768 = 7232 */
    CHECK_EQ(em_fc_s8(in, w, bias, mult, shift, 1, 1, acc), EM_OK);
    CHECK_EQ(acc[0], 7232);
    /* contract violations come back as statuses */
    CHECK_EQ(em_fc_s8(NULL, w, bias, mult, shift, 1, 1, acc), EM_ERR_NULL);
    CHECK_EQ(em_fc_s8(in, w, bias, mult, shift, 0, 1, acc), EM_ERR_DIMS);
    CHECK_EQ(em_fc_s8(in, w, bias, mult, shift, 1, -1, acc), EM_ERR_DIMS);
    shift[0] = 0;
    CHECK_EQ(em_fc_s8(in, w, bias, mult, shift, 1, 1, acc), EM_ERR_PARAM);
    shift[0] = 63;
    CHECK_EQ(em_fc_s8(in, w, bias, mult, shift, 1, 1, acc), EM_ERR_PARAM);
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

static void test_lmu_memory(void) {
    enum { NU_MAX = 5, D_MAX = 13 };
    int16_t m[NU_MAX * D_MAX], ref[NU_MAX * D_MAX], a[D_MAX * D_MAX], scratch[D_MAX];
    int32_t b[D_MAX];
    int8_t u[NU_MAX];
    CHECK_EQ(em_lmu_memory_buffer_size(D_MAX), D_MAX * sizeof(int16_t));
    for (int k = 0; k < 300; k++) {
        /* odd and even orders: the DSP path pairs elements and unaligned rows appear when D is odd */
        const int NU = t_range(1, NU_MAX), D = t_range(1, D_MAX);
        int a_shift = t_range(1, 30), big = k % 4 == 0;
        for (int i = 0; i < NU * D; i++) m[i] = (int16_t)t_range(-32768, 32767);
        for (int i = 0; i < D * D; i++) a[i] = (int16_t)t_range(-32768, 32767);
        for (int i = 0; i < D; i++) b[i] = big ? t_range(INT32_MIN, INT32_MAX) : t_range(-5000, 5000);
        for (int c = 0; c < NU; c++) u[c] = (int8_t)t_range(0, 1);
        /* reference from a separate copy of the old memory: checks the in-place update */
        for (int c = 0; c < NU; c++)
            for (int i = 0; i < D; i++) {
                int64_t acc = 0;
                for (int j = 0; j < D; j++) acc += (int64_t)a[i * D + j] * m[c * D + j];
                ref[c * D + i] = (int16_t)ref_sat(ref_sat(ref_rshift_round(acc, a_shift), 16) + ref_sat(u[c] ? b[i] : 0, 16), 16);
            }
        CHECK_EQ(em_lmu_memory_s16(m, u, a, a_shift, b, NU, D, scratch), EM_OK);
        CHECK(memcmp(m, ref, sizeof(int16_t) * (size_t)(NU * D)) == 0);
    }
    /* saturation both ways: identity A (Q14) and a B that overshoots */
    int16_t mm[2] = {30000, -30000}, aa[1] = {16384}, sc[1];
    int32_t bb[1] = {5000};
    int8_t uu[2] = {1, 0};
    CHECK_EQ(em_lmu_memory_s16(mm, uu, aa, 14, bb, 2, 1, sc), EM_OK);
    CHECK_EQ(mm[0], 32767);
    CHECK_EQ(mm[1], -30000);
    bb[0] = -70000;
    uu[1] = 1;
    CHECK_EQ(em_lmu_memory_s16(mm, uu, aa, 14, bb, 2, 1, sc), EM_OK);
    CHECK_EQ(mm[0], 32767 - 32768); /* the B term saturates on its own first: 32767 + sat16(-70000) */
    CHECK_EQ(mm[1], -32768);
    CHECK_EQ(em_lmu_memory_s16(mm, uu, aa, 0, bb, 2, 1, sc), EM_ERR_PARAM);
    CHECK_EQ(em_lmu_memory_s16(mm, uu, aa, 14, bb, 0, 1, sc), EM_ERR_DIMS);
    CHECK_EQ(em_lmu_memory_s16(mm, uu, aa, 14, bb, 2, 1, NULL), EM_ERR_NULL);
}

void suite_kernels(void) {
    RUN(test_sat);
    RUN(test_rshift_round);
    RUN(test_requant);
    RUN(test_fc_s8);
    RUN(test_lif_hand);
    RUN(test_lif_random);
    RUN(test_lmu_memory);
}
