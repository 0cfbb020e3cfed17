/* Runtime tests: init/arena rules, state errors, determinism, and the fixture model end to end
 * (blob vs compiled-in model.c vs the Python integer reference's expected.bin). */
#include <stdlib.h>
#include <string.h>

#include "edgemem.h"
#include "em_test.h"
#include "model.h" /* the fixture's compiled-in model (tests/fixtures/tiny_model) */

static uint32_t g_blob32[TB_CAP / 4];
static uint32_t g_arena[8192];
static const tb_dims_t g_dims = {.n_in = 5, .n_u = 4, .order = 3, .n_h = 7, .n_out = 4, .a_shift = 13, .flags = 0x5};

static em_status_t load(em_model_t *m, uint32_t seed) {
    size_t n = tb_build((uint8_t *)g_blob32, TB_CAP, &g_dims, seed);
    return em_model_parse(m, (const uint8_t *)g_blob32, n);
}

static void test_init_arena(void) {
    em_model_t m;
    em_ctx_t ctx;
    CHECK_EQ(load(&m, 5), EM_OK);
    size_t need = em_arena_size(&m);
    CHECK(need > 0 && need % 4 == 0);
    CHECK(need <= sizeof g_arena);
    CHECK_EQ(em_init(&ctx, &m, g_arena, need - 1), EM_ERR_ARENA);
    CHECK_EQ(em_init(&ctx, &m, g_arena, need - 4), EM_ERR_ARENA);
    CHECK_EQ(em_init(&ctx, &m, g_arena, 0), EM_ERR_ARENA);
    CHECK_EQ(em_init(&ctx, &m, (uint8_t *)g_arena + 2, need + 8), EM_ERR_ARENA); /* misaligned */
    CHECK_EQ(em_init(&ctx, &m, (uint8_t *)g_arena + 1, need + 8), EM_ERR_ARENA);
    int8_t in[8] = {0};
    int16_t out[8];
    CHECK_EQ(em_step(&ctx, in, out), EM_ERR_STATE); /* a failed init leaves ctx unusable */
    CHECK_EQ(em_init(&ctx, &m, g_arena, need), EM_OK);
    CHECK_EQ(em_step(&ctx, in, out), EM_OK);
    CHECK_EQ(em_init(NULL, &m, g_arena, need), EM_ERR_NULL);
    CHECK_EQ(em_init(&ctx, NULL, g_arena, need), EM_ERR_NULL);
    CHECK_EQ(em_init(&ctx, &m, NULL, need), EM_ERR_NULL);
    CHECK_EQ(em_step(NULL, in, out), EM_ERR_NULL);
    CHECK_EQ(em_init(&ctx, &m, g_arena, need), EM_OK);
    CHECK_EQ(em_step(&ctx, NULL, out), EM_ERR_NULL);
    CHECK_EQ(em_step(&ctx, in, NULL), EM_ERR_NULL);
    /* an arena exactly em_arena_size long from the heap: ASan catches any write past the layout */
    uint8_t *heap = malloc(need);
    CHECK(heap != NULL);
    if (heap) {
        CHECK_EQ(em_init(&ctx, &m, heap, need), EM_OK);
        for (int t = 0; t < 50; t++) {
            for (int i = 0; i < m.n_in; i++) in[i] = (int8_t)t_rand();
            CHECK_EQ(em_step(&ctx, in, out), EM_OK);
        }
        free(heap);
    }
}

static void test_before_init(void) {
    em_ctx_t ctx;
    memset(&ctx, 0, sizeof ctx);
    int8_t in[8] = {0};
    int16_t out[8];
    CHECK_EQ(em_step(&ctx, in, out), EM_ERR_STATE);
    CHECK_EQ(em_reset(&ctx), EM_ERR_STATE);
    memset(&ctx, 0xFF, sizeof ctx);
    CHECK_EQ(em_step(&ctx, in, out), EM_ERR_STATE);
    CHECK_EQ(em_reset(NULL), EM_ERR_NULL);
}

static void test_model_check(void) {
    em_model_t m, bad;
    CHECK_EQ(load(&m, 9), EM_OK);
    CHECK_EQ(em_model_check(&m), EM_OK);
    CHECK_EQ(em_model_check(NULL), EM_ERR_NULL);
    bad = m;
    bad.kind = 7;
    CHECK_EQ(em_model_check(&bad), EM_ERR_KIND);
    bad = m;
    bad.n_m = 10;
    CHECK_EQ(em_model_check(&bad), EM_ERR_DIMS);
    bad = m;
    bad.fc[EM_FC_HID_M].in_dim = 5;
    CHECK_EQ(em_model_check(&bad), EM_ERR_DIMS);
    bad = m;
    bad.fc[EM_FC_OUT].out_dim = 3;
    CHECK_EQ(em_model_check(&bad), EM_ERR_DIMS);
    bad = m;
    bad.pop[EM_POP_HID].n = 6;
    CHECK_EQ(em_model_check(&bad), EM_ERR_DIMS);
    bad = m;
    bad.n_h = 0;
    CHECK_EQ(em_model_check(&bad), EM_ERR_DIMS);
    CHECK_EQ(em_arena_size(&bad), 0);
    bad = m;
    bad.fc[EM_FC_ENC_X].w = NULL;
    CHECK_EQ(em_model_check(&bad), EM_ERR_NULL);
    bad = m;
    bad.pop[EM_POP_ENC].alpha = NULL; /* encoder is CuBa here */
    CHECK_EQ(em_model_check(&bad), EM_ERR_NULL);
    bad = m;
    bad.pop[EM_POP_MEM].alpha = NULL; /* memory is LIF here: alpha unused */
    CHECK_EQ(em_model_check(&bad), EM_OK);
    bad = m;
    bad.a_shift = 31;
    CHECK_EQ(em_model_check(&bad), EM_ERR_PARAM);
    bad = m;
    bad.a_shift = 0;
    CHECK_EQ(em_model_check(&bad), EM_ERR_PARAM);
    em_ctx_t ctx;
    CHECK_EQ(em_init(&ctx, &bad, g_arena, sizeof g_arena), EM_ERR_PARAM);
}

static void test_status_str(void) {
    const char *seen[14];
    for (int s = 0; s >= -13; s--) {
        const char *str = em_status_str((em_status_t)s);
        CHECK(str != NULL && str[0] != '\0');
        seen[-s] = str;
        for (int j = 0; j < -s; j++) CHECK(strcmp(seen[j], str) != 0);
    }
    CHECK(strcmp(em_status_str((em_status_t)-99), "unknown status") == 0);
}

/* Outputs of T steps from a fresh state into out [T][n_out]. */
static void run_seq(em_ctx_t *ctx, const em_model_t *m, const int8_t *in, int T, int16_t *out) {
    CHECK_EQ(em_reset(ctx), EM_OK);
    for (int t = 0; t < T; t++) CHECK_EQ(em_step(ctx, in + t * m->n_in, out + t * m->n_out), EM_OK);
}

static void test_determinism(void) {
    enum { T = 200 };
    em_model_t m;
    em_ctx_t a, b;
    static uint32_t arena_b[8192];
    static int8_t in[T * 8];
    static int16_t o1[T * 8], o2[T * 8], o3[T * 8];
    CHECK_EQ(load(&m, 11), EM_OK);
    for (int i = 0; i < T * m.n_in; i++) in[i] = (int8_t)t_rand();
    CHECK_EQ(em_init(&a, &m, g_arena, sizeof g_arena), EM_OK);
    CHECK_EQ(em_init(&b, &m, arena_b, sizeof arena_b), EM_OK);
    run_seq(&a, &m, in, T, o1);
    run_seq(&a, &m, in, T, o2); /* same ctx after reset */
    run_seq(&b, &m, in, T, o3); /* a second, independent ctx */
    CHECK(memcmp(o1, o2, sizeof(int16_t) * T * m.n_out) == 0);
    CHECK(memcmp(o1, o3, sizeof(int16_t) * T * m.n_out) == 0);
    int nonzero = 0, varied = 0;
    for (int i = 0; i < T * m.n_out; i++) {
        nonzero += o1[i] != 0;
        varied += i >= m.n_out && o1[i] != o1[i - m.n_out];
    }
    CHECK(nonzero > 0 && varied > 0); /* the model does something: spikes reach the output */
}

static void test_fixture(void) {
    static uint32_t blob32[4096];
    static int8_t in[4096];
    static uint8_t expected[8192];
    static uint32_t arena2[1024];
    long nb = em_test_read_fixture("model.bin", blob32, sizeof blob32);
    long ni = em_test_read_fixture("input.bin", in, sizeof in);
    long ne = em_test_read_fixture("expected.bin", expected, sizeof expected);
    CHECK(nb > 0 && ni > 0 && ne > 0);
    if (nb <= 0 || ni <= 0 || ne <= 0) return;
    em_model_t m;
    CHECK_EQ(em_model_parse(&m, (const uint8_t *)blob32, (size_t)nb), EM_OK);
    const em_model_t *c = &EM_MODEL_SYMBOL;
    CHECK_EQ(em_model_check(c), EM_OK);
    CHECK_EQ(em_arena_size(c), EM_MODEL_ARENA_BYTES); /* the generator's arena formula matches */
    CHECK_EQ(em_arena_size(&m), EM_MODEL_ARENA_BYTES);
    CHECK_EQ(m.n_in, c->n_in);
    CHECK_EQ(m.n_out, c->n_out);
    em_ctx_t cb, cc;
    CHECK_EQ(em_init(&cb, &m, g_arena, em_arena_size(&m)), EM_OK);
    CHECK_EQ(em_init(&cc, c, arena2, EM_MODEL_ARENA_BYTES), EM_OK);
    const int steps = (int)(ni / m.n_in), per_reset = 20; /* as make_tiny_model.py */
    CHECK_EQ(ne, (long)steps * m.n_out * 2);
    for (int t = 0; t < steps; t++) {
        int16_t ob[EM_MAX_DIM], oc[EM_MAX_DIM];
        if (t % per_reset == 0) {
            CHECK_EQ(em_reset(&cb), EM_OK);
            CHECK_EQ(em_reset(&cc), EM_OK);
        }
        CHECK_EQ(em_step(&cb, in + t * m.n_in, ob), EM_OK);
        CHECK_EQ(em_step(&cc, in + t * m.n_in, oc), EM_OK);
        for (int o = 0; o < m.n_out; o++) {
            const uint8_t *e = expected + 2 * (t * m.n_out + o);
            int16_t want = (int16_t)(uint16_t)(e[0] | e[1] << 8);
            CHECK_EQ(ob[o], want);
            CHECK_EQ(oc[o], want);
        }
    }
}

void suite_runtime(void) {
    RUN(test_init_arena);
    RUN(test_before_init);
    RUN(test_model_check);
    RUN(test_status_str);
    RUN(test_determinism);
    RUN(test_fixture);
}
