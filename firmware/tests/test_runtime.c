/* Runtime tests: status names, em_graph_bind (what it checks, and that a bound blob runs exactly as a parsed one),
 * the refusal of the retired first blob format, the fixture end to end (model.bin parsed and the compiled-in
 * model.c bound, both against its generator's expected.bin), determinism, and random edits to a valid blob
 * (whatever the parser accepts must run). */
#include <stdlib.h>
#include <string.h>

#include "edgemem.h"
#include "em_test.h"
#include "model.h" /* the fixture's compiled-in blob (tests/fixtures/tiny_graph) */

#define CAP 16384u
static uint32_t g_blob32[CAP / 4 + 4]; /* 4-byte aligned, with room to misalign a copy */
static uint8_t *const g_blob = (uint8_t *)g_blob32;
static size_t g_size;
static uint32_t g_arena_a[2048], g_arena_b[2048];

/* The fixture blob (model.bin) into g_blob. */
static int load_fixture(void) {
    long n = em_test_read_fixture("model.bin", g_blob, CAP);
    CHECK(n > 64);
    g_size = n > 0 ? (size_t)n : 0;
    return n > 64;
}

static void test_status_str(void) {
    const char *seen[18];
    for (int s = 0; s >= EM_ERR_PLAN; s--) {
        const char *str = em_status_str((em_status_t)s);
        CHECK(str != NULL && str[0] != '\0');
        seen[-s] = str;
        for (int j = 0; j < -s; j++) CHECK(strcmp(seen[j], str) != 0);
    }
    CHECK_EQ(EM_ERR_PLAN, -17); /* the last code: the loop above saw every one */
    CHECK(strcmp(em_status_str(EM_OK), "ok") == 0);
    CHECK(strcmp(em_status_str((em_status_t)-99), "unknown status") == 0);
    CHECK(strcmp(em_status_str((em_status_t)1), "unknown status") == 0);
}

/* The compiled-in model.c is the model.bin bytes; bound, parsed and the generator's reference agree step for step,
 * with a reset every 25 steps (as make_tiny_graph.py writes expected.bin). */
static void test_fixture_bind_and_parse(void) {
    static int8_t in[4096];
    static uint8_t expected[8192];
    if (!load_fixture()) return;
    long ni = em_test_read_fixture("input.bin", in, sizeof in);
    long ne = em_test_read_fixture("expected.bin", expected, sizeof expected);
    CHECK(ni > 0 && ne > 0);
    if (ni <= 0 || ne <= 0) return;
    CHECK_EQ(g_size, EM_MODEL_BLOB_SIZE);
    CHECK(memcmp(g_blob, em_model_blob, EM_MODEL_BLOB_SIZE) == 0);
    em_graph_t gp, gb;
    CHECK_EQ(em_graph_parse(&gp, g_blob, g_size), EM_OK);
    CHECK_EQ(em_graph_bind(&gb, em_model_blob, EM_MODEL_BLOB_SIZE), EM_OK);
    CHECK_EQ(em_graph_arena_size(&gp), EM_MODEL_ARENA_BYTES);
    CHECK_EQ(em_graph_arena_size(&gb), EM_MODEL_ARENA_BYTES);
    CHECK_EQ(gb.n_in, EM_MODEL_N_IN);
    CHECK_EQ(gb.n_out, EM_MODEL_N_OUT);
    em_graph_ctx_t cp, cb;
    CHECK_EQ(em_graph_init(&cp, &gp, g_arena_a, EM_MODEL_ARENA_BYTES), EM_OK);
    CHECK_EQ(em_graph_init(&cb, &gb, g_arena_b, EM_MODEL_ARENA_BYTES), EM_OK);
    const int steps = (int)(ni / EM_MODEL_N_IN), per_reset = 25;
    CHECK_EQ(ne, (long)steps * EM_MODEL_N_OUT * 2);
    for (int t = 0; t < steps; t++) {
        int16_t op[EM_MODEL_N_OUT], ob[EM_MODEL_N_OUT];
        if (t % per_reset == 0) {
            CHECK_EQ(em_graph_reset(&cp), EM_OK);
            CHECK_EQ(em_graph_reset(&cb), EM_OK);
        }
        CHECK_EQ(em_graph_step(&cp, in + t * EM_MODEL_N_IN, op), EM_OK);
        CHECK_EQ(em_graph_step(&cb, in + t * EM_MODEL_N_IN, ob), EM_OK);
        for (int o = 0; o < EM_MODEL_N_OUT; o++) {
            const uint8_t *e = expected + 2 * (t * EM_MODEL_N_OUT + o);
            const int16_t want = (int16_t)(uint16_t)(e[0] | e[1] << 8);
            CHECK_EQ(op[o], want);
            CHECK_EQ(ob[o], want);
        }
    }
}

/* Bind of a valid blob fills em_graph_t exactly as parse does; each check it makes has its status; a failed bind
 * leaves g untouched. */
static em_status_t bind_edited(const uint8_t *blob, size_t size) {
    em_graph_t g, before;
    memset(&g, 0x3C, sizeof g);
    before = g;
    em_status_t st = em_graph_bind(&g, blob, size);
    if (st != EM_OK) CHECK(memcmp(&g, &before, sizeof g) == 0);
    return st;
}

static void test_bind_checks(void) {
    if (!load_fixture()) return;
    em_graph_t gp, gb;
    memset(&gp, 0, sizeof gp);
    memset(&gb, 0, sizeof gb);
    CHECK_EQ(em_graph_parse(&gp, g_blob, g_size), EM_OK);
    CHECK_EQ(em_graph_bind(&gb, g_blob, g_size), EM_OK);
    CHECK(memcmp(&gp, &gb, sizeof gp) == 0);
    CHECK_EQ(em_graph_bind(&gb, g_blob, g_size + 100), EM_OK); /* bytes after total_size are ignored */
    CHECK_EQ(em_graph_bind(NULL, g_blob, g_size), EM_ERR_NULL);
    CHECK_EQ(em_graph_bind(&gb, NULL, g_size), EM_ERR_NULL);
    /* truncated: shorter than the header, or than total_size; total_size below the header */
    CHECK_EQ(bind_edited(g_blob, 0), EM_ERR_TRUNCATED);
    CHECK_EQ(bind_edited(g_blob, 63), EM_ERR_TRUNCATED);
    CHECK_EQ(bind_edited(g_blob, 64), EM_ERR_TRUNCATED);
    CHECK_EQ(bind_edited(g_blob, g_size - 1), EM_ERR_TRUNCATED);
    const uint32_t total = tb_r32(g_blob + 8);
    tb_w32(g_blob + 8, 63);
    CHECK_EQ(bind_edited(g_blob, g_size), EM_ERR_TRUNCATED);
    tb_w32(g_blob + 8, 0xFFFFFFFFu);
    CHECK_EQ(bind_edited(g_blob, g_size), EM_ERR_TRUNCATED);
    tb_w32(g_blob + 8, total);
    /* identity */
    g_blob[3] = 'X';
    CHECK_EQ(bind_edited(g_blob, g_size), EM_ERR_MAGIC);
    g_blob[3] = 'B';
    tb_w16(g_blob + 4, 3);
    CHECK_EQ(bind_edited(g_blob, g_size), EM_ERR_VERSION);
    tb_w16(g_blob + 4, 2);
    tb_w16(g_blob + 6, 32);
    CHECK_EQ(bind_edited(g_blob, g_size), EM_ERR_VERSION);
    tb_w16(g_blob + 6, 64);
    /* corruption anywhere in [64, total_size): the first table byte, a weight, the last byte, the CRC field */
    const size_t at[] = {64, g_size / 2, g_size - 1};
    for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
        g_blob[at[k]] ^= 0x10;
        CHECK_EQ(bind_edited(g_blob, g_size), EM_ERR_CRC);
        g_blob[at[k]] ^= 0x10;
    }
    g_blob[13] ^= 1;
    CHECK_EQ(bind_edited(g_blob, g_size), EM_ERR_CRC);
    g_blob[13] ^= 1;
    /* the magic decides before the CRC, as in the parser */
    g_blob[0] = 'X';
    g_blob[g_size - 1] ^= 1;
    CHECK_EQ(bind_edited(g_blob, g_size), EM_ERR_MAGIC);
    g_blob[0] = 'E';
    g_blob[g_size - 1] ^= 1;
    /* a misaligned copy: its tensors would be read misaligned */
    uint8_t *odd = (uint8_t *)g_arena_a + 2;
    memcpy(odd, g_blob, g_size);
    CHECK_EQ(bind_edited(odd, g_size), EM_ERR_ALIGN);
    CHECK_EQ(bind_edited(g_blob, g_size), EM_OK); /* every edit undone */
    /* what bind trusts: a defect its checks do not cover (here a kind the parser refuses; the header is outside the
     * CRC) binds, while parse refuses it */
    tb_w16(g_blob + 16, 1);
    CHECK_EQ(bind_edited(g_blob, g_size), EM_OK);
    CHECK_EQ(em_graph_parse(&gp, g_blob, g_size), EM_ERR_KIND);
    tb_w16(g_blob + 16, 2);
}

/* The retired first format: "EMMB", version field 1, header_size 64, its header (kind 1 and L2MU dims where the graph
 * header has its table counts) and a payload under a valid CRC. Parse and bind both say EM_ERR_VERSION. */
static void test_version_1_refused(void) {
    uint8_t *b = g_blob;
    memset(b, 0, 1024);
    memcpy(b, "EMMB", 4);
    tb_w16(b + 4, 1);
    tb_w16(b + 6, 64);
    tb_w32(b + 8, 1024);
    tb_w16(b + 16, 1);
    const uint32_t dims[] = {6, 4, 8, 48, 7, 15, 39}; /* n_in, n_u, order, n_h, n_out, a_shift, n_tensors */
    for (int k = 0; k < 7; k++) tb_w16(b + 20 + 2 * k, dims[k]);
    for (uint32_t i = 64; i < 1024; i++) b[i] = (uint8_t)(i * 7u);
    tb_fix_crc(b);
    em_graph_t g;
    CHECK_EQ(em_graph_parse(&g, b, 1024), EM_ERR_VERSION);
    CHECK_EQ(em_graph_bind(&g, b, 1024), EM_ERR_VERSION);
    CHECK(strcmp(em_status_str(EM_ERR_VERSION), "unsupported blob version") == 0);
}

/* Outputs of T steps from a fresh state into out [T][n_out]. */
static void run_seq(em_graph_ctx_t *ctx, const em_graph_t *g, const int8_t *in, int T, int16_t *out) {
    CHECK_EQ(em_graph_reset(ctx), EM_OK);
    for (int t = 0; t < T; t++) CHECK_EQ(em_graph_step(ctx, in + t * g->n_in, out + t * g->n_out), EM_OK);
}

/* One ctx after a reset, a second ctx, and a bound graph: the same outputs and the same state; the model does
 * something (outputs move). Random input with full-scale stretches. */
static void test_determinism_and_bind(void) {
    enum { T = 200 };
    static int8_t in[T * 64];
    static int16_t o1[T * 16], o2[T * 16], o3[T * 16];
    if (!load_fixture()) return;
    em_graph_t gp, gb;
    CHECK_EQ(em_graph_parse(&gp, g_blob, g_size), EM_OK);
    CHECK_EQ(em_graph_bind(&gb, g_blob, g_size), EM_OK);
    CHECK(gp.n_in * T <= (int)sizeof in && gp.n_out <= 16);
    for (int i = 0; i < T * gp.n_in; i++) in[i] = (int8_t)(i % 97 < 10 ? (i % 2 ? 127 : -128) : (int32_t)t_rand());
    em_graph_ctx_t a, b;
    CHECK_EQ(em_graph_init(&a, &gp, g_arena_a, sizeof g_arena_a), EM_OK);
    CHECK_EQ(em_graph_init(&b, &gb, g_arena_b, sizeof g_arena_b), EM_OK);
    run_seq(&a, &gp, in, T, o1);
    run_seq(&a, &gp, in, T, o2); /* same ctx after reset */
    run_seq(&b, &gb, in, T, o3); /* a second ctx, on the bound graph */
    CHECK(memcmp(o1, o2, sizeof(int16_t) * T * gp.n_out) == 0);
    CHECK(memcmp(o1, o3, sizeof(int16_t) * T * gp.n_out) == 0);
    for (uint32_t k = 0; k < gp.n_buffers; k++) { /* the state too (scratch may hold garbage of other steps) */
        const uint8_t *e = gp.buffers + 12u * k;
        const uint32_t es = e[0] == 1 ? 1u : e[0] == 2 ? 2u : 4u, off = tb_r32(e + 8);
        if (e[1] & 1u) CHECK(memcmp((uint8_t *)g_arena_a + off, (uint8_t *)g_arena_b + off, es * tb_r32(e + 4)) == 0);
    }
    int varied = 0;
    for (int i = gp.n_out; i < T * gp.n_out; i++) varied += o1[i] != o1[i - gp.n_out];
    CHECK(varied > T);
}

/* Hostile input: random edits to header, tables and data, the CRC resealed so they reach the deep checks. Whatever
 * parses must also run; ASan/UBSan flag any out-of-bounds access. */
static void test_parse_random_edits(void) {
    static uint32_t orig32[CAP / 4];
    static uint32_t arena[8192];
    if (!load_fixture()) return;
    memcpy(orig32, g_blob32, sizeof orig32);
    const uint32_t tables_end = 64u + 12u * (g_blob[22] | g_blob[23] << 8) + 32u * (g_blob[24] | g_blob[25] << 8) +
                                12u * (g_blob[26] | g_blob[27] << 8);
    int ok = 0;
    for (int k = 0; k < 3000; k++) {
        memcpy(g_blob32, orig32, sizeof orig32);
        t_seed(1000u + (uint32_t)k);
        const int edits = t_range(1, 4);
        for (int j = 0; j < edits; j++) {
            const uint32_t at = (uint32_t)(t_rand() % 3 == 0   ? t_range(0, 63)
                                           : t_rand() % 2 ? t_range(64, (int32_t)tables_end - 1)
                                                          : t_range(0, (int32_t)g_size - 1));
            g_blob[at] = t_rand() % 2 ? (uint8_t)t_rand() : (uint8_t)(g_blob[at] ^ (1u << (t_rand() % 8)));
        }
        const uint32_t total = tb_r32(g_blob + 8); /* the CRC helper trusts total_size: only when it is sane */
        if (t_rand() % 8 && total >= 64 && total <= g_size) tb_fix_crc(g_blob);
        const size_t size = t_rand() % 10 ? g_size : (size_t)t_range(0, (int32_t)g_size);
        em_graph_t g;
        if (em_graph_parse(&g, g_blob, size) == EM_OK) {
            ok++;
            em_graph_t gb;
            CHECK_EQ(em_graph_bind(&gb, g_blob, size), EM_OK); /* what parse accepts, bind accepts */
            em_graph_ctx_t ctx;
            if (em_graph_arena_size(&g) > sizeof arena) {
                CHECK_EQ(em_graph_init(&ctx, &g, arena, sizeof arena), EM_ERR_ARENA);
                continue;
            }
            CHECK_EQ(em_graph_init(&ctx, &g, arena, sizeof arena), EM_OK);
            int8_t in[EM_MAX_DIM];
            int16_t out[EM_MAX_DIM];
            for (int i = 0; i < g.n_in; i++) in[i] = (int8_t)t_rand();
            for (int t = 0; t < 3; t++) CHECK_EQ(em_graph_step(&ctx, in, out), EM_OK);
        }
    }
    CHECK(ok > 0); /* some edits (data values) leave a valid graph */
}

void suite_runtime(void) {
    RUN(test_status_str);
    RUN(test_fixture_bind_and_parse);
    RUN(test_bind_checks);
    RUN(test_version_1_refused);
    RUN(test_determinism_and_bind);
    RUN(test_parse_random_edits);
}
