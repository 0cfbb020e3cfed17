/* Guard-region tests: the graph runtime writes only inside [arena, arena + em_graph_arena_size).
 * One static buffer holds   front canary | arena (exactly arena_size bytes) | back canary,
 * so ASan (which only sees the whole buffer) cannot catch an overrun here: the canaries do. Many steps with
 * extreme inputs (full scale, alternating, constant, random, bursts) on the fixture graph, an L2MU-shaped graph
 * (the ops `edgemem export` writes for one: SPIKE, FC and event-driven FC, LIF and CuBa, LMU, ONOFF, ACT) with
 * n_m = 256, and that graph with extreme parameters (so every saturation path runs); after every step both canaries
 * and the bytes of out[] past n_out must be intact. Runs on the host (ASan + UBSan) and on the M4. */
#include <string.h>

#include "edgemem.h"
#include "em_test.h"

#define FRONT_BYTES 64u
#define BACK_BYTES 256u
#define ARENA_CAP 16384u
#define BLOB_CAP 65536u

static uint32_t g_gbuf32[(FRONT_BYTES + ARENA_CAP + BACK_BYTES) / 4];
static uint8_t *const g_gbuf = (uint8_t *)g_gbuf32;
static uint32_t g_gblob32[BLOB_CAP / 4];
static uint8_t *const g_gblob = (uint8_t *)g_gblob32;
static gb_t g_l2;

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

/* Parses blob, then runs `steps` steps per pattern; returns the number of steps run (all EM_OK). *n_sat counts
 * outputs at int16 full scale (the extreme-parameter graph must get there). */
static int run_guarded(const uint8_t *blob, size_t size, int steps, long *n_sat) {
    em_graph_t g;
    *n_sat = 0;
    CHECK_EQ(em_graph_parse(&g, blob, size), EM_OK);
    const size_t need = em_graph_arena_size(&g);
    CHECK(need > 0 && need <= ARENA_CAP);
    if (need == 0 || need > ARENA_CAP) return 0;
    for (size_t i = 0; i < sizeof g_gbuf32; i++) g_gbuf[i] = canary(i);
    uint8_t *arena = g_gbuf + FRONT_BYTES;
    em_graph_ctx_t ctx;
    CHECK_EQ(em_graph_init(&ctx, &g, arena, need), EM_OK);
    CHECK_EQ(damaged(need), -1);
    int8_t in[EM_MAX_DIM];
    int16_t out[EM_MAX_DIM + 8];
    int ran = 0;
    for (int p = 0; p < P_COUNT; p++) {
        CHECK_EQ(em_graph_reset(&ctx), EM_OK);
        for (int t = 0; t < steps; t++) {
            for (int i = 0; i < g.n_in; i++) in[i] = input_value((pattern_t)p, t, i);
            for (int o = 0; o < g.n_out + 8; o++) out[o] = 0x5A5A;
            em_status_t st = em_graph_step(&ctx, in, out);
            long bad = damaged(need);
            if (st != EM_OK || bad != -1) {
                CHECK_EQ(st, EM_OK);
                CHECK_EQ(bad, -1); /* byte index into front canary | arena | back canary */
                return ran;
            }
            for (int o = g.n_out; o < g.n_out + 8; o++) CHECK_EQ(out[o], 0x5A5A);
            for (int o = 0; o < g.n_out; o++) *n_sat += out[o] == INT16_MAX || out[o] == INT16_MIN;
            ran++;
        }
    }
    return ran;
}

static void test_guard_fixture(void) {
    long n = em_test_read_fixture("model.bin", g_gblob32, sizeof g_gblob32);
    CHECK(n > 0);
    if (n <= 0) return;
    long sat;
    CHECK_EQ(run_guarded(g_gblob, (size_t)n, 300, &sat), 300 * P_COUNT);
}

/* ---- an L2MU as the exporter lowers it (edgemem/quant/lower_l2mu.py), built from docs/graph.md ---- */
typedef struct {
    int n_in, n_u, order, n_h, n_out, a_shift, cuba; /* cuba: bit p set = population p (enc, mem, hid) is CuBa */
} l2_dims_t;
enum { L2_FC_W, L2_FC_B, L2_FC_M, L2_FC_S };

static int l2_vec(int dtype, uint32_t n, int32_t lo, int32_t hi) {
    int t = gb_tensor(&g_l2, dtype, NULL, n);
    for (uint32_t i = 0; i < n; i++) gb_values(&g_l2, t)[i] = t_range(lo, hi);
    return t;
}

/* FC in0 [d_in] -> out [d_out]; events: event-driven (spike input), with its s16 [d_in] index scratch. */
static void l2_fc(int in0, int out, int d_in, int d_out, int acc, int events, int x_input) {
    gb_op_t op = gb_op(GB_FC, (acc ? 1 : 0) | (events ? 8 : 0));
    op.in0 = (uint16_t)in0;
    op.out = (uint16_t)out;
    if (events) op.scratch = (uint16_t)gb_buffer(&g_l2, GB_S16, (uint32_t)d_in, 0);
    op.d[0] = (uint16_t)d_in;
    op.d[1] = (uint16_t)d_out;
    op.t[0] = (uint16_t)l2_vec(GB_S8, (uint32_t)(d_in * d_out), -127, 127);
    op.t[1] = (uint16_t)l2_vec(GB_S32, (uint32_t)d_out, -3000, 3000);
    op.t[2] = (uint16_t)l2_vec(GB_S32, (uint32_t)d_out, 1 << 30, INT32_MAX);
    op.t[3] = (uint16_t)(x_input ? l2_vec(GB_S8, (uint32_t)d_out, 29, 32) : l2_vec(GB_S8, (uint32_t)d_out, 23, 26));
    gb_add(&g_l2, &op);
}

/* LIF/CuBa: cur -> spikes, membrane (and syn) state, thresholds thr (a SPIKE may read them too). */
static void l2_lif(int cur, int spk, int mem, int n, int cuba, int thr) {
    gb_op_t op = gb_op(GB_LIF, cuba ? 2 : 0);
    op.in0 = (uint16_t)cur;
    op.out = (uint16_t)spk;
    op.state0 = (uint16_t)mem;
    if (cuba) op.state1 = (uint16_t)gb_buffer(&g_l2, GB_S16, (uint32_t)n, 1);
    op.d[0] = (uint16_t)n;
    op.t[0] = (uint16_t)l2_vec(GB_S16, (uint32_t)n, 26000, 32000);
    if (cuba) op.t[1] = (uint16_t)l2_vec(GB_S16, (uint32_t)n, 20000, 30000);
    op.t[2] = (uint16_t)thr;
    gb_add(&g_l2, &op);
}

static void l2_spike(int mem, int out, int n, int thr) {
    gb_op_t op = gb_op(GB_SPIKE, 0);
    op.in0 = (uint16_t)mem;
    op.out = (uint16_t)out;
    op.d[0] = (uint16_t)n;
    op.t[0] = (uint16_t)thr;
    gb_add(&g_l2, &op);
}

/* The step of docs/architecture.md as graph ops; returns the blob size (0: too big). */
static size_t build_l2mu(const l2_dims_t *d, uint32_t seed) {
    t_seed(seed);
    gb_t *G = &g_l2;
    const int n_m = 2 * d->n_u * d->order;
    gb_init(G, d->n_in, d->n_out);
    const int x = G->in_buffer;
    const int mem_h = gb_buffer(G, GB_S16, (uint32_t)d->n_h, 1), mem_m = gb_buffer(G, GB_S16, (uint32_t)n_m, 1);
    const int mem_u = gb_buffer(G, GB_S16, (uint32_t)d->n_u, 1);
    const int lmu_m = gb_buffer(G, GB_S16, (uint32_t)(d->n_u * d->order), 1);
    const int spk_h_prev = gb_buffer(G, GB_S8, (uint32_t)d->n_h, 0), spk_m_prev = gb_buffer(G, GB_S8, (uint32_t)n_m, 0);
    const int cur_u = gb_buffer(G, GB_S32, (uint32_t)d->n_u, 0), spk_u = gb_buffer(G, GB_S8, (uint32_t)d->n_u, 0);
    const int lmu_scr = gb_buffer(G, GB_S16, (uint32_t)d->order, 0), cur_m = gb_buffer(G, GB_S32, (uint32_t)n_m, 0);
    const int spk_m = gb_buffer(G, GB_S8, (uint32_t)n_m, 0), cur_h = gb_buffer(G, GB_S32, (uint32_t)d->n_h, 0);
    const int spk_h = gb_buffer(G, GB_S8, (uint32_t)d->n_h, 0), logits = gb_buffer(G, GB_S32, (uint32_t)d->n_out, 0);
    const int out = gb_buffer(G, GB_S16, (uint32_t)d->n_out, 0);
    G->out_buffer = (uint16_t)out;
    /* one threshold tensor per population: its SPIKE (the previous step's spikes) and its LIF read it */
    const int thr_u = l2_vec(GB_S16, (uint32_t)d->n_u, 300, 2500);
    const int thr_h = l2_vec(GB_S16, (uint32_t)d->n_h, 300, 2500), thr_m = l2_vec(GB_S16, (uint32_t)n_m, 300, 2500);
    l2_spike(mem_h, spk_h_prev, d->n_h, thr_h);
    l2_spike(mem_m, spk_m_prev, n_m, thr_m);
    l2_fc(x, cur_u, d->n_in, d->n_u, 0, 0, 1);
    l2_fc(spk_h_prev, cur_u, d->n_h, d->n_u, 1, 1, 0);
    l2_fc(spk_m_prev, cur_u, n_m, d->n_u, 1, 1, 0);
    l2_lif(cur_u, spk_u, mem_u, d->n_u, d->cuba & 1, thr_u);
    gb_op_t lmu = gb_op(GB_LMU, 0);
    lmu.in0 = (uint16_t)spk_u;
    lmu.state0 = (uint16_t)lmu_m;
    lmu.scratch = (uint16_t)lmu_scr;
    lmu.d[0] = (uint16_t)d->n_u;
    lmu.d[1] = (uint16_t)d->order;
    lmu.d[2] = (uint16_t)d->a_shift;
    lmu.t[0] = (uint16_t)gb_tensor(G, GB_S16, NULL, (uint32_t)(d->order * d->order));
    for (int i = 0; i < d->order * d->order; i++) {
        const int r = i / d->order, c = i % d->order;
        gb_values(G, lmu.t[0])[i] = (r == c ? (int32_t)(0.92 * (1 << d->a_shift)) : 0) +
                                    (int32_t)((int64_t)t_range(-2500, 2500) * (1 << d->a_shift) / 16384);
    }
    lmu.t[1] = (uint16_t)l2_vec(GB_S32, (uint32_t)d->order, -4000, 4000);
    gb_add(G, &lmu);
    gb_op_t onoff = gb_op(GB_ONOFF, 0);
    onoff.in0 = (uint16_t)lmu_m;
    onoff.out = (uint16_t)cur_m;
    onoff.d[0] = (uint16_t)(d->n_u * d->order);
    gb_add(G, &onoff);
    l2_lif(cur_m, spk_m, mem_m, n_m, (d->cuba >> 1) & 1, thr_m);
    l2_fc(x, cur_h, d->n_in, d->n_h, 0, 0, 1);
    l2_fc(spk_h_prev, cur_h, d->n_h, d->n_h, 1, 1, 0);
    l2_fc(spk_m, cur_h, n_m, d->n_h, 1, 1, 0);
    l2_lif(cur_h, spk_h, mem_h, d->n_h, (d->cuba >> 2) & 1, thr_h);
    l2_fc(spk_h, logits, d->n_h, d->n_out, 0, 1, 0);
    gb_op_t act = gb_op(GB_ACT, 0); /* SAT to s16: the logits */
    act.in0 = (uint16_t)logits;
    act.out = (uint16_t)out;
    act.d[0] = (uint16_t)d->n_out;
    gb_add(G, &act);
    return gb_build(G, g_gblob, BLOB_CAP);
}

/* Every tensor at an extreme the parser still accepts: all arithmetic saturates. */
static void extremize(uint32_t seed) {
    t_seed(seed);
    gb_t *G = &g_l2;
    for (int i = 0; i < G->n_ops; i++) {
        const gb_op_t *op = &G->op[i];
        if (op->type == GB_FC) {
            int32_t *w = gb_values(G, op->t[0]), *b = gb_values(G, op->t[1]), *m = gb_values(G, op->t[2]);
            int32_t *s = gb_values(G, op->t[3]);
            for (uint32_t k = 0; k < G->ten[op->t[0]].count; k++) w[k] = t_rand() % 2 ? 127 : -128;
            for (int o = 0; o < op->d[1]; o++) {
                b[o] = o % 2 ? INT32_MAX : INT32_MIN;
                m[o] = INT32_MAX;
                s[o] = o % 3 == 0 ? 1 : o % 3 == 1 ? 62 : 16;
            }
        } else if (op->type == GB_LIF) {
            for (int k = 0; k < op->d[0]; k++) {
                gb_values(G, op->t[0])[k] = 32767;
                if (op->t[1] != GB_NONE) gb_values(G, op->t[1])[k] = k % 2 ? 32767 : 0;
                gb_values(G, op->t[2])[k] = k % 3 == 0 ? -32768 : k % 3 == 1 ? 32767 : 0;
            }
        } else if (op->type == GB_LMU) {
            int32_t *a = gb_values(G, op->t[0]);
            for (uint32_t k = 0; k < G->ten[op->t[0]].count; k++) a[k] = t_rand() % 2 ? 32767 : -32768;
            for (int k = 0; k < op->d[1]; k++) gb_values(G, op->t[1])[k] = k % 2 ? INT32_MAX : INT32_MIN;
        }
    }
}

/* n_m = 2 * 8 * 16 = 256, every population CuBa (syn buffers too), then LIF everywhere. */
static const l2_dims_t g_big = {.n_in = 16, .n_u = 8, .order = 16, .n_h = 64, .n_out = 10, .a_shift = 14,
                                .cuba = 7};

static void test_guard_l2mu(void) {
    long sat;
    size_t n = build_l2mu(&g_big, 2024u);
    CHECK(n > 0);
    CHECK_EQ(run_guarded(g_gblob, n, 100, &sat), 100 * P_COUNT);
    l2_dims_t lif = g_big;
    lif.cuba = 0;
    n = build_l2mu(&lif, 2025u);
    CHECK(n > 0);
    CHECK_EQ(run_guarded(g_gblob, n, 100, &sat), 100 * P_COUNT);
}

static void test_guard_extreme_params(void) {
    long sat;
    l2_dims_t d = g_big;
    d.a_shift = 1; /* with |A| = 2^15: the LMU update saturates every step */
    CHECK(build_l2mu(&d, 7u) > 0);
    extremize(8u);
    size_t n = gb_build(&g_l2, g_gblob, BLOB_CAP);
    CHECK_EQ(run_guarded(g_gblob, n, 60, &sat), 60 * P_COUNT);
    CHECK(sat > 0);
    d.a_shift = 30;
    d.cuba = 2;
    CHECK(build_l2mu(&d, 9u) > 0);
    extremize(10u);
    n = gb_build(&g_l2, g_gblob, BLOB_CAP);
    CHECK_EQ(run_guarded(g_gblob, n, 60, &sat), 60 * P_COUNT);
    CHECK(sat > 0);
}

void suite_guard(void) {
    RUN(test_guard_fixture);
    RUN(test_guard_l2mu);
    RUN(test_guard_extreme_params);
}
