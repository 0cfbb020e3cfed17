/* Guard-region tests: the runtime writes only inside [arena, arena + em_arena_size).
 * One static buffer holds   front canary | arena (exactly em_arena_size bytes) | back canary,
 * so ASan (which only sees the whole buffer) cannot catch an overrun here: the canaries do. Many steps with
 * extreme inputs (full scale, alternating, constant, random) on the fixture model, a bigger generated model
 * and the same bigger model with extreme parameters (so every saturation path runs); after every step both
 * canaries and the bytes of out[] past n_out must be intact. Runs on the host (ASan + UBSan) and on the M4. */
#include <string.h>

#include "edgemem.h"
#include "em_test.h"

#define FRONT_BYTES 64u
#define BACK_BYTES 256u
#define ARENA_CAP 16384u

static uint32_t g_gbuf32[(FRONT_BYTES + ARENA_CAP + BACK_BYTES) / 4];
static uint8_t *const g_gbuf = (uint8_t *)g_gbuf32;
static uint32_t g_gblob32[TB_CAP / 4];

static uint8_t canary(size_t i) { return (uint8_t)(0xA5u ^ (i * 29u)); } /* position-dependent pattern */

/* Index of the first damaged canary byte, or -1. */
static long damaged(size_t need) {
    for (size_t i = 0; i < FRONT_BYTES; i++)
        if (g_gbuf[i] != canary(i)) return (long)i;
    for (size_t i = FRONT_BYTES + need; i < FRONT_BYTES + need + BACK_BYTES; i++)
        if (g_gbuf[i] != canary(i)) return (long)i;
    return -1;
}

typedef enum { P_MAX, P_MIN, P_ALT_STEP, P_ALT_CHAN, P_ZERO, P_RAND, P_BURST, P_COUNT } pattern_t;

static int8_t input_value(pattern_t p, int t, int i) {
    switch (p) {
    case P_MAX: return 127;
    case P_MIN: return -128;
    case P_ALT_STEP: return t % 2 ? -128 : 127;
    case P_ALT_CHAN: return (t + i) % 2 ? -128 : 127;
    case P_ZERO: return 0;
    case P_RAND: return (int8_t)t_rand();
    case P_BURST: return (t / 25) % 2 ? 0 : 127; /* long full-scale bursts, then silence */
    default: return 0;
    }
}

/* Runs `steps` steps per pattern; returns the number of steps run (all EM_OK). *n_sat counts logits at int16
 * full scale (the extreme-parameter model must get there). */
static int run_guarded(const em_model_t *m, int steps, long *n_sat) {
    const size_t need = em_arena_size(m);
    CHECK(need > 0 && need <= ARENA_CAP);
    if (need == 0 || need > ARENA_CAP) return 0;
    for (size_t i = 0; i < sizeof g_gbuf32; i++) g_gbuf[i] = canary(i);
    uint8_t *arena = g_gbuf + FRONT_BYTES;
    em_ctx_t ctx;
    CHECK_EQ(em_init(&ctx, m, arena, need), EM_OK);
    CHECK_EQ(damaged(need), -1);
    int8_t in[EM_MAX_DIM];
    int16_t out[EM_MAX_DIM + 8];
    int ran = 0;
    *n_sat = 0;
    for (int p = 0; p < P_COUNT; p++) {
        CHECK_EQ(em_reset(&ctx), EM_OK);
        for (int t = 0; t < steps; t++) {
            for (int i = 0; i < m->n_in; i++) in[i] = input_value((pattern_t)p, t, i);
            for (int o = 0; o < m->n_out + 8; o++) out[o] = 0x5A5A;
            em_status_t st = em_step(&ctx, in, out);
            long bad = damaged(need);
            if (st != EM_OK || bad != -1) {
                CHECK_EQ(st, EM_OK);
                CHECK_EQ(bad, -1); /* byte index into front canary | arena | back canary */
                return ran;
            }
            for (int o = m->n_out; o < m->n_out + 8; o++) CHECK_EQ(out[o], 0x5A5A);
            for (int o = 0; o < m->n_out; o++) *n_sat += out[o] == INT16_MAX || out[o] == INT16_MIN;
            ran++;
        }
    }
    return ran;
}

static void test_guard_fixture(void) {
    long n = em_test_read_fixture("model.bin", g_gblob32, sizeof g_gblob32);
    CHECK(n > 0);
    if (n <= 0) return;
    em_model_t m;
    long sat;
    CHECK_EQ(em_model_parse(&m, (const uint8_t *)g_gblob32, (size_t)n), EM_OK);
    CHECK_EQ(run_guarded(&m, 300, &sat), 300 * P_COUNT);
}

/* A bigger model: n_m = 2 * 8 * 16 = 256, every population CuBa (syn regions too). */
static const tb_dims_t g_big = {.n_in = 16, .n_u = 8, .order = 16, .n_h = 64, .n_out = 10, .a_shift = 14,
                                .flags = 0x7};

static void test_guard_big(void) {
    em_model_t m;
    long sat;
    size_t n = tb_build((uint8_t *)g_gblob32, TB_CAP, &g_big, 2024u);
    CHECK(n > 0);
    CHECK_EQ(em_model_parse(&m, (const uint8_t *)g_gblob32, n), EM_OK);
    CHECK_EQ(run_guarded(&m, 100, &sat), 100 * P_COUNT);
    /* LIF everywhere: no syn regions, a shorter layout */
    tb_dims_t lif = g_big;
    lif.flags = 0;
    n = tb_build((uint8_t *)g_gblob32, TB_CAP, &lif, 2025u);
    CHECK_EQ(em_model_parse(&m, (const uint8_t *)g_gblob32, n), EM_OK);
    CHECK_EQ(run_guarded(&m, 100, &sat), 100 * P_COUNT);
}

/* Every tensor set to an extreme the parser still accepts: all arithmetic saturates. */
static void extremize(uint8_t *blob, const tb_dims_t *d, uint32_t seed) {
    t_seed(seed);
    uint32_t n_m = 2u * d->n_u * d->order;
    const uint32_t fc_out[EM_FC_COUNT] = {d->n_u, d->n_u, d->n_u, d->n_h, d->n_h, d->n_h, d->n_out};
    const uint32_t fc_in[EM_FC_COUNT] = {d->n_in, d->n_h, n_m, d->n_in, d->n_h, n_m, d->n_h};
    const uint32_t pop_n[EM_POP_COUNT] = {d->n_u, n_m, d->n_h};
    for (int f = 0; f < EM_FC_COUNT; f++) {
        uint8_t *w = tb_data(blob, EM_TENSOR_FC(f, 0)), *bias = tb_data(blob, EM_TENSOR_FC(f, 1));
        uint8_t *mult = tb_data(blob, EM_TENSOR_FC(f, 2)), *shift = tb_data(blob, EM_TENSOR_FC(f, 3));
        for (uint32_t i = 0; i < fc_out[f] * fc_in[f]; i++) w[i] = (uint8_t)(t_rand() % 2 ? 127 : -128);
        for (uint32_t o = 0; o < fc_out[f]; o++) {
            tb_w32(bias + 4 * o, o % 2 ? (uint32_t)INT32_MAX : (uint32_t)INT32_MIN);
            tb_w32(mult + 4 * o, (uint32_t)INT32_MAX);
            shift[o] = (uint8_t)(o % 3 == 0 ? 1 : o % 3 == 1 ? 62 : 16);
        }
    }
    for (int p = 0; p < EM_POP_COUNT; p++) {
        uint8_t *beta = tb_data(blob, EM_TENSOR_POP(p, 0)), *alpha = tb_data(blob, EM_TENSOR_POP(p, 1));
        uint8_t *thr = tb_data(blob, EM_TENSOR_POP(p, 2));
        for (uint32_t i = 0; i < pop_n[p]; i++) {
            tb_w16(beta + 2 * i, 32767);
            tb_w16(alpha + 2 * i, i % 2 ? 32767 : 0);
            tb_w16(thr + 2 * i, (uint32_t)(i % 3 == 0 ? -32768 : i % 3 == 1 ? 32767 : 0) & 0xFFFFu);
        }
    }
    uint8_t *a = tb_data(blob, EM_TENSOR_LMU_A), *b = tb_data(blob, EM_TENSOR_LMU_B);
    for (uint32_t i = 0; i < (uint32_t)d->order * d->order; i++) tb_w16(a + 2 * i, t_rand() % 2 ? 32767 : 0x8000);
    for (uint32_t i = 0; i < d->order; i++) tb_w32(b + 4 * i, i % 2 ? (uint32_t)INT32_MAX : (uint32_t)INT32_MIN);
    tb_fix_crc(blob);
}

static void test_guard_extreme_params(void) {
    tb_dims_t d = g_big;
    d.a_shift = 1; /* with |A| = 2^15: the LMU update saturates every step */
    size_t n = tb_build((uint8_t *)g_gblob32, TB_CAP, &d, 7u);
    extremize((uint8_t *)g_gblob32, &d, 8u);
    em_model_t m;
    long sat;
    CHECK_EQ(em_model_parse(&m, (const uint8_t *)g_gblob32, n), EM_OK);
    CHECK_EQ(run_guarded(&m, 60, &sat), 60 * P_COUNT);
    CHECK(sat > 0);
    d.a_shift = 30;
    d.flags = 0x2;
    n = tb_build((uint8_t *)g_gblob32, TB_CAP, &d, 9u);
    extremize((uint8_t *)g_gblob32, &d, 10u);
    CHECK_EQ(em_model_parse(&m, (const uint8_t *)g_gblob32, n), EM_OK);
    CHECK_EQ(run_guarded(&m, 60, &sat), 60 * P_COUNT);
    CHECK(sat > 0);
}

void suite_guard(void) {
    RUN(test_guard_fixture);
    RUN(test_guard_big);
    RUN(test_guard_extreme_params);
}
