/* Patch schedule API (graph_patch.c): a conv-front graph built here, a plan written by hand as the docs say, and
 * em_graph_patch_run in blocks of every size equal to em_graph_step frame for frame; then misuse of the API. The
 * Python tests (tests/test_patch_schedule.py) cover planner-made plans, shipped models and rejected tables. */
#include <string.h>

#include "em_graph.h"
#include "em_test.h"

uint32_t em_crc32(const uint8_t *p, size_t n); /* src/em_crc32.h (internal) */

enum { PN_IN = 4, PN_C = 6, PK = 3, PP = 4 }; /* n_in, conv channels, kernel, patch frames */
#define PCAP 8192u
static uint32_t p_blob32[PCAP / 4];
static uint32_t p_plan32[64];
static uint32_t p_arena_a[1024], p_arena_b[1024];

static void put16(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v) {
    put16(p, v & 0xFFFFu);
    put16(p + 2, v >> 16);
}

/* x s8[4] -conv k3-> c s32[6] -SAT-> y s16[6] (out); the stage is op 0, c crosses to the rest. */
static size_t build(gb_t *gb, int *ring, int *head, int *c, int *y) {
    gb_init(gb, PN_IN, PN_C);
    *c = gb_buffer(gb, GB_S32, PN_C, 0);
    *ring = gb_buffer(gb, GB_S8, (PK - 1) * PN_IN, 1);
    *head = gb_buffer(gb, GB_S32, 1, 1);
    *y = gb_buffer(gb, GB_S16, PN_C, 0);
    gb->out_buffer = *y;
    int w = gb_tensor(gb, GB_S8, NULL, PN_C * PK * PN_IN), b = gb_tensor(gb, GB_S32, NULL, PN_C);
    int m = gb_tensor(gb, GB_S32, NULL, PN_C), s = gb_tensor(gb, GB_S8, NULL, PN_C);
    for (int i = 0; i < PN_C * PK * PN_IN; i++) gb_values(gb, w)[i] = t_range(-127, 127);
    for (int i = 0; i < PN_C; i++) {
        gb_values(gb, b)[i] = t_range(-500, 500);
        gb_values(gb, m)[i] = t_range(1 << 30, 0x7FFFFFFF);
        gb_values(gb, s)[i] = 36;
    }
    gb_op_t op = gb_op(EM_OP_CONV1D, 0);
    op.in0 = 0;
    op.out = (uint16_t)*c;
    op.state0 = (uint16_t)*ring;
    op.state1 = (uint16_t)*head;
    op.d[0] = PN_IN;
    op.d[1] = PN_C;
    op.d[2] = PK;
    op.t[0] = (uint16_t)w;
    op.t[1] = (uint16_t)b;
    op.t[2] = (uint16_t)m;
    op.t[3] = (uint16_t)s;
    gb_add(gb, &op);
    gb_op_t sat = gb_op(EM_OP_ACT, 0); /* SAT */
    sat.in0 = (uint16_t)*c;
    sat.out = (uint16_t)*y;
    sat.d[0] = PN_C;
    gb_add(gb, &sat);
    return gb_build(gb, (uint8_t *)p_blob32, PCAP);
}

/* x: P + 2 frames (lead 2) at 0; c: P frames at 32; y: one frame after; ring and head unused. */
static size_t plan(const uint8_t *graph_blob, int n_b, int ring, int head, int c, int y) {
    uint8_t *p = (uint8_t *)p_plan32;
    const uint32_t total = EM_PATCH_HEADER_SIZE + EM_PATCH_ENTRY_SIZE * (uint32_t)n_b;
    memset(p, 0, total);
    memcpy(p, "EMPS", 4);
    put16(p + 4, 1);
    put16(p + 6, EM_PATCH_HEADER_SIZE);
    put32(p + 8, total);
    memcpy(p + 16, graph_blob + 12, 4);
    put16(p + 20, PP);
    put16(p + 22, 1);
    put16(p + 24, (uint32_t)n_b);
    const uint32_t c_off = 32, y_off = c_off + PP * PN_C * 4;
    put32(p + 28, y_off + PN_C * 2);
    uint8_t *t = p + EM_PATCH_HEADER_SIZE;
    put32(t, 0), put16(t + 4, PP + PK - 1), put16(t + 6, PK - 1);
    put32(t + 8 * c, c_off), put16(t + 8 * c + 4, PP);
    put32(t + 8 * y, y_off), put16(t + 8 * y + 4, 1);
    (void)ring, (void)head; /* zero entries: unused */
    put32(p + 12, em_crc32(t, total - EM_PATCH_HEADER_SIZE));
    return total;
}

static void test_patch_equals_streaming(void) {
    static gb_t gb;
    int ring, head, c, y;
    const size_t size = build(&gb, &ring, &head, &c, &y);
    em_graph_t g;
    CHECK_EQ(em_graph_parse(&g, (const uint8_t *)p_blob32, size), EM_OK);
    const size_t psize = plan((const uint8_t *)p_blob32, g.n_buffers, ring, head, c, y);
    em_graph_patch_t p;
    CHECK_EQ(em_graph_patch_parse(&p, &g, (const uint8_t *)p_plan32, psize), EM_OK);
    CHECK_EQ(em_graph_patch_arena_size(&p), 32 + PP * PN_C * 4 + PN_C * 2);
    em_graph_ctx_t sc;
    em_graph_patch_ctx_t pc;
    memset(p_arena_b, 0x5A, sizeof p_arena_b); /* init zeroes the history whatever the arena held */
    CHECK_EQ(em_graph_init(&sc, &g, p_arena_a, sizeof p_arena_a), EM_OK);
    CHECK_EQ(em_graph_patch_init(&pc, &p, p_arena_b, sizeof p_arena_b), EM_OK);
    int8_t x[PP][PN_IN];
    int16_t ys[PN_C], yp[PP][PN_C];
    long mismatches = 0, nonzero = 0;
    for (int rep = 0; rep < 2; rep++) { /* then again after a reset of both */
        for (int t = 0, n = 1; t < 40; t += n, n = n % PP + 1) { /* blocks of 1, 2, 3, 4, 1, ... frames */
            for (int f = 0; f < n; f++)
                for (int i = 0; i < PN_IN; i++) x[f][i] = (int8_t)t_range(-128, 127);
            CHECK_EQ(em_graph_patch_run(&pc, &x[0][0], n, &yp[0][0]), EM_OK);
            for (int f = 0; f < n; f++) {
                CHECK_EQ(em_graph_step(&sc, x[f], ys), EM_OK);
                mismatches += memcmp(ys, yp[f], sizeof ys) != 0;
                for (int o = 0; o < PN_C; o++) nonzero += ys[o] != 0;
            }
        }
        CHECK_EQ(em_graph_reset(&sc), EM_OK);
        CHECK_EQ(em_graph_patch_reset(&pc), EM_OK);
    }
    CHECK_EQ(mismatches, 0);
    CHECK(nonzero > 200);

    /* misuse */
    CHECK_EQ(em_graph_patch_run(&pc, &x[0][0], 0, &yp[0][0]), EM_ERR_DIMS);
    CHECK_EQ(em_graph_patch_run(&pc, &x[0][0], PP + 1, &yp[0][0]), EM_ERR_DIMS);
    CHECK_EQ(em_graph_patch_run(&pc, NULL, 1, &yp[0][0]), EM_ERR_NULL);
    CHECK_EQ(em_graph_patch_init(&pc, &p, p_arena_b, em_graph_patch_arena_size(&p) - 4), EM_ERR_ARENA);
    CHECK_EQ(em_graph_patch_run(&pc, &x[0][0], 1, &yp[0][0]), EM_ERR_STATE); /* a failed init disarms it */
    CHECK_EQ(em_graph_patch_init(&pc, &p, (uint8_t *)p_arena_b + 2, sizeof p_arena_b - 4), EM_ERR_ARENA);
    em_graph_patch_t unparsed;
    memset(&unparsed, 0, sizeof unparsed);
    CHECK_EQ(em_graph_patch_init(&pc, &unparsed, p_arena_b, sizeof p_arena_b), EM_ERR_STATE);
    CHECK_EQ(em_graph_patch_arena_size(&unparsed), 0);
    CHECK_EQ(em_graph_patch_parse(&unparsed, &g, (const uint8_t *)p_plan32, psize - 1), EM_ERR_TRUNCATED);
    CHECK_EQ(em_graph_patch_parse(NULL, &g, (const uint8_t *)p_plan32, psize), EM_ERR_NULL);
    em_graph_t zero;
    memset(&zero, 0, sizeof zero);
    CHECK_EQ(em_graph_patch_parse(&unparsed, &zero, (const uint8_t *)p_plan32, psize), EM_ERR_STATE);
}

void suite_graph_patch(void) { RUN(test_patch_equals_streaming); }
