/* Graph op kernels against hand-computed values and against the literal rules of docs/graph.md (gref_*).
 * On the host the kernels take their scalar paths; on the M4 (QEMU) the same tests check the DSP paths. */
#include <string.h>

#include "em_k.h" /* em_k_lmu_legendre */
#include "em_kernels.h"
#include "em_test.h"

/* FC reference on int32-widened input: r = requant(sat32(bias + dot)), assigned or accumulated. */
static void ref_fc(const int32_t *in, const int8_t *w, const int32_t *bias, const int32_t *mult, const int8_t *shift,
                   int in_dim, int out_dim, int acc, int32_t *out) {
    for (int o = 0; o < out_dim; o++) {
        int64_t sum = bias[o];
        for (int i = 0; i < in_dim; i++) sum += (int64_t)w[o * in_dim + i] * in[i];
        gref_store(&out[o], gref_requant(sum, mult[o], shift[o]), acc);
    }
}

static void test_fc_s8_mode(void) {
    enum { MAXI = 70, MAXO = 9 };
    static int8_t in[MAXI], w[MAXO * MAXI], shift[MAXO];
    static int32_t in32[MAXI], bias[MAXO], mult[MAXO], out[MAXO], ref[MAXO];
    for (int k = 0; k < 400; k++) {
        const int n_in = t_range(1, MAXI), n_out = t_range(1, MAXO), acc = k % 2;
        for (int i = 0; i < n_in; i++) in32[i] = in[i] = (int8_t)t_range(-128, 127);
        for (int i = 0; i < n_in * n_out; i++) w[i] = (int8_t)t_range(-128, 127);
        for (int o = 0; o < n_out; o++) {
            bias[o] = k % 3 == 0 ? t_range(INT32_MIN, INT32_MAX) : t_range(-5000, 5000);
            mult[o] = t_range(1 << 30, INT32_MAX);
            shift[o] = (int8_t)(k % 5 == 0 ? t_range(1, 62) : t_range(20, 34));
            out[o] = ref[o] = t_range(INT32_MIN, INT32_MAX);
        }
        CHECK_EQ(em_fc_s8_mode(in, w, bias, mult, shift, n_in, n_out, acc ? EM_OUT_ACC : EM_OUT_ASSIGN, out), EM_OK);
        ref_fc(in32, w, bias, mult, shift, n_in, n_out, acc, ref);
        CHECK(memcmp(out, ref, sizeof(int32_t) * (size_t)n_out) == 0);
    }
    /* a hostile bias: the int64 sum saturates to int32, the requantized value to int16 (no overflow anywhere) */
    in[0] = 127;
    w[0] = 127;
    bias[0] = INT32_MAX;
    mult[0] = 1 << 30;
    shift[0] = 31;
    CHECK_EQ(em_fc_s8_mode(in, w, bias, mult, shift, 1, 1, EM_OUT_ASSIGN, out), EM_OK);
    CHECK_EQ(out[0], 32767);
    bias[0] = INT32_MIN;
    in[0] = -128;
    CHECK_EQ(em_fc_s8_mode(in, w, bias, mult, shift, 1, 1, EM_OUT_ASSIGN, out), EM_OK);
    CHECK_EQ(out[0], -32768);
    /* ties: 3 * 0.5 = 1.5 -> 2, -3 * 0.5 = -1.5 -> -1 (half up) */
    in[0] = 3;
    w[0] = 1;
    bias[0] = 0;
    CHECK_EQ(em_fc_s8_mode(in, w, bias, mult, shift, 1, 1, EM_OUT_ASSIGN, out), EM_OK);
    CHECK_EQ(out[0], 2);
    in[0] = -3;
    CHECK_EQ(em_fc_s8_mode(in, w, bias, mult, shift, 1, 1, EM_OUT_ASSIGN, out), EM_OK);
    CHECK_EQ(out[0], -1);
    /* ACC: int16 saturating add into out */
    out[0] = -32768 + 1;
    CHECK_EQ(em_fc_s8_mode(in, w, bias, mult, shift, 1, 1, EM_OUT_ACC, out), EM_OK);
    CHECK_EQ(out[0], -32768);
    /* the contribution and the sum both saturate to int16 (as TFLite's int16 FC output and ADD) */
    in[0] = 127;
    w[0] = 127;
    mult[0] = 1 << 30;
    shift[0] = 1;
    out[0] = 32767 - 5;
    CHECK_EQ(em_fc_s8_mode(in, w, bias, mult, shift, 1, 1, EM_OUT_ACC, out), EM_OK);
    CHECK_EQ(out[0], 32767);
    in[0] = -128;
    out[0] = -32768 + 5;
    CHECK_EQ(em_fc_s8_mode(in, w, bias, mult, shift, 1, 1, EM_OUT_ACC, out), EM_OK);
    CHECK_EQ(out[0], -32768);
    out[0] = 40000; /* a contribution of -2^31 saturates to -32768 first: 40000 - 32768 = 7232 */
    CHECK_EQ(em_fc_s8_mode(in, w, bias, mult, shift, 1, 1, EM_OUT_ACC, out), EM_OK);
    CHECK_EQ(out[0], 7232);
    shift[0] = 31;
    CHECK_EQ(em_fc_s8_mode(in, w, bias, mult, shift, 1, 1, (em_out_mode_t)2, out), EM_ERR_PARAM);
    shift[0] = 0;
    CHECK_EQ(em_fc_s8_mode(in, w, bias, mult, shift, 1, 1, EM_OUT_ASSIGN, out), EM_ERR_PARAM);
    shift[0] = 63;
    CHECK_EQ(em_fc_s8_mode(in, w, bias, mult, shift, 1, 1, EM_OUT_ASSIGN, out), EM_ERR_PARAM);
    shift[0] = 31;
    CHECK_EQ(em_fc_s8_mode(in, w, bias, mult, shift, 0, 1, EM_OUT_ASSIGN, out), EM_ERR_DIMS);
    CHECK_EQ(em_fc_s8_mode(in, w, bias, mult, shift, 1, 1025, EM_OUT_ASSIGN, out), EM_ERR_DIMS);
    CHECK_EQ(em_fc_s8_mode(in, NULL, bias, mult, shift, 1, 1, EM_OUT_ASSIGN, out), EM_ERR_NULL);
}

static void test_fc_s16(void) {
    enum { MAXI = 1024, MAXO = 5 };
    static int16_t in[MAXI];
    static int8_t w[MAXO * MAXI], shift[MAXO];
    static int32_t in32[MAXI], bias[MAXO], mult[MAXO], out[MAXO], ref[MAXO];
    for (int k = 0; k < 300; k++) {
        /* odd lengths exercise the DSP path's tail; k % 10 == 0 the full 1024 */
        const int n_in = k % 10 == 0 ? MAXI : t_range(1, 67), n_out = t_range(1, MAXO), acc = k % 2;
        for (int i = 0; i < n_in; i++) in32[i] = in[i] = (int16_t)(k % 4 == 0 ? (t_range(0, 1) ? 32767 : -32768)
                                                                                  : t_range(-32768, 32767));
        for (int i = 0; i < n_in * n_out; i++) w[i] = (int8_t)(k % 4 == 0 ? -128 : t_range(-128, 127));
        for (int o = 0; o < n_out; o++) {
            bias[o] = k % 3 == 0 ? t_range(INT32_MIN, INT32_MAX) : t_range(-50000, 50000);
            mult[o] = t_range(1 << 30, INT32_MAX);
            shift[o] = (int8_t)t_range(1, 62);
            out[o] = ref[o] = t_range(INT32_MIN, INT32_MAX);
        }
        CHECK_EQ(em_fc_s16(in, w, bias, mult, shift, n_in, n_out, acc ? EM_OUT_ACC : EM_OUT_ASSIGN, out), EM_OK);
        ref_fc(in32, w, bias, mult, shift, n_in, n_out, acc, ref);
        CHECK(memcmp(out, ref, sizeof(int32_t) * (size_t)n_out) == 0);
    }
    /* |dot| reaches 2^32 (1024 x -128 x -32768): int64 sum, sat32 to INT32_MAX, x 0.5 -> 2^30 */
    for (int i = 0; i < MAXI; i++) {
        in[i] = -32768;
        w[i] = -128;
    }
    bias[0] = 0;
    mult[0] = 1 << 30;
    shift[0] = 31;
    CHECK_EQ(em_fc_s16(in, w, bias, mult, shift, MAXI, 1, EM_OUT_ASSIGN, out), EM_OK);
    CHECK_EQ(out[0], 32767); /* 2^30, stored as int16 */
    w[0] = 127; /* 1023 * 2^22 - 127 * 32768, still above INT32_MAX */
    CHECK_EQ(em_fc_s16(in, w, bias, mult, shift, MAXI, 1, EM_OUT_ASSIGN, out), EM_OK);
    CHECK_EQ(out[0], 32767);
    shift[0] = 46; /* x 2^-16: 2^31 - 1 (sat32) -> 32768 - 2^-16 -> 32768 -> 32767; -2^31 -> -32768 */
    for (int i = 0; i < MAXI; i++) w[i] = 127;
    CHECK_EQ(em_fc_s16(in, w, bias, mult, shift, MAXI, 1, EM_OUT_ASSIGN, out), EM_OK);
    CHECK_EQ(out[0], -32768);
    shift[0] = 31;
    /* the four-row int32 path's edge (in_dim < 512): 511 x -128 x -32768 = 2^31 - 2^22 stays below INT32_MAX;
     * 512 inputs take the int64 path. Four and five rows (a four-row pass and the pair after it) against ref_fc. */
    for (int n_in = 511; n_in <= 512; n_in++) {
        for (int n_out = 4; n_out <= 5; n_out++) {
            for (int i = 0; i < n_in; i++) in32[i] = in[i] = -32768;
            for (int i = 0; i < n_in * n_out; i++) w[i] = (int8_t)(i % 7 == 3 ? 127 : -128);
            for (int o = 0; o < n_out; o++) {
                bias[o] = o == 1 ? INT32_MAX : -o;
                mult[o] = (1 << 30) + o;
                shift[o] = (int8_t)(40 + o);
                out[o] = ref[o] = 0;
            }
            CHECK_EQ(em_fc_s16(in, w, bias, mult, shift, n_in, n_out, EM_OUT_ASSIGN, out), EM_OK);
            ref_fc(in32, w, bias, mult, shift, n_in, n_out, 0, ref);
            CHECK(memcmp(out, ref, sizeof(int32_t) * (size_t)n_out) == 0);
        }
    }
    shift[0] = 31;
    mult[0] = 1 << 30;
    /* hand-computed small case: 1000*3 + (-2000)*(-5) + 7*127 = 13889, bias -1 -> 13888, x 0.5 -> 6944 */
    int16_t x3[3] = {1000, -2000, 7};
    int8_t w3[3] = {3, -5, 127};
    bias[0] = -1;
    CHECK_EQ(em_fc_s16(x3, w3, bias, mult, shift, 3, 1, EM_OUT_ASSIGN, out), EM_OK);
    CHECK_EQ(out[0], 6944);
    CHECK_EQ(em_fc_s16(x3, w3, bias, mult, shift, 1025, 1, EM_OUT_ASSIGN, out), EM_ERR_DIMS);
    CHECK_EQ(em_fc_s16(NULL, w3, bias, mult, shift, 3, 1, EM_OUT_ASSIGN, out), EM_ERR_NULL);
}

/* Direct causal convolution over the full input history: frame t-j for j < k, zero before step 0. */
static void ref_conv(const int8_t *hist, int t, int c_in, int c_out, int k, const int8_t *w, const int32_t *bias,
                     const int32_t *mult, const int8_t *shift, int acc, int32_t *out) {
    for (int o = 0; o < c_out; o++) {
        int64_t sum = bias[o];
        for (int j = 0; j < k; j++) {
            if (t - j < 0) continue;
            for (int c = 0; c < c_in; c++)
                sum += (int64_t)w[(o * k + (k - 1 - j)) * c_in + c] * hist[(t - j) * c_in + c];
        }
        gref_store(&out[o], gref_requant(sum, mult[o], shift[o]), acc);
    }
}

static void test_conv1d(void) {
    enum { CI = 9, CO = 4, KMAX = 16, T = 150 };
    static int8_t hist[T * CI], w[CO * KMAX * CI], shift[CO], ring[(KMAX - 1) * CI];
    static int32_t bias[CO], mult[CO], out[CO], ref[CO];
    const int ks[] = {1, 2, 3, 5, 16};
    CHECK_EQ(em_conv1d_ring_size(CI, 5), 4 * CI);
    CHECK_EQ(em_conv1d_ring_size(CI, 1), 0);
    for (int ki = 0; ki < 5; ki++) {
        const int k = ks[ki];
        for (int rep = 0; rep < 3; rep++) {
            const int c_in = rep == 0 ? CI : t_range(1, CI), c_out = t_range(1, CO), acc = rep == 2;
            for (int i = 0; i < c_out * k * c_in; i++) w[i] = (int8_t)t_range(-128, 127);
            for (int o = 0; o < c_out; o++) {
                bias[o] = rep == 1 ? t_range(INT32_MIN, INT32_MAX) : t_range(-3000, 3000);
                mult[o] = t_range(1 << 30, INT32_MAX);
                shift[o] = (int8_t)t_range(8, 20);
            }
            memset(ring, 0, sizeof ring);
            int32_t head = 0;
            /* many steps: the ring wraps T / (k-1) times */
            for (int t = 0; t < T; t++) {
                for (int c = 0; c < c_in; c++) hist[t * c_in + c] = (int8_t)t_range(-128, 127);
                for (int o = 0; o < c_out; o++) out[o] = ref[o] = t_range(-100000, 100000);
                CHECK_EQ(em_conv1d_causal_s8(hist + t * c_in, ring, &head, w, bias, mult, shift, c_in, c_out, k,
                                             acc ? EM_OUT_ACC : EM_OUT_ASSIGN, out),
                         EM_OK);
                ref_conv(hist, t, c_in, c_out, k, w, bias, mult, shift, acc, ref);
                CHECK(memcmp(out, ref, sizeof(int32_t) * (size_t)c_out) == 0);
                CHECK_EQ(head, k > 1 ? (t + 1) % (k - 1) : 0);
            }
        }
    }
    /* hand-computed, k = 3, one channel: w taps [1, 2, 3] (tap 2 = current), frames 10, 20, 30, 40 */
    int8_t w1[3] = {1, 2, 3}, r1[2] = {0, 0}, s1[1] = {31}, x;
    int32_t b1[1] = {0}, m1[1] = {1 << 30}, h1 = 0, o1[1];
    const int32_t want[4] = {15, 40, 70, 100}; /* (3*10)/2, (3*20+2*10)/2, (90+40+10)/2, (120+60+20)/2 */
    for (int t = 0; t < 4; t++) {
        x = (int8_t)(10 * (t + 1));
        CHECK_EQ(em_conv1d_causal_s8(&x, r1, &h1, w1, b1, m1, s1, 1, 1, 3, EM_OUT_ASSIGN, o1), EM_OK);
        CHECK_EQ(o1[0], want[t]);
    }
    /* a corrupted head (state in the arena) indexes the ring by its remainder mod k-1, never outside */
    int32_t bad_heads[] = {-1, 2, 7, INT32_MIN, INT32_MAX};
    for (int i = 0; i < 5; i++) {
        int32_t h = bad_heads[i];
        int32_t hmod = ((h % 2) + 2) % 2;
        r1[0] = 5;
        r1[1] = 7;
        x = 0;
        CHECK_EQ(em_conv1d_causal_s8(&x, r1, &h, w1, b1, m1, s1, 1, 1, 3, EM_OUT_ASSIGN, o1), EM_OK);
        /* oldest frame ring[hmod] pairs with tap 0, the other with tap 1: (5 + 2*7) / 2 or (7 + 2*5) / 2 */
        CHECK_EQ(o1[0], hmod == 0 ? (5 + 14 + 1) / 2 : (7 + 10 + 1) / 2);
        CHECK_EQ(h, (hmod + 1) % 2);
        CHECK_EQ(r1[hmod], 0); /* the current frame took the oldest slot */
    }
    CHECK_EQ(em_conv1d_causal_s8(&x, NULL, &h1, w1, b1, m1, s1, 1, 1, 3, EM_OUT_ASSIGN, o1), EM_ERR_NULL);
    CHECK_EQ(em_conv1d_causal_s8(&x, NULL, NULL, w1, b1, m1, s1, 1, 1, 1, EM_OUT_ASSIGN, o1), EM_OK);
    CHECK_EQ(em_conv1d_causal_s8(&x, r1, &h1, w1, b1, m1, s1, 1, 1, 17, EM_OUT_ASSIGN, o1), EM_ERR_DIMS);
    CHECK_EQ(em_conv1d_causal_s8(&x, r1, &h1, w1, b1, m1, s1, 1, 1, 0, EM_OUT_ASSIGN, o1), EM_ERR_DIMS);
}

static void test_act(void) {
    static int8_t lut[256], o8[8];
    static int16_t o16[8];
    for (int i = 0; i < 256; i++) lut[i] = (int8_t)(i - 128 == 0 ? 55 : (i * 7) % 256 - 128);
    const int32_t in[8] = {INT32_MIN, -129, -128, -1, 0, 127, 128, INT32_MAX};
    CHECK_EQ(em_act_s32_s8(in, 8, EM_ACT_SAT, NULL, o8), EM_OK);
    const int8_t sat8[8] = {-128, -128, -128, -1, 0, 127, 127, 127};
    CHECK(memcmp(o8, sat8, 8) == 0);
    CHECK_EQ(em_act_s32_s8(in, 8, EM_ACT_RELU, NULL, o8), EM_OK);
    const int8_t relu8[8] = {0, 0, 0, 0, 0, 127, 127, 127};
    CHECK(memcmp(o8, relu8, 8) == 0);
    CHECK_EQ(em_act_s32_s8(in, 8, EM_ACT_LUT, lut, o8), EM_OK);
    CHECK_EQ(o8[0], lut[0]);   /* INT32_MIN -> sat8 -128 -> index 0 */
    CHECK_EQ(o8[1], lut[0]);
    CHECK_EQ(o8[2], lut[0]);   /* -128 -> 0 */
    CHECK_EQ(o8[3], lut[127]); /* -1 -> 127 */
    CHECK_EQ(o8[4], 55);       /* 0 -> 128 */
    CHECK_EQ(o8[5], lut[255]); /* 127 -> 255 */
    CHECK_EQ(o8[6], lut[255]);
    CHECK_EQ(o8[7], lut[255]);
    const int32_t in16[6] = {INT32_MIN, -32769, -32768, 32767, 32768, INT32_MAX};
    CHECK_EQ(em_act_s32_s16(in16, 6, EM_ACT_SAT, o16), EM_OK);
    const int16_t sat16[6] = {-32768, -32768, -32768, 32767, 32767, 32767};
    CHECK(memcmp(o16, sat16, sizeof sat16) == 0);
    const int32_t inr[5] = {-5, 0, 5, 40000, INT32_MIN};
    CHECK_EQ(em_act_s32_s16(inr, 5, EM_ACT_RELU, o16), EM_OK);
    CHECK_EQ(o16[0], 0);
    CHECK_EQ(o16[1], 0);
    CHECK_EQ(o16[2], 5);
    CHECK_EQ(o16[3], 32767);
    CHECK_EQ(o16[4], 0);
    CHECK_EQ(em_act_s32_s16(inr, 5, EM_ACT_LUT, o16), EM_ERR_PARAM); /* tables are int8 only */
    CHECK_EQ(em_act_s32_s8(inr, 5, EM_ACT_LUT, NULL, o8), EM_ERR_NULL);
    CHECK_EQ(em_act_s32_s8(inr, 5, (em_act_t)3, lut, o8), EM_ERR_PARAM);
    CHECK_EQ(em_act_s32_s8(inr, 0, EM_ACT_SAT, NULL, o8), EM_ERR_DIMS);
}

static void test_leaky(void) {
    /* beta 0.5: 1 -> 0.5 -> 1 (half up), -1 -> -0.5 -> 0, 3 -> 2, -3 -> -1; input added unsaturated */
    int16_t tr[6] = {1, -1, 3, -3, 30000, -30000}, beta[6] = {16384, 16384, 16384, 16384, 32767, 32767};
    const int32_t in[6] = {0, 0, 10, -10, 100000, INT32_MIN};
    CHECK_EQ(em_leaky_s16(in, beta, 6, tr), EM_OK);
    CHECK_EQ(tr[0], 1);
    CHECK_EQ(tr[1], 0);
    CHECK_EQ(tr[2], 12);
    CHECK_EQ(tr[3], -11);
    CHECK_EQ(tr[4], 32767);
    CHECK_EQ(tr[5], -32768);
    /* -30000 + 40000 = 10000 is not saturated first: in is not pre-saturated to int16 */
    int16_t t2[1] = {-20000}, b2[1] = {32767};
    int32_t i2[1] = {40000};
    CHECK_EQ(em_leaky_s16(i2, b2, 1, t2), EM_OK);
    CHECK_EQ(t2[0], gref_sat(gref_rsr(32767LL * -20000, 15) + 40000, 16));
    CHECK_EQ(t2[0], 20001); /* 32767 * -20000 / 2^15 = -19999.39 -> -19999 */
    /* random against the rule */
    for (int k = 0; k < 2000; k++) {
        int16_t t = (int16_t)t_range(-32768, 32767), b = (int16_t)t_range(0, 32767), t0 = t;
        int32_t x = k % 2 ? t_range(INT32_MIN, INT32_MAX) : t_range(-40000, 40000);
        CHECK_EQ(em_leaky_s16(&x, &b, 1, &t), EM_OK);
        CHECK_EQ(t, gref_sat(gref_rsr((int64_t)b * t0, 15) + x, 16));
    }
    CHECK_EQ(em_leaky_s16(in, NULL, 1, tr), EM_ERR_NULL);
    CHECK_EQ(em_leaky_s16(in, beta, 0, tr), EM_ERR_DIMS);
}

/* the LMU update's integer rule, literally: ref[c][i] = sat16(sat16(rsr(sum_j a[i][j] m[c][j], a_shift)) +
 * sat16(rsr(u[c] b[i], b_shift))) */
static void lmu_ref(const int16_t *a, const int16_t *m, const int8_t *u, const int32_t *b, int nu, int d, int a_shift,
                    int b_shift, int16_t *ref) {
    for (int c = 0; c < nu; c++)
        for (int i = 0; i < d; i++) {
            int64_t acc = 0;
            for (int j = 0; j < d; j++) acc += (int64_t)a[i * d + j] * m[c * d + j];
            ref[c * d + i] = (int16_t)gref_sat(gref_sat(gref_rsr(acc, a_shift), 16) +
                                               gref_sat(gref_rsr((int64_t)u[c] * b[i], b_shift), 16), 16);
        }
}

static void test_lmu_s8(void) {
    enum { NU = 4, D = 19 }; /* orders up to 19: the M4's three-row pass loops several times and leaves 0-2 rows */
    int16_t m[NU * D], ref[NU * D], a[D * D], scratch[D];
    int32_t b[D];
    int8_t u[NU];
    for (int k = 0; k < 400; k++) {
        const int nu = t_range(1, NU), d = t_range(1, D), a_shift = t_range(1, 30), b_shift = k % 3 ? t_range(0, 30) : 0;
        for (int i = 0; i < nu * d; i++) m[i] = (int16_t)t_range(-32768, 32767);
        for (int i = 0; i < d * d; i++) a[i] = (int16_t)t_range(-32768, 32767);
        for (int i = 0; i < d; i++) b[i] = k % 4 == 0 ? t_range(INT32_MIN, INT32_MAX) : t_range(-5000, 5000);
        for (int c = 0; c < nu; c++) u[c] = (int8_t)t_range(-128, 127);
        lmu_ref(a, m, u, b, nu, d, a_shift, b_shift, ref);
        const int16_t last_old = m[(nu - 1) * d];
        CHECK_EQ(em_lmu_s8_s16(m, u, a, a_shift, b, b_shift, nu, d, scratch), EM_OK);
        CHECK(memcmp(m, ref, sizeof(int16_t) * (size_t)(nu * d)) == 0);
        CHECK_EQ(scratch[0], last_old); /* docs/graph.md: scratch ends up holding m_old[n_u - 1] */
    }
    /* hand-computed, order 1, A = 0.5 (Q1: a = 1, a_shift 1): m = rsr(m, 1) + rsr(u * b, b_shift) */
    int16_t m1[2] = {5, -5}, a1[1] = {1}, s1[1];
    int32_t b1[1] = {3};
    int8_t u1[2] = {-1, 1};
    CHECK_EQ(em_lmu_s8_s16(m1, u1, a1, 1, b1, 0, 2, 1, s1), EM_OK); /* b_shift 0: no shift of u * b */
    CHECK_EQ(m1[0], 3 - 3);   /* 5/2 = 2.5 -> 3, + -3 */
    CHECK_EQ(m1[1], -2 + 3);  /* -2.5 -> -2, + 3 */
    int16_t m2[2] = {0, 0};
    CHECK_EQ(em_lmu_s8_s16(m2, u1, a1, 1, b1, 1, 2, 1, s1), EM_OK); /* b_shift 1: -1.5 -> -1, 1.5 -> 2 */
    CHECK_EQ(m2[0], -1);
    CHECK_EQ(m2[1], 2);
    /* u at -128 with B at INT32_MIN, b_shift 0: 2^38, saturates */
    int16_t m3[1] = {0};
    int32_t b3[1] = {INT32_MIN};
    int8_t u3[1] = {-128};
    CHECK_EQ(em_lmu_s8_s16(m3, u3, a1, 1, b3, 0, 1, 1, s1), EM_OK);
    CHECK_EQ(m3[0], 32767);
    /* spikes (u in {0, 1}) with b_shift 0, the L2MU's case: the B term is b[i] or 0, then int16 terms and sum */
    for (int k = 0; k < 100; k++) {
        int16_t mv[NU * D], want[NU * D];
        for (int i = 0; i < NU * D; i++) mv[i] = (int16_t)t_range(-32768, 32767);
        for (int i = 0; i < D * D; i++) a[i] = (int16_t)t_range(-32768, 32767);
        for (int i = 0; i < D; i++) b[i] = t_range(INT32_MIN, INT32_MAX);
        for (int c = 0; c < NU; c++) u[c] = (int8_t)t_range(0, 1);
        const int a_shift = t_range(1, 30);
        for (int c = 0; c < NU; c++)
            for (int i = 0; i < D; i++) {
                int64_t acc = 0;
                for (int j = 0; j < D; j++) acc += (int64_t)a[i * D + j] * mv[c * D + j];
                want[c * D + i] = (int16_t)gref_sat(gref_sat(gref_rsr(acc, a_shift), 16) +
                                                    gref_sat(u[c] ? b[i] : 0, 16), 16);
            }
        CHECK_EQ(em_lmu_s8_s16(mv, u, a, a_shift, b, 0, NU, D, scratch), EM_OK);
        CHECK(memcmp(mv, want, sizeof mv) == 0);
    }
    /* saturation both ways: identity A (Q14) and a B that overshoots */
    int16_t mm[2] = {30000, -30000}, aa[1] = {16384}, sc[1];
    int32_t bb[1] = {5000};
    int8_t uu[2] = {1, 0};
    CHECK_EQ(em_lmu_s8_s16(mm, uu, aa, 14, bb, 0, 2, 1, sc), EM_OK);
    CHECK_EQ(mm[0], 32767);
    CHECK_EQ(mm[1], -30000);
    bb[0] = -70000;
    uu[1] = 1;
    CHECK_EQ(em_lmu_s8_s16(mm, uu, aa, 14, bb, 0, 2, 1, sc), EM_OK);
    CHECK_EQ(mm[0], 32767 - 32768); /* the B term saturates on its own first: 32767 + sat16(-70000) */
    CHECK_EQ(mm[1], -32768);
    CHECK_EQ(em_lmu_memory_buffer_size(D), D * sizeof(int16_t));
    CHECK_EQ(em_lmu_memory_buffer_size(0), 0);
    CHECK_EQ(em_lmu_s8_s16(m1, u1, a1, 0, b1, 0, 2, 1, s1), EM_ERR_PARAM);
    CHECK_EQ(em_lmu_s8_s16(m1, u1, a1, 1, b1, -1, 2, 1, s1), EM_ERR_PARAM);
    CHECK_EQ(em_lmu_s8_s16(m1, u1, a1, 1, b1, 63, 2, 1, s1), EM_ERR_PARAM);
    CHECK_EQ(em_lmu_s8_s16(m1, u1, a1, 1, b1, 0, 0, 1, s1), EM_ERR_DIMS);
    CHECK_EQ(em_lmu_s8_s16(m1, u1, a1, 1, b1, 0, 2, 1, NULL), EM_ERR_NULL);
}

/* Every order 1..40 and 128 against the literal loop, with the buffers word-aligned (the M4's LDM path: even orders)
 * and misaligned by one int16 (its fallback), random and extreme codes (A at +-32767 and -32768, m at -32768, so
 * |A m| reaches order * 2^30) and a_shift on both sides of the kernel's fast rounding (11..30) and b_shift 0..30. */
static void test_lmu_orders(void) {
    enum { NU = 3, D = 128 };
    static int16_t a_w[D * D + 1] __attribute__((aligned(4))), m_w[NU * D + 1] __attribute__((aligned(4))),
        s_w[D + 1] __attribute__((aligned(4))), ref[NU * D], m0[NU * D];
    int32_t b[D];
    int8_t u[NU];
    for (int d = 1; d <= D; d = d == 40 ? D : d + 1)
        for (int k = 0; k < 12; k++) {
            const int mis = k % 4 == 3, nu = 1 + k % NU, ext = k % 3; /* ext 1: extreme A and m, 2: -32768 */
            int16_t *a = a_w + mis, *m = m_w + mis, *scratch = s_w + mis;
            const int a_shift = k < 6 ? (int)t_range(11, 30) : k < 8 ? 15 : (int)t_range(1, 30);
            const int b_shift = k % 2 ? (int)t_range(1, 30) : 0;
            for (int i = 0; i < d * d; i++)
                a[i] = (int16_t)(ext == 1   ? (t_range(0, 1) ? 32767 : -32767)
                                 : ext == 2 ? -32768
                                            : t_range(-32768, 32767));
            for (int i = 0; i < nu * d; i++)
                m0[i] = m[i] = (int16_t)(ext == 2 ? -32768 : ext == 1 ? (t_range(0, 1) ? 32767 : -32768)
                                                               : t_range(-32768, 32767));
            for (int i = 0; i < d; i++) b[i] = k % 5 == 0 ? t_range(INT32_MIN, INT32_MAX) : t_range(-40000, 40000);
            for (int c = 0; c < nu; c++) u[c] = (int8_t)t_range(-128, 127);
            lmu_ref(a, m0, u, b, nu, d, a_shift, b_shift, ref);
            CHECK_EQ(em_lmu_s8_s16(m, u, a, a_shift, b, b_shift, nu, d, scratch), EM_OK);
            CHECK(memcmp(m, ref, sizeof(int16_t) * (size_t)(nu * d)) == 0);
            CHECK(memcmp(scratch, m0 + (nu - 1) * d, sizeof(int16_t) * (size_t)d) == 0); /* m_old[n_u - 1] */
        }
}

/* The LEGENDRE pass (em_k_lmu_legendre, O(order) a row) against the literal dense loop on A's of that structure
 * (docs/graph.md: a diagonal plus r_i times the sign pattern), orders 1..40, a_shift 2..30 and |b| < 2^22 (what the
 * parser admits), random and saturating m. */
static void test_lmu_legendre(void) {
    enum { NU = 3, D = 40 };
    int16_t a[D * D], m[NU * D], m0[NU * D], ref[NU * D], scratch[D];
    int32_t b[D];
    int8_t u[NU];
    for (int d = 1; d <= D; d++)
        for (int k = 0; k < 6; k++) {
            const int nu = 1 + k % NU, a_shift = (int)t_range(2, 30), b_shift = (int)t_range(0, 30);
            for (int i = 0; i < d; i++) {
                const int32_t r = t_range(-32767, 32767);
                for (int j = 0; j < d; j++)
                    a[i * d + j] = (int16_t)(j == i ? t_range(-32768, 32767) : j > i ? -r : ((i - j) % 2 ? r : -r));
            }
            for (int i = 0; i < nu * d; i++) m0[i] = m[i] = (int16_t)(k == 5 ? -32768 : t_range(-32768, 32767));
            for (int i = 0; i < d; i++) b[i] = t_range(-(1 << 22) + 1, (1 << 22) - 1);
            for (int c = 0; c < nu; c++) u[c] = (int8_t)t_range(-128, 127);
            lmu_ref(a, m0, u, b, nu, d, a_shift, b_shift, ref);
            em_k_lmu_legendre(m, u, a, a_shift, b, b_shift, nu, d, scratch);
            CHECK(memcmp(m, ref, sizeof(int16_t) * (size_t)(nu * d)) == 0);
            CHECK(memcmp(scratch, m0 + (nu - 1) * d, sizeof(int16_t) * (size_t)d) == 0);
        }
}

static void test_add(void) {
    const int32_t half = 1 << 30; /* with shift 31: x 0.5, exposes ties */
    const int8_t x8[6] = {1, -1, 3, -3, 127, -128};
    int32_t out[6];
    CHECK_EQ(em_add_requant_s8(x8, 6, half, 31, EM_OUT_ASSIGN, out), EM_OK);
    const int32_t want[6] = {1, 0, 2, -1, 64, -64};
    CHECK(memcmp(out, want, sizeof want) == 0);
    /* s16, shift 1 (x 2^29), accumulate with saturation */
    const int16_t x16[3] = {-32768, 32767, 4};
    int32_t acc[3] = {0, 32767 - 10, -32768};
    CHECK_EQ(em_add_requant_s16(x16, 3, half, 1, EM_OUT_ACC, acc), EM_OK);
    CHECK_EQ(acc[0], -32768); /* -2^15 * 2^29 = -2^44 -> saturated */
    CHECK_EQ(acc[1], 32767);
    CHECK_EQ(acc[2], -1); /* 4 * 2^29 = 2^31 saturates to 32767 first, then -32768 + 32767 */
    for (int k = 0; k < 2000; k++) {
        int16_t x = (int16_t)t_range(-32768, 32767);
        int32_t m = t_range(1 << 30, INT32_MAX), o = t_range(INT32_MIN, INT32_MAX), r = o;
        int s = t_range(1, 62), a = k % 2;
        CHECK_EQ(em_add_requant_s16(&x, 1, m, s, a ? EM_OUT_ACC : EM_OUT_ASSIGN, &o), EM_OK);
        gref_store(&r, gref_requant(x, m, s), a);
        CHECK_EQ(o, r);
    }
    CHECK_EQ(em_add_requant_s8(x8, 6, half, 0, EM_OUT_ASSIGN, out), EM_ERR_PARAM);
    CHECK_EQ(em_add_requant_s16(x16, 3, half, 63, EM_OUT_ASSIGN, out), EM_ERR_PARAM);
    CHECK_EQ(em_add_requant_s8(x8, 0, half, 31, EM_OUT_ASSIGN, out), EM_ERR_DIMS);
}

static void test_onoff(void) {
    const int16_t x[3] = {-32768, 0, 32767};
    int32_t out[6];
    CHECK_EQ(em_onoff_s16(x, 3, EM_OUT_ASSIGN, out), EM_OK);
    const int32_t want[6] = {-32768, 0, 32767, 32767, 0, -32767}; /* -(-32768) saturates to 32767 */
    CHECK(memcmp(out, want, sizeof want) == 0);
    int32_t acc[6] = {-32768, 5, 32767, 32767, -5, -32768};
    CHECK_EQ(em_onoff_s16(x, 3, EM_OUT_ACC, acc), EM_OK);
    const int32_t want_acc[6] = {-32768, 5, 32767, 32767, -5, -32768};
    CHECK(memcmp(acc, want_acc, sizeof want_acc) == 0);
    int32_t acc2[2] = {100, 100};
    CHECK_EQ(em_onoff_s16(x + 2, 1, EM_OUT_ACC, acc2), EM_OK);
    CHECK_EQ(acc2[0], 32767); /* 100 + 32767, saturated to int16 */
    CHECK_EQ(acc2[1], 100 - 32767);
    CHECK_EQ(em_onoff_s16(x, 0, EM_OUT_ASSIGN, out), EM_ERR_DIMS);
    CHECK_EQ(em_onoff_s16(NULL, 3, EM_OUT_ASSIGN, out), EM_ERR_NULL);
}

static void test_spike(void) {
    /* strict compare at the extremes, equality, and negative thresholds (1 on a zero membrane: after a reset) */
    const int16_t mem[8] = {-32768, 32767, 0, 0, 100, 100, -5, 32767};
    const int16_t thr[8] = {-32768, 32767, -1, 0, 99, 100, -6, -32768};
    const int8_t want[8] = {0, 0, 1, 0, 1, 0, 1, 1};
    int8_t out[8];
    memset(out, 0x55, sizeof out);
    CHECK_EQ(em_spike_s16(mem, thr, 8, out), EM_OK);
    CHECK(memcmp(out, want, sizeof want) == 0);
    /* the same rule as em_lif_s16's spike output, on the membrane it leaves */
    const int16_t beta[4] = {30000, 16384, 0, 32767}, lthr[4] = {-200, 1000, 0, 300};
    int16_t m[4] = {0, 900, -7, 250};
    const int32_t cur[4] = {-100, 500, 3, -1000000};
    int8_t spk[4], again[4];
    for (int t = 0; t < 5; t++) {
        CHECK_EQ(em_lif_s16(cur, m, NULL, beta, NULL, lthr, 4, spk), EM_OK);
        CHECK_EQ(em_spike_s16(m, lthr, 4, again), EM_OK);
        CHECK(memcmp(spk, again, sizeof spk) == 0);
    }
    CHECK_EQ(em_spike_s16(mem, thr, 0, out), EM_ERR_DIMS);
    CHECK_EQ(em_spike_s16(NULL, thr, 8, out), EM_ERR_NULL);
    CHECK_EQ(em_spike_s16(mem, NULL, 8, out), EM_ERR_NULL);
    CHECK_EQ(em_spike_s16(mem, thr, 8, NULL), EM_ERR_NULL);
}

/* Packs int8 values (each in the wbits range) as docs/graph.md "Packed weights" says, written from the spec:
 * element e at bits (e % per) * wbits of byte e / per, two's complement; unused bits of the last byte zero. */
static void pack(const int8_t *v, int n, int wbits, uint8_t *out) {
    const int per = 8 / wbits;
    for (int i = 0; i < (n + per - 1) / per; i++) out[i] = 0;
    for (int e = 0; e < n; e++)
        out[e / per] = (uint8_t)(out[e / per] | (((unsigned)v[e] & ((1u << wbits) - 1u)) << ((e % per) * wbits)));
}

/* Packed causal conv against the int8 conv on the same weights unpacked, over several steps (the ring advances):
 * taps on byte boundaries (the offset form), on word boundaries, and inside bytes (c_in not a multiple of 8 / wbits),
 * odd and even c_out, every weight value and full-scale inputs. */
static void test_conv_packed(void) {
    enum { MAXC = 64, MAXK = 5, MAXO = 7, STEPS = 6 };
    static int8_t w[MAXO * MAXK * MAXC], shift[MAXO], in[MAXC], ring_p[MAXK * MAXC], ring_r[MAXK * MAXC];
    static uint8_t wp[MAXO * MAXK * MAXC / 2 + 1];
    static int32_t bias[MAXO], mult[MAXO], out_p[MAXO], out_r[MAXO];
    for (int k = 0; k < 300; k++) {
        const int wbits = k % 2 ? 4 : 2, per = 8 / wbits, kk = t_range(1, MAXK), c_out = t_range(1, MAXO);
        int c_in = t_range(1, MAXC);
        while ((kk * c_in) % per) c_in = t_range(1, MAXC); /* rows must fill whole bytes */
        /* half of them: taps of whole 32-bit words (the M4's paired-window path; past 160 inputs its fallback) */
        if (k % 4 < 2) c_in = (32 / wbits) * t_range(1, MAXC / (32 / wbits));
        const int lo = -(1 << (wbits - 1)), hi = (1 << (wbits - 1)) - 1;
        for (int i = 0; i < c_out * kk * c_in; i++) w[i] = (int8_t)(k % 7 == 0 ? lo : t_range(lo, hi));
        pack(w, c_out * kk * c_in, wbits, wp);
        for (int o = 0; o < c_out; o++) {
            bias[o] = t_range(-5000, 5000);
            mult[o] = t_range(1 << 30, INT32_MAX);
            shift[o] = (int8_t)t_range(20, 40);
        }
        for (int i = 0; i < MAXK * MAXC; i++) ring_p[i] = ring_r[i] = 0;
        int32_t head_p = 0, head_r = 0;
        for (int t = 0; t < STEPS; t++) {
            for (int c = 0; c < c_in; c++) in[c] = (int8_t)(k % 5 == 0 ? (t_range(0, 1) ? 127 : -128) : t_range(-128, 127));
            const em_out_mode_t mode = t % 2 ? EM_OUT_ACC : EM_OUT_ASSIGN;
            for (int o = 0; o < c_out; o++) out_p[o] = out_r[o] = t_range(-1000, 1000);
            CHECK_EQ(em_conv1d_causal_packed(in, ring_p, &head_p, wp, wbits, bias, mult, shift, c_in, c_out, kk, mode,
                                             out_p), EM_OK);
            CHECK_EQ(em_conv1d_causal_s8(in, ring_r, &head_r, w, bias, mult, shift, c_in, c_out, kk, mode, out_r),
                     EM_OK);
            CHECK(memcmp(out_p, out_r, sizeof(int32_t) * (size_t)c_out) == 0);
            CHECK_EQ(head_p, head_r);
        }
    }
}

/* Packed FC (s8 and s16 input) against ref_fc on the same weights unpacked: every value of the range, odd rows of
 * bytes, full-scale inputs; the sign extension by hand; the argument checks. */
static void test_fc_packed(void) {
    enum { MAXI = 1024, MAXO = 37 }; /* more rows than the M4 path's chunk of 32, odd and even */
    static int8_t in8[MAXI], w[MAXO * MAXI], shift[MAXO];
    static int16_t in16[MAXI];
    static uint8_t wp[MAXO * MAXI / 2];
    static int32_t in32[MAXI], bias[MAXO], mult[MAXO], out[MAXO], ref[MAXO];
    for (int k = 0; k < 400; k++) {
        const int wbits = k % 2 ? 4 : 2, per = 8 / wbits, s16 = (k / 2) % 2, acc = (k / 4) % 2;
        /* n_in: up to 1024 (beyond the M4 path's paired input, EM_PK_MAX_IN = 160: its fallback), 160 and 168 at
         * that bound */
        const int n_in = k % 25 == 0 ? MAXI : k % 25 == 1 ? 160 : k % 25 == 2 ? 168 : per * t_range(1, 17);
        const int n_out = k % 3 == 0 ? t_range(1, MAXO) : t_range(1, 6);
        const int lo = -(1 << (wbits - 1)), hi = (1 << (wbits - 1)) - 1;
        for (int i = 0; i < n_in; i++) {
            if (s16) in32[i] = in16[i] = (int16_t)(k % 8 < 2 ? (t_range(0, 1) ? 32767 : -32768) : t_range(-32768, 32767));
            else in32[i] = in8[i] = (int8_t)t_range(-128, 127);
        }
        for (int i = 0; i < n_in * n_out; i++) w[i] = (int8_t)(k % 8 < 2 ? lo : t_range(lo, hi));
        pack(w, n_in * n_out, wbits, wp);
        for (int o = 0; o < n_out; o++) {
            bias[o] = k % 3 == 0 ? t_range(INT32_MIN, INT32_MAX) : t_range(-50000, 50000);
            mult[o] = t_range(1 << 30, INT32_MAX);
            shift[o] = (int8_t)t_range(1, 62);
            if ((k / 8) % 2) bias[o] = t_range(-100, 100), mult[o] = 1 << 30, shift[o] = 30; /* out = bias + dot */
            out[o] = ref[o] = t_range(INT32_MIN, INT32_MAX);
        }
        const em_out_mode_t mode = acc ? EM_OUT_ACC : EM_OUT_ASSIGN;
        if (s16) CHECK_EQ(em_fc_s16_packed(in16, wp, wbits, bias, mult, shift, n_in, n_out, mode, out), EM_OK);
        else CHECK_EQ(em_fc_s8_packed(in8, wp, wbits, bias, mult, shift, n_in, n_out, mode, out), EM_OK);
        ref_fc(in32, w, bias, mult, shift, n_in, n_out, acc, ref);
        CHECK(memcmp(out, ref, sizeof(int32_t) * (size_t)n_out) == 0);
    }
    /* by hand, r = requant(dot, 2^30, 30) = dot: s4 byte 0x8F = elements -1 (low nibble), -8 (high nibble);
     * s2 byte 0x9C = 10 01 11 00 = elements 0, -1, 1, -2 */
    const uint8_t b4[1] = {0x8F}, b2[1] = {0x9C};
    const int8_t x4[4] = {3, 5, 7, 11};
    const int16_t x16[4] = {-1000, 1000, 3, 30000};
    int32_t b0[1] = {0}, m0[1] = {1 << 30}, o1[1];
    int8_t s0[1] = {30};
    CHECK_EQ(em_fc_s8_packed(x4, b4, 4, b0, m0, s0, 2, 1, EM_OUT_ASSIGN, o1), EM_OK);
    CHECK_EQ(o1[0], -3 - 40);
    CHECK_EQ(em_fc_s8_packed(x4, b2, 2, b0, m0, s0, 4, 1, EM_OUT_ASSIGN, o1), EM_OK);
    CHECK_EQ(o1[0], 0 - 5 + 7 - 22);
    CHECK_EQ(em_fc_s16_packed(x16, b2, 2, b0, m0, s0, 4, 1, EM_OUT_ASSIGN, o1), EM_OK);
    CHECK_EQ(o1[0], -32768); /* 0 - 1000 + 3 - 60000, stored as int16 */
    /* the extreme sum: 1024 x (-8) x (-32768) = 2^28, exact (requant by 2^30 / 2^30 returns it unchanged) */
    for (int i = 0; i < MAXI; i++) in16[i] = -32768;
    for (int i = 0; i < MAXI / 2; i++) wp[i] = 0x88;
    s0[0] = 45; /* x 2^-15 to see it within int16: 2^28 / 2^15 = 8192 */
    CHECK_EQ(em_fc_s16_packed(in16, wp, 4, b0, m0, s0, MAXI, 1, EM_OUT_ASSIGN, o1), EM_OK);
    CHECK_EQ(o1[0], 1 << 13);
    /* the same at 160 inputs (the M4's paired path, all in int32): 160 x (-8) x (-32768) / 2^15 = 1280; weights 7 */
    CHECK_EQ(em_fc_s16_packed(in16, wp, 4, b0, m0, s0, 160, 1, EM_OUT_ASSIGN, o1), EM_OK);
    CHECK_EQ(o1[0], 1280);
    for (int i = 0; i < 80; i++) wp[i] = 0x77;
    CHECK_EQ(em_fc_s16_packed(in16, wp, 4, b0, m0, s0, 160, 1, EM_OUT_ASSIGN, o1), EM_OK);
    CHECK_EQ(o1[0], -1120);
    s0[0] = 30;
    /* argument checks */
    CHECK_EQ(em_fc_s8_packed(x4, b4, 3, b0, m0, s0, 2, 1, EM_OUT_ASSIGN, o1), EM_ERR_PARAM);
    CHECK_EQ(em_fc_s8_packed(x4, b4, 8, b0, m0, s0, 2, 1, EM_OUT_ASSIGN, o1), EM_ERR_PARAM);
    CHECK_EQ(em_fc_s8_packed(x4, b4, 4, b0, m0, s0, 3, 1, EM_OUT_ASSIGN, o1), EM_ERR_DIMS); /* row not whole bytes */
    CHECK_EQ(em_fc_s16_packed(x16, b2, 2, b0, m0, s0, 2, 1, EM_OUT_ASSIGN, o1), EM_ERR_DIMS);
    CHECK_EQ(em_fc_s8_packed(x4, b4, 4, b0, m0, s0, 0, 1, EM_OUT_ASSIGN, o1), EM_ERR_DIMS);
    CHECK_EQ(em_fc_s8_packed(x4, b4, 4, b0, m0, s0, 2, 1, (em_out_mode_t)2, o1), EM_ERR_PARAM);
    s0[0] = 63;
    CHECK_EQ(em_fc_s16_packed(x16, b2, 2, b0, m0, s0, 4, 1, EM_OUT_ASSIGN, o1), EM_ERR_PARAM);
    CHECK_EQ(em_fc_s8_packed(x4, NULL, 4, b0, m0, s0, 2, 1, EM_OUT_ASSIGN, o1), EM_ERR_NULL);
}

/* Packed CONV1D against ref_conv over many steps (the ring wraps): taps that start inside a byte (c_in odd at s4,
 * c_in = 2 mod 4 at s2), every k; the argument checks. */
static void test_conv1d_packed(void) {
    enum { CI = 9, CO = 4, KMAX = 16, T = 60 };
    static int8_t hist[T * CI], w[CO * KMAX * CI], shift[CO], ring[(KMAX - 1) * CI];
    static uint8_t wp[CO * KMAX * CI / 2 + 1];
    static int32_t bias[CO], mult[CO], out[CO], ref[CO];
    for (int rep = 0; rep < 60; rep++) {
        const int wbits = rep % 2 ? 4 : 2, per = 8 / wbits, c_out = t_range(1, CO), acc = (rep / 2) % 2;
        int k, c_in;
        do { /* k * c_in fills whole bytes; most draws have taps starting inside a byte */
            k = rep % 7 == 0 ? KMAX : t_range(1, 5);
            c_in = t_range(1, CI);
        } while ((k * c_in) % per != 0);
        const int lo = -(1 << (wbits - 1)), hi = (1 << (wbits - 1)) - 1;
        for (int i = 0; i < c_out * k * c_in; i++) w[i] = (int8_t)t_range(lo, hi);
        pack(w, c_out * k * c_in, wbits, wp);
        for (int o = 0; o < c_out; o++) {
            bias[o] = t_range(-3000, 3000);
            mult[o] = t_range(1 << 30, INT32_MAX);
            shift[o] = (int8_t)t_range(4, 14);
        }
        memset(ring, 0, sizeof ring);
        int32_t head = 0;
        for (int t = 0; t < T; t++) {
            for (int c = 0; c < c_in; c++) hist[t * c_in + c] = (int8_t)t_range(-128, 127);
            for (int o = 0; o < c_out; o++) out[o] = ref[o] = t_range(-100000, 100000);
            CHECK_EQ(em_conv1d_causal_packed(hist + t * c_in, ring, &head, wp, wbits, bias, mult, shift, c_in, c_out, k,
                                             acc ? EM_OUT_ACC : EM_OUT_ASSIGN, out),
                     EM_OK);
            ref_conv(hist, t, c_in, c_out, k, w, bias, mult, shift, acc, ref);
            CHECK(memcmp(out, ref, sizeof(int32_t) * (size_t)c_out) == 0);
            CHECK_EQ(head, k > 1 ? (t + 1) % (k - 1) : 0);
        }
    }
    /* by hand, k = 2, c_in = 1, s4: one byte 0x8F = taps -1 (tap 0, the past frame) and -8 (tap 1, current) */
    const uint8_t b4[1] = {0x8F};
    int8_t r1[1] = {0}, s1[1] = {30}, x;
    int32_t b1[1] = {0}, m1[1] = {1 << 30}, h1 = 0, o1[1];
    x = 10;
    CHECK_EQ(em_conv1d_causal_packed(&x, r1, &h1, b4, 4, b1, m1, s1, 1, 1, 2, EM_OUT_ASSIGN, o1), EM_OK);
    CHECK_EQ(o1[0], -80);
    x = 3;
    CHECK_EQ(em_conv1d_causal_packed(&x, r1, &h1, b4, 4, b1, m1, s1, 1, 1, 2, EM_OUT_ASSIGN, o1), EM_OK);
    CHECK_EQ(o1[0], -10 - 24);
    CHECK_EQ(em_conv1d_causal_packed(&x, r1, &h1, b4, 4, b1, m1, s1, 1, 1, 3, EM_OUT_ASSIGN, o1), EM_ERR_DIMS);
    CHECK_EQ(em_conv1d_causal_packed(&x, r1, &h1, b4, 2, b1, m1, s1, 1, 1, 2, EM_OUT_ASSIGN, o1), EM_ERR_DIMS);
    CHECK_EQ(em_conv1d_causal_packed(&x, r1, &h1, b4, 4, b1, m1, s1, 1, 1, 17, EM_OUT_ASSIGN, o1), EM_ERR_DIMS);
    CHECK_EQ(em_conv1d_causal_packed(&x, r1, &h1, b4, 5, b1, m1, s1, 1, 1, 2, EM_OUT_ASSIGN, o1), EM_ERR_PARAM);
    CHECK_EQ(em_conv1d_causal_packed(&x, NULL, &h1, b4, 4, b1, m1, s1, 1, 1, 2, EM_OUT_ASSIGN, o1), EM_ERR_NULL);
}

/* Event-driven FC against ref_fc at 8, 4 and 2 bits: spike inputs (0/1) at rates from none to all, and arbitrary
 * int8 (it must stay exact for any input: it skips zeros, it does not assume ones); the argument checks. */
static void test_fc_events(void) {
    enum { MAXI = 1024, MAXO = 9 }; /* the packed kernels' four-row passes twice and a remainder */
    static int8_t in8[MAXI], w[MAXO * MAXI], shift[MAXO];
    static int16_t events[MAXI];
    static uint8_t wp[MAXO * MAXI];
    static int32_t in32[MAXI], bias[MAXO], mult[MAXO], out[MAXO], ref[MAXO];
    for (int k = 0; k < 300; k++) {
        const int wbits = k % 3 == 0 ? 8 : k % 3 == 1 ? 4 : 2, per = 8 / wbits, acc = (k / 3) % 2;
        const int n_in = k % 29 == 0 ? MAXI : per * t_range(1, 17), n_out = t_range(1, MAXO);
        const int lo = -(1 << (wbits - 1)) + (wbits == 8), hi = (1 << (wbits - 1)) - 1;
        const int rate = k % 5 == 0 ? 0 : k % 5 == 1 ? 100 : t_range(1, 60); /* percent of inputs that spike */
        for (int i = 0; i < n_in; i++)
            in32[i] = in8[i] = (int8_t)(k % 7 == 0 ? t_range(-128, 127) : t_range(0, 99) < rate);
        for (int i = 0; i < n_in * n_out; i++) w[i] = (int8_t)t_range(lo, hi);
        if (wbits == 8) memcpy(wp, w, (size_t)(n_in * n_out));
        else pack(w, n_in * n_out, wbits, wp);
        for (int o = 0; o < n_out; o++) {
            bias[o] = k % 4 == 0 ? t_range(INT32_MIN, INT32_MAX) : t_range(-50000, 50000);
            mult[o] = t_range(1 << 30, INT32_MAX);
            shift[o] = (int8_t)t_range(1, 62);
            if (k % 4 == 2) bias[o] = t_range(-100, 100), mult[o] = 1 << 30, shift[o] = 30; /* out = bias + dot */
            out[o] = ref[o] = t_range(INT32_MIN, INT32_MAX);
        }
        const em_out_mode_t mode = acc ? EM_OUT_ACC : EM_OUT_ASSIGN;
        if (wbits == 8)
            CHECK_EQ(em_fc_s8_events(in8, w, bias, mult, shift, n_in, n_out, mode, events, out), EM_OK);
        else
            CHECK_EQ(em_fc_s8_packed_events(in8, wp, wbits, bias, mult, shift, n_in, n_out, mode, events, out), EM_OK);
        ref_fc(in32, w, bias, mult, shift, n_in, n_out, acc, ref);
        CHECK(memcmp(out, ref, sizeof(int32_t) * (size_t)n_out) == 0);
    }
    CHECK_EQ(em_fc_events_buffer_size(48), 96);
    CHECK_EQ(em_fc_events_buffer_size(0), 0);
    const int8_t w1[2] = {1, 2};
    const uint8_t wq[2] = {1, 2};
    const int8_t x[2] = {1, 0};
    int32_t b0[1] = {0}, m0[1] = {1 << 30}, o1[1];
    int8_t s0[1] = {30};
    int16_t ev[2];
    CHECK_EQ(em_fc_s8_events(x, w1, b0, m0, s0, 2, 1, EM_OUT_ASSIGN, ev, o1), EM_OK);
    CHECK_EQ(o1[0], 1);
    CHECK_EQ(em_fc_s8_events(x, w1, b0, m0, s0, 2, 1, EM_OUT_ASSIGN, NULL, o1), EM_ERR_NULL);
    CHECK_EQ(em_fc_s8_packed_events(x, wq, 4, b0, m0, s0, 2, 1, EM_OUT_ASSIGN, ev, o1), EM_OK);
    CHECK_EQ(o1[0], 1); /* element 0: the low nibble of byte 0 */
    CHECK_EQ(em_fc_s8_packed_events(x, wq, 3, b0, m0, s0, 2, 1, EM_OUT_ASSIGN, ev, o1), EM_ERR_PARAM);
    CHECK_EQ(em_fc_s8_packed_events(x, wq, 8, b0, m0, s0, 2, 1, EM_OUT_ASSIGN, ev, o1), EM_ERR_PARAM);
    /* a row of 2 elements at 2 bits would end inside a byte */
    CHECK_EQ(em_fc_s8_packed_events(x, wq, 2, b0, m0, s0, 2, 1, EM_OUT_ASSIGN, ev, o1), EM_ERR_DIMS);
    CHECK_EQ(em_fc_s8_packed_events(x, NULL, 4, b0, m0, s0, 2, 1, EM_OUT_ASSIGN, ev, o1), EM_ERR_NULL);
    CHECK_EQ(em_fc_s8_events(x, w1, b0, m0, s0, 0, 1, EM_OUT_ASSIGN, ev, o1), EM_ERR_DIMS);
    CHECK_EQ(em_fc_s8_events(x, w1, b0, m0, s0, 2, 1, (em_out_mode_t)2, ev, o1), EM_ERR_PARAM);
    s0[0] = 0;
    CHECK_EQ(em_fc_s8_events(x, w1, b0, m0, s0, 2, 1, EM_OUT_ASSIGN, ev, o1), EM_ERR_PARAM);
    CHECK_EQ(em_fc_s8_packed_events(x, wq, 4, b0, m0, s0, 2, 1, EM_OUT_ASSIGN, ev, o1), EM_ERR_PARAM);
}

void suite_graph_kernels(void) {
    RUN(test_fc_events);
    RUN(test_fc_s8_mode);
    RUN(test_fc_s16);
    RUN(test_conv1d);
    RUN(test_fc_packed);
    RUN(test_conv_packed);
    RUN(test_conv1d_packed);
    RUN(test_act);
    RUN(test_leaky);
    RUN(test_lmu_s8);
    RUN(test_lmu_orders);
    RUN(test_lmu_legendre);
    RUN(test_add);
    RUN(test_onoff);
    RUN(test_spike);
}
