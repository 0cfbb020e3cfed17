/* Graph runtime: a graph using every op against a step-by-step reference written from
 * docs/graph.md, reset and init rules, arena guards, and one malformed blob per parse check (docs/graph.md
 * "Parse order"), each with its own status. Blobs come from the builder in test_graph_util.c. */
#include <string.h>

#include "em_graph.h"
#include "em_test.h"

#define CAP 65536u
static gb_t g_gb;
static uint32_t g_blob32[CAP / 4 + 4];
static uint8_t *const g_blob = (uint8_t *)g_blob32;
static size_t g_size;
static uint32_t g_arena32[4096];

/* ---- the graph with every op (n_in 4, n_out 3) ---- */
enum { NI = 4, NC = 5, NU = 5, ORD = 3, NZ = 3, K = 3 };
static struct {
    int x, c1, ring, head, h, c2, spk, mem, syn, spk2, mem2, m, scr, q, qs, z, r, out;                /* buffers */
    int w1, b1, m1, s1, wc, bc, mc, sc, lut, w2, b2, m2, s2, am, as, beta, alpha, thr, beta2, thr2, la, lb, w3, b3,
        m3, s3, w4, b4, m4, s4, w5, b5, m5, s5, rm, rs, lbeta, unused; /* tensors */
} B;
enum { OP_FC1, OP_CONV, OP_LUT, OP_FC2, OP_ADD8, OP_CUBA, OP_LIF, OP_LMU, OP_ONOFF, OP_SAT, OP_FC16, OP_FCS,
       OP_FCS2, OP_RELU, OP_ADD16, OP_LEAKY, N_OPS };

static int rand_tensor(int dtype, uint32_t n, int32_t lo, int32_t hi) {
    int t = gb_tensor(&g_gb, dtype, NULL, n);
    for (uint32_t i = 0; i < n; i++) gb_values(&g_gb, t)[i] = t_range(lo, hi);
    return t;
}

/* FC/CONV tensors: w [d_out * row], bias, mult, shift around `shift` (factor ~ 2^(30.5 - shift)). */
static void fc_tensors(uint32_t d_out, uint32_t row, int shift, int *w, int *b, int *m, int *s) {
    *w = rand_tensor(GB_S8, d_out * row, -127, 127);
    *b = rand_tensor(GB_S32, d_out, -2000, 2000);
    *m = rand_tensor(GB_S32, d_out, 1 << 30, INT32_MAX);
    *s = rand_tensor(GB_S8, d_out, shift - 1, shift);
}

static void add_fc(int type, int flags, int in0, int out, uint32_t d_in, uint32_t d_out, int w, int b, int m, int s) {
    gb_op_t op = gb_op(type, flags);
    op.in0 = (uint16_t)in0;
    op.out = (uint16_t)out;
    op.d[0] = (uint16_t)d_in;
    op.d[1] = (uint16_t)d_out;
    op.t[0] = (uint16_t)w;
    op.t[1] = (uint16_t)b;
    op.t[2] = (uint16_t)m;
    op.t[3] = (uint16_t)s;
    gb_add(&g_gb, &op);
}

static void add_unary(int type, int flags, int in0, int out, uint32_t n, int t0, int t1) {
    gb_op_t op = gb_op(type, flags);
    op.in0 = (uint16_t)in0;
    op.out = (uint16_t)out;
    op.d[0] = (uint16_t)n;
    if (t0 >= 0) op.t[0] = (uint16_t)t0;
    if (t1 >= 0) op.t[1] = (uint16_t)t1;
    gb_add(&g_gb, &op);
}

static void build_all_ops(uint32_t seed) {
    t_seed(seed);
    gb_t *G = &g_gb;
    gb_init(G, NI, NZ);
    B.x = G->in_buffer;
    B.c1 = gb_buffer(G, GB_S32, NC, 0);
    B.ring = gb_buffer(G, GB_S8, (K - 1) * NI, 1);
    B.head = gb_buffer(G, GB_S32, 1, 1);
    B.h = gb_buffer(G, GB_S8, NC, 0);
    B.c2 = gb_buffer(G, GB_S32, NC, 0);
    B.spk = gb_buffer(G, GB_S8, NC, 0);
    B.mem = gb_buffer(G, GB_S16, NC, 1);
    B.syn = gb_buffer(G, GB_S16, NC, 1);
    B.spk2 = gb_buffer(G, GB_S8, NC, 0);
    B.mem2 = gb_buffer(G, GB_S16, NC, 1);
    B.m = gb_buffer(G, GB_S16, NU * ORD, 1);
    B.scr = gb_buffer(G, GB_S16, ORD, 0);
    B.q = gb_buffer(G, GB_S32, 2 * NU * ORD, 0);
    B.qs = gb_buffer(G, GB_S16, 2 * NU * ORD, 0);
    B.z = gb_buffer(G, GB_S32, NZ, 0);
    B.r = gb_buffer(G, GB_S16, NZ, 0);
    B.out = gb_buffer(G, GB_S16, NZ, 1); /* the LEAKY trace is the output */
    G->out_buffer = (uint16_t)B.out;

    fc_tensors(NC, NI, 37, &B.w1, &B.b1, &B.m1, &B.s1);
    fc_tensors(NC, K * NI, 38, &B.wc, &B.bc, &B.mc, &B.sc);
    B.lut = rand_tensor(GB_S8, 256, -128, 127);
    fc_tensors(NC, NC, 34, &B.w2, &B.b2, &B.m2, &B.s2);
    B.am = rand_tensor(GB_S32, 1, 1 << 30, INT32_MAX);
    B.as = gb_tensor(G, GB_S8, NULL, 1);
    gb_values(G, B.as)[0] = 28;
    B.beta = rand_tensor(GB_S16, NC, 26000, 32000);
    B.alpha = rand_tensor(GB_S16, NC, 20000, 30000);
    B.thr = rand_tensor(GB_S16, NC, 300, 1500);
    B.beta2 = rand_tensor(GB_S16, NC, 26000, 32000);
    B.thr2 = rand_tensor(GB_S16, NC, 50, 150);
    B.la = gb_tensor(G, GB_S16, NULL, ORD * ORD);
    for (int i = 0; i < ORD * ORD; i++)
        gb_values(G, B.la)[i] = (i % (ORD + 1) == 0 ? 3700 : 0) + t_range(-600, 600); /* Q12, ~0.9 I */
    B.lb = rand_tensor(GB_S32, ORD, -2000, 2000);
    fc_tensors(NZ, 2 * NU * ORD, 45, &B.w3, &B.b3, &B.m3, &B.s3);
    fc_tensors(NZ, NC, 28, &B.w4, &B.b4, &B.m4, &B.s4);
    fc_tensors(NZ, NC, 28, &B.w5, &B.b5, &B.m5, &B.s5);
    B.rm = rand_tensor(GB_S32, 1, 1 << 30, INT32_MAX);
    B.rs = gb_tensor(G, GB_S8, NULL, 1);
    gb_values(G, B.rs)[0] = 31;
    B.lbeta = rand_tensor(GB_S16, NZ, 20000, 28000);
    B.unused = rand_tensor(GB_S32, 2, -5, 5); /* named by no op: still validated */

    add_fc(GB_FC, 0, B.x, B.c1, NI, NC, B.w1, B.b1, B.m1, B.s1);
    gb_op_t conv = gb_op(GB_CONV1D, 1);
    conv.in0 = (uint16_t)B.x;
    conv.out = (uint16_t)B.c1;
    conv.state0 = (uint16_t)B.ring;
    conv.state1 = (uint16_t)B.head;
    conv.d[0] = NI;
    conv.d[1] = NC;
    conv.d[2] = K;
    conv.t[0] = (uint16_t)B.wc;
    conv.t[1] = (uint16_t)B.bc;
    conv.t[2] = (uint16_t)B.mc;
    conv.t[3] = (uint16_t)B.sc;
    gb_add(G, &conv);
    add_unary(GB_ACT, 2 << 1, B.c1, B.h, NC, B.lut, -1);
    add_fc(GB_FC, 0, B.h, B.c2, NC, NC, B.w2, B.b2, B.m2, B.s2);
    add_unary(GB_ADD, 1, B.h, B.c2, NC, B.am, B.as);
    gb_op_t cuba = gb_op(GB_LIF, 2);
    cuba.in0 = (uint16_t)B.c2;
    cuba.out = (uint16_t)B.spk;
    cuba.state0 = (uint16_t)B.mem;
    cuba.state1 = (uint16_t)B.syn;
    cuba.d[0] = NC;
    cuba.t[0] = (uint16_t)B.beta;
    cuba.t[1] = (uint16_t)B.alpha;
    cuba.t[2] = (uint16_t)B.thr;
    gb_add(G, &cuba);
    gb_op_t lif = gb_op(GB_LIF, 0);
    lif.in0 = (uint16_t)B.c1;
    lif.out = (uint16_t)B.spk2;
    lif.state0 = (uint16_t)B.mem2;
    lif.d[0] = NC;
    lif.t[0] = (uint16_t)B.beta2;
    lif.t[2] = (uint16_t)B.thr2;
    gb_add(G, &lif);
    gb_op_t lmu = gb_op(GB_LMU, 0);
    lmu.in0 = (uint16_t)B.h;
    lmu.state0 = (uint16_t)B.m;
    lmu.scratch = (uint16_t)B.scr;
    lmu.d[0] = NU;
    lmu.d[1] = ORD;
    lmu.d[2] = 12;
    lmu.d[3] = 4;
    lmu.t[0] = (uint16_t)B.la;
    lmu.t[1] = (uint16_t)B.lb;
    gb_add(G, &lmu);
    add_unary(GB_ONOFF, 0, B.m, B.q, NU * ORD, -1, -1);
    add_unary(GB_ACT, 0, B.q, B.qs, 2 * NU * ORD, -1, -1);
    add_fc(GB_FC, 0, B.qs, B.z, 2 * NU * ORD, NZ, B.w3, B.b3, B.m3, B.s3);
    add_fc(GB_FC, 1, B.spk, B.z, NC, NZ, B.w4, B.b4, B.m4, B.s4);
    add_fc(GB_FC, 1, B.spk2, B.z, NC, NZ, B.w5, B.b5, B.m5, B.s5);
    add_unary(GB_ACT, 1 << 1, B.z, B.r, NZ, -1, -1);
    add_unary(GB_ADD, 1, B.r, B.z, NZ, B.rm, B.rs);
    add_unary(GB_LEAKY, 0, B.z, B.out, NZ, B.lbeta, -1);
}

static void fresh(void) {
    build_all_ops(2024u);
    g_size = gb_build(&g_gb, g_blob, CAP);
}

/* ---- the reference: docs/graph.md's formulas over explicit state, the convolution from frame history ---- */
typedef struct {
    int8_t prev[K - 1][NI]; /* f(t-1), f(t-2) */
    int16_t mem[NC], syn[NC], mem2[NC], m[NU * ORD], trace[NZ];
} ref_state_t;

#define V(t) gb_values(&g_gb, (t))

static void ref_fc32(const int32_t *in, int d_in, int d_out, int w, int b, int m, int s, int acc, int32_t *out) {
    for (int o = 0; o < d_out; o++) {
        int64_t sum = V(b)[o];
        for (int i = 0; i < d_in; i++) sum += (int64_t)V(w)[o * d_in + i] * in[i];
        gref_store(&out[o], gref_requant(sum, V(m)[o], V(s)[o]), acc);
    }
}

static void ref_lif(const int32_t *cur, int16_t *mem, int16_t *syn, int beta, int alpha, int thr, int8_t *spk) {
    for (int i = 0; i < NC; i++) {
        int64_t reset = mem[i] > V(thr)[i] ? V(thr)[i] : 0, c = gref_sat(cur[i], 16);
        if (syn) {
            c = gref_sat(gref_rsr((int64_t)V(alpha)[i] * syn[i], 15) + c, 16);
            syn[i] = (int16_t)c;
        }
        mem[i] = (int16_t)gref_sat(gref_sat(gref_rsr((int64_t)V(beta)[i] * mem[i], 15) - reset, 16) + c, 16);
        spk[i] = mem[i] > V(thr)[i];
    }
}

static void ref_step(ref_state_t *st, const int8_t *x, int16_t *y) {
    int32_t x32[NI], c1[NC], h32[NC], c2[NC], c1b[NC], spk32[NC], spk2_32[NC], q[2 * NU * ORD], z[NZ];
    int8_t h[NC], spk[NC], spk2[NC];
    for (int i = 0; i < NI; i++) x32[i] = x[i];
    ref_fc32(x32, NI, NC, B.w1, B.b1, B.m1, B.s1, 0, c1);
    for (int o = 0; o < NC; o++) { /* conv, k = 3: tap 2 current, tap 1 f(t-1), tap 0 f(t-2) */
        int64_t sum = V(B.bc)[o];
        for (int c = 0; c < NI; c++)
            sum += (int64_t)V(B.wc)[(o * K + 2) * NI + c] * x[c] + (int64_t)V(B.wc)[(o * K + 1) * NI + c] * st->prev[0][c] +
                   (int64_t)V(B.wc)[(o * K + 0) * NI + c] * st->prev[1][c];
        gref_store(&c1[o], gref_requant(sum, V(B.mc)[o], V(B.sc)[o]), 1);
    }
    memcpy(st->prev[1], st->prev[0], NI);
    memcpy(st->prev[0], x, NI);
    for (int i = 0; i < NC; i++) h32[i] = h[i] = (int8_t)V(B.lut)[gref_sat(c1[i], 8) + 128];
    ref_fc32(h32, NC, NC, B.w2, B.b2, B.m2, B.s2, 0, c2);
    for (int i = 0; i < NC; i++) gref_store(&c2[i], gref_requant(h[i], V(B.am)[0], V(B.as)[0]), 1);
    ref_lif(c2, st->mem, st->syn, B.beta, B.alpha, B.thr, spk);
    memcpy(c1b, c1, sizeof c1);
    ref_lif(c1b, st->mem2, NULL, B.beta2, -1, B.thr2, spk2);
    int16_t old[NU * ORD];
    memcpy(old, st->m, sizeof old);
    for (int c = 0; c < NU; c++)
        for (int i = 0; i < ORD; i++) {
            int64_t acc = 0;
            for (int j = 0; j < ORD; j++) acc += (int64_t)V(B.la)[i * ORD + j] * old[c * ORD + j];
            st->m[c * ORD + i] = (int16_t)gref_sat(gref_sat(gref_rsr(acc, 12), 16) +
                                                   gref_sat(gref_rsr((int64_t)h[c] * V(B.lb)[i], 4), 16), 16);
        }
    for (int i = 0; i < NU * ORD; i++) {
        q[i] = st->m[i];
        q[NU * ORD + i] = -st->m[i];
    }
    for (int i = 0; i < 2 * NU * ORD; i++) q[i] = (int32_t)gref_sat(q[i], 16); /* ACT SAT to s16 */
    ref_fc32(q, 2 * NU * ORD, NZ, B.w3, B.b3, B.m3, B.s3, 0, z);
    for (int i = 0; i < NC; i++) {
        spk32[i] = spk[i];
        spk2_32[i] = spk2[i];
    }
    ref_fc32(spk32, NC, NZ, B.w4, B.b4, B.m4, B.s4, 1, z);
    ref_fc32(spk2_32, NC, NZ, B.w5, B.b5, B.m5, B.s5, 1, z);
    int32_t r[NZ];
    for (int i = 0; i < NZ; i++) r[i] = z[i] < 0 ? 0 : z[i] > 32767 ? 32767 : z[i]; /* RELU to s16 */
    for (int i = 0; i < NZ; i++) gref_store(&z[i], gref_requant(r[i], V(B.rm)[0], V(B.rs)[0]), 1);
    for (int i = 0; i < NZ; i++)
        st->trace[i] = (int16_t)gref_sat(gref_rsr((int64_t)V(B.lbeta)[i] * st->trace[i], 15) + z[i], 16);
    memcpy(y, st->trace, sizeof st->trace);
}

static void test_graph_parse_valid(void) {
    fresh();
    CHECK(g_size > 0);
    em_graph_t g;
    memset(&g, 0, sizeof g); /* a failed parse must not leave a stale graph to init */
    CHECK_EQ(em_graph_parse(&g, g_blob, g_size), EM_OK);
    CHECK_EQ(em_graph_parse(&g, g_blob, g_size + 100), EM_OK); /* bytes after total_size are ignored */
    CHECK_EQ(g.n_in, NI);
    CHECK_EQ(g.n_out, NZ);
    CHECK_EQ(g.n_ops, N_OPS);
    CHECK_EQ(g.n_buffers, g_gb.n_buffers);
    CHECK_EQ(g.n_tensors, g_gb.n_tensors);
    CHECK_EQ(g.in_buffer, B.x);
    CHECK_EQ(g.out_buffer, B.out);
    CHECK_EQ(g.total_size, g_size);
    CHECK(g.blob == g_blob);
    CHECK_EQ(em_graph_arena_size(&g), tb_r32(g_blob + 32));
    CHECK(em_graph_arena_size(&g) > 0 && em_graph_arena_size(&g) <= sizeof g_arena32);
    CHECK_EQ(em_graph_arena_size(NULL), 0);
    em_graph_t z;
    memset(&z, 0, sizeof z);
    CHECK_EQ(em_graph_arena_size(&z), 0);
    CHECK_EQ(em_graph_parse(NULL, g_blob, g_size), EM_ERR_NULL);
    CHECK_EQ(em_graph_parse(&g, NULL, g_size), EM_ERR_NULL);
}

static void test_graph_matches_reference(void) {
    fresh();
    em_graph_t g;
    memset(&g, 0, sizeof g); /* a failed parse must not leave a stale graph to init */
    em_graph_ctx_t ctx;
    CHECK_EQ(em_graph_parse(&g, g_blob, g_size), EM_OK);
    memset(g_arena32, 0xA5, sizeof g_arena32); /* init must zero the state whatever the arena held */
    CHECK_EQ(em_graph_init(&ctx, &g, g_arena32, em_graph_arena_size(&g)), EM_OK);
    ref_state_t st;
    memset(&st, 0, sizeof st);
    int8_t x[NI];
    int16_t y[NZ], ry[NZ];
    long nonzero = 0, mismatches = 0;
    for (int t = 0; t < 400; t++) {
        if (t == 200) { /* reset mid-stream: both start over */
            CHECK_EQ(em_graph_reset(&ctx), EM_OK);
            memset(&st, 0, sizeof st);
        }
        for (int i = 0; i < NI; i++) x[i] = (int8_t)(t % 50 < 5 ? (t % 2 ? 127 : -128) : t_range(-128, 127));
        CHECK_EQ(em_graph_step(&ctx, x, y), EM_OK);
        ref_step(&st, x, ry);
        if (memcmp(y, ry, sizeof y) != 0 && ++mismatches <= 3)
            printf("  step %d: C %d %d %d vs ref %d %d %d\n", t, y[0], y[1], y[2], ry[0], ry[1], ry[2]);
        for (int i = 0; i < NZ; i++) nonzero += y[i] != 0;
    }
    CHECK_EQ(mismatches, 0);
    CHECK(nonzero > 600); /* the output moves: the test is not comparing zeros */
}

static void test_graph_reset_and_init(void) {
    fresh();
    em_graph_t g;
    memset(&g, 0, sizeof g); /* a failed parse must not leave a stale graph to init */
    em_graph_ctx_t ctx;
    CHECK_EQ(em_graph_parse(&g, g_blob, g_size), EM_OK);
    const size_t need = em_graph_arena_size(&g);
    int8_t x[60][NI];
    int16_t y0[60][NZ], y1[NZ];
    for (int t = 0; t < 60; t++)
        for (int i = 0; i < NI; i++) x[t][i] = (int8_t)t_range(-128, 127);
    CHECK_EQ(em_graph_init(&ctx, &g, g_arena32, need), EM_OK);
    for (int t = 0; t < 60; t++) CHECK_EQ(em_graph_step(&ctx, x[t], y0[t]), EM_OK);
    /* reset == fresh init: the same outputs again, twice */
    for (int rep = 0; rep < 2; rep++) {
        CHECK_EQ(em_graph_reset(&ctx), EM_OK);
        for (int t = 0; t < 60; t++) {
            CHECK_EQ(em_graph_step(&ctx, x[t], y1), EM_OK);
            CHECK(memcmp(y1, y0[t], sizeof y1) == 0);
        }
    }
    /* a state buffer differs after steps, and reset zeroes it (the LMU memory, the conv ring and head) */
    const uint8_t *a = (const uint8_t *)g_arena32;
    uint32_t m_off = tb_r32(gb_buffer_entry(g_blob, B.m) + 8), head_off = tb_r32(gb_buffer_entry(g_blob, B.head) + 8);
    int any = 0;
    for (int i = 0; i < 2 * NU * ORD; i++) any |= a[m_off + (uint32_t)i];
    CHECK(any);
    CHECK_EQ(em_graph_reset(&ctx), EM_OK);
    for (int i = 0; i < 2 * NU * ORD; i++) CHECK_EQ(a[m_off + (uint32_t)i], 0);
    CHECK_EQ(tb_r32(a + head_off), 0);

    /* init rules */
    int16_t y[NZ];
    CHECK_EQ(em_graph_init(&ctx, &g, g_arena32, need - 1), EM_ERR_ARENA);
    CHECK_EQ(em_graph_step(&ctx, x[0], y), EM_ERR_STATE); /* a failed init leaves ctx unusable */
    CHECK_EQ(em_graph_reset(&ctx), EM_ERR_STATE);
    CHECK_EQ(em_graph_init(&ctx, &g, (uint8_t *)g_arena32 + 2, need + 8), EM_ERR_ARENA);
    CHECK_EQ(em_graph_init(&ctx, &g, (uint8_t *)g_arena32 + 1, need + 8), EM_ERR_ARENA);
    CHECK_EQ(em_graph_init(NULL, &g, g_arena32, need), EM_ERR_NULL);
    CHECK_EQ(em_graph_init(&ctx, NULL, g_arena32, need), EM_ERR_NULL);
    CHECK_EQ(em_graph_init(&ctx, &g, NULL, need), EM_ERR_NULL);
    em_graph_t unparsed;
    memset(&unparsed, 0, sizeof unparsed);
    CHECK_EQ(em_graph_init(&ctx, &unparsed, g_arena32, need), EM_ERR_STATE);
    em_graph_ctx_t zero;
    memset(&zero, 0, sizeof zero);
    CHECK_EQ(em_graph_step(&zero, x[0], y), EM_ERR_STATE);
    CHECK_EQ(em_graph_reset(&zero), EM_ERR_STATE);
    CHECK_EQ(em_graph_step(NULL, x[0], y), EM_ERR_NULL);
    CHECK_EQ(em_graph_reset(NULL), EM_ERR_NULL);
    CHECK_EQ(em_graph_init(&ctx, &g, g_arena32, need), EM_OK);
    CHECK_EQ(em_graph_step(&ctx, NULL, y), EM_ERR_NULL);
    CHECK_EQ(em_graph_step(&ctx, x[0], NULL), EM_ERR_NULL);
}

/* Arena of exactly arena_size between canaries; full-scale and random inputs; a corrupted conv head mid-run. */
static void test_graph_guard(void) {
    fresh();
    em_graph_t g;
    memset(&g, 0, sizeof g); /* a failed parse must not leave a stale graph to init */
    em_graph_ctx_t ctx;
    CHECK_EQ(em_graph_parse(&g, g_blob, g_size), EM_OK);
    const size_t need = em_graph_arena_size(&g), front = 64, back = 256;
    CHECK(front + need + back <= sizeof g_arena32);
    uint8_t *buf = (uint8_t *)g_arena32;
    for (size_t i = 0; i < sizeof g_arena32; i++) buf[i] = (uint8_t)(0x5Cu ^ i);
    uint8_t *arena = buf + front;
    CHECK_EQ(em_graph_init(&ctx, &g, arena, need), EM_OK);
    const uint32_t head_off = tb_r32(gb_buffer_entry(g_blob, B.head) + 8);
    int8_t x[NI];
    int16_t y[NZ + 4];
    y[NZ] = 0x1234;
    for (int t = 0; t < 600; t++) {
        for (int i = 0; i < NI; i++)
            x[i] = (int8_t)(t < 200 ? 127 : t < 400 ? -128 : (t + i) % 2 ? 127 : -128);
        if (t % 97 == 13) { /* garbage in the head: the step must index the ring by its remainder only */
            const int32_t bad[3] = {-1, INT32_MAX, INT32_MIN};
            int32_t v = bad[(t / 97) % 3];
            memcpy(arena + head_off, &v, 4);
        }
        CHECK_EQ(em_graph_step(&ctx, x, y), EM_OK);
        int32_t h;
        memcpy(&h, arena + head_off, 4);
        CHECK(h >= 0 && h < K - 1);
        CHECK_EQ(y[NZ], 0x1234);
    }
    long damaged = 0;
    for (size_t i = 0; i < front; i++) damaged += buf[i] != (uint8_t)(0x5Cu ^ i);
    for (size_t i = front + need; i < front + need + back; i++) damaged += buf[i] != (uint8_t)(0x5Cu ^ i);
    CHECK_EQ(damaged, 0);
}

/* ---- parse rejections: one defect per case, each with its status; a failed parse leaves g untouched ---- */
static em_status_t parse_edited(size_t size) {
    em_graph_t g, before;
    memset(&g, 0x3C, sizeof g);
    before = g;
    em_status_t st = em_graph_parse(&g, g_blob, size);
    if (st != EM_OK) CHECK(memcmp(&g, &before, sizeof g) == 0);
    return st;
}
static em_status_t reparse(void) {
    tb_fix_crc(g_blob);
    return parse_edited(g_size);
}
static void set_op(int op, int field, uint32_t v) { tb_w16(gb_op_record(g_blob, op) + 2 * field, v); }
enum { F_TYPE, F_FLAGS, F_IN0, F_IN1, F_OUT, F_STATE0, F_STATE1, F_SCRATCH, F_D0, F_D1, F_D2, F_D3, F_T0, F_T1,
       F_T2, F_T3 };

static void test_reject_size_and_header(void) {
    fresh();
    CHECK_EQ(parse_edited(0), EM_ERR_TRUNCATED);
    CHECK_EQ(parse_edited(63), EM_ERR_TRUNCATED);
    CHECK_EQ(parse_edited(g_size - 1), EM_ERR_TRUNCATED); /* total_size > blob size */
    tb_w32(g_blob + 8, 64 + 12u * g_gb.n_buffers + 32u * N_OPS + 12u * g_gb.n_tensors - 1);
    CHECK_EQ(parse_edited(g_size), EM_ERR_TRUNCATED); /* total_size cannot hold the tables */
    fresh();
    tb_w16(g_blob + 24, 2000); /* n_ops whose table would run past total_size */
    CHECK_EQ(parse_edited(g_size), EM_ERR_TRUNCATED);
    fresh();
    g_blob[1] = 'X';
    CHECK_EQ(parse_edited(g_size), EM_ERR_MAGIC);
    fresh();
    tb_w16(g_blob + 4, 3);
    CHECK_EQ(parse_edited(g_size), EM_ERR_VERSION);
    fresh();
    tb_w16(g_blob + 6, 32); /* header_size */
    CHECK_EQ(parse_edited(g_size), EM_ERR_VERSION);
    fresh();
    g_blob[g_size - 1] ^= 1; /* payload changed, CRC not resealed */
    CHECK_EQ(parse_edited(g_size), EM_ERR_CRC);
    fresh();
    g_blob[0] = 'X'; /* two defects: the earlier check decides */
    g_blob[g_size - 1] ^= 1;
    CHECK_EQ(parse_edited(g_size), EM_ERR_MAGIC);
    fresh();
    tb_w16(g_blob + 16, 1);
    CHECK_EQ(parse_edited(g_size), EM_ERR_KIND); /* the header is not CRC-covered: no reseal needed */
    const struct {
        int at;
        uint32_t v;
        em_status_t want;
    } hdr[] = {
        {18, 0, EM_ERR_DIMS},     {18, 1025, EM_ERR_DIMS}, {20, 0, EM_ERR_DIMS},   {20, 1025, EM_ERR_DIMS},
        {28, 200, EM_ERR_BUFFER}, /* in_buffer >= n_buffers */
        {30, 0xFFFF, EM_ERR_BUFFER},
    };
    for (size_t k = 0; k < sizeof hdr / sizeof hdr[0]; k++) {
        fresh();
        tb_w16(g_blob + hdr[k].at, hdr[k].v);
        CHECK_EQ(parse_edited(g_size), hdr[k].want);
    }
    fresh();
    g_blob[40] = 1; /* reserved */
    CHECK_EQ(parse_edited(g_size), EM_ERR_VERSION);
    fresh();
    g_blob[63] = 0x80;
    CHECK_EQ(parse_edited(g_size), EM_ERR_VERSION);
    fresh();
    tb_w16(g_blob + 18, 0); /* DIMS comes before the in_buffer check */
    tb_w16(g_blob + 28, 200);
    CHECK_EQ(parse_edited(g_size), EM_ERR_DIMS);
    /* table counts above their limits: total_size grown (zero padding) so the size check passes first */
    const struct {
        int at;
        uint32_t v;
    } counts[] = {{22, 257}, {24, 257}, {26, 1025}};
    for (size_t k = 0; k < 3; k++) {
        fresh();
        tb_w16(g_blob + counts[k].at, counts[k].v);
        tb_w32(g_blob + 8, 60000);
        tb_fix_crc(g_blob);
        CHECK_EQ(parse_edited(60000), EM_ERR_DIMS);
    }
}

static void test_reject_buffers(void) {
    const struct {
        int buf, at, width;
        uint32_t v;
        const char *what;
    } e[] = {
        {3, 0, 1, 0, "dtype 0"},          {3, 0, 1, 4, "dtype 4"},      {3, 1, 1, 2, "unknown flag"},
        {3, 2, 2, 1, "pad"},              {3, 4, 4, 0, "count 0"},      {3, 8, 4, 2, "offset % 4"},
        {3, 4, 4, 0x40000000u, "extent past arena_size"},               {3, 8, 4, 0xFFFFFFFCu, "offset past arena"},
    };
    for (size_t k = 0; k < sizeof e / sizeof e[0]; k++) {
        fresh();
        uint8_t *p = gb_buffer_entry(g_blob, e[k].buf) + e[k].at;
        if (e[k].width == 1) *p = (uint8_t)e[k].v;
        else if (e[k].width == 2) tb_w16(p, e[k].v);
        else tb_w32(p, e[k].v);
        em_status_t got = reparse();
        if (got != EM_ERR_BUFFER) printf("  buffer case '%s'\n", e[k].what);
        CHECK_EQ(got, EM_ERR_BUFFER);
    }
    fresh();
    tb_w32(g_blob + 32, tb_r32(g_blob + 32) - 4); /* arena_size one word short of the last buffer */
    CHECK_EQ(parse_edited(g_size), EM_ERR_BUFFER);
    fresh();
    tb_w32(gb_buffer_entry(g_blob, B.c2) + 8, tb_r32(gb_buffer_entry(g_blob, B.c1) + 8) + 4); /* overlap */
    CHECK_EQ(reparse(), EM_ERR_BUFFER);
    fresh();
    tb_w16(g_blob + 28, (uint32_t)B.h); /* in_buffer s8 but [5], not [n_in] */
    CHECK_EQ(parse_edited(g_size), EM_ERR_BUFFER);
    fresh();
    tb_w16(g_blob + 30, (uint32_t)B.z); /* out_buffer s32 */
    CHECK_EQ(parse_edited(g_size), EM_ERR_BUFFER);
    fresh();
    gb_buffer_entry(g_blob, B.x)[1] = 1; /* in_buffer is state */
    CHECK_EQ(reparse(), EM_ERR_BUFFER);
}

static void test_reject_op_fields(void) {
    fresh(); /* B.* below are the all-ops graph's buffer indices */
    const struct {
        int op, field;
        uint32_t v;
        em_status_t want;
    } e[] = {
        {OP_FC1, F_TYPE, 0, EM_ERR_OP},
        {OP_FC1, F_TYPE, 10, EM_ERR_OP},          /* past the last type, 9 SPIKE */
        {OP_FC1, F_FLAGS, 2, EM_ERR_OP},           /* CuBa bit on an FC */
        {OP_LUT, F_FLAGS, 3 << 1, EM_ERR_OP},      /* ACT func 3 */
        {OP_LUT, F_FLAGS, (2 << 1) | 1, EM_ERR_OP},/* ACC on an ACT */
        {OP_CUBA, F_FLAGS, 3, EM_ERR_OP},          /* ACC on a LIF */
        {OP_LEAKY, F_FLAGS, 1, EM_ERR_OP},
        {OP_LMU, F_FLAGS, 1, EM_ERR_OP},
        {OP_FC1, F_IN1, 1, EM_ERR_OP},             /* in1 reserved */
        {OP_FC1, F_SCRATCH, 2, EM_ERR_OP},         /* unused field set */
        {OP_FC1, F_STATE0, 2, EM_ERR_OP},
        {OP_FC1, F_OUT, 0xFFFF, EM_ERR_OP},        /* used field NONE */
        {OP_FC1, F_IN0, 200, EM_ERR_OP},           /* buffer index past the table */
        {OP_LMU, F_OUT, 3, EM_ERR_OP},             /* LMU has no out */
        {OP_LMU, F_SCRATCH, 0xFFFF, EM_ERR_OP},
        {OP_LIF, F_STATE1, 20, EM_ERR_OP},         /* plain LIF has no syn */
        {OP_CONV, F_D2, 1, EM_ERR_OP},             /* k = 1: ring and head must be NONE */
        {OP_CONV, F_STATE1, 0xFFFF, EM_ERR_OP},
        {OP_ONOFF, F_T0, 0, EM_ERR_OP},            /* unused tensor field set */
        {OP_SAT, F_T0, 0, EM_ERR_OP},              /* ACT SAT has no table */
        {OP_LIF, F_T1, 0, EM_ERR_OP},
        {OP_FC1, F_T3, 0xFFFF, EM_ERR_OP},         /* used tensor field NONE */
        {OP_FC1, F_T0, 1000, EM_ERR_OP},           /* tensor index past the table */
        {OP_FC1, F_D2, 1, EM_ERR_OP},              /* unused d */
        {OP_LEAKY, F_D1, 3, EM_ERR_OP},
        {OP_FC1, F_D0, 0, EM_ERR_DIMS},
        {OP_FC1, F_D1, 1025, EM_ERR_DIMS},
        {OP_CONV, F_D2, 17, EM_ERR_DIMS},
        {OP_CONV, F_D2, 0, EM_ERR_DIMS},
        {OP_ONOFF, F_D0, 0, EM_ERR_DIMS},
        {OP_LMU, F_D2, 0, EM_ERR_PARAM},           /* a_shift */
        {OP_LMU, F_D2, 31, EM_ERR_PARAM},
        {OP_LMU, F_D3, 31, EM_ERR_PARAM},          /* b_shift */
        {OP_LMU, F_D1, 1025, EM_ERR_DIMS},
        {OP_FC1, F_D1, 4, EM_ERR_BUFFER},          /* out c1 has 5 elements, not 4 */
        {OP_FC1, F_D0, 5, EM_ERR_BUFFER},          /* in x has 4 */
        {OP_FC1, F_OUT, B.h, EM_ERR_BUFFER},       /* out = h: s8 */
        {OP_FC2, F_IN0, B.c1, EM_ERR_BUFFER},      /* in = c1: s32 */
        {OP_LEAKY, F_OUT, B.r, EM_ERR_BUFFER},     /* out = r: s16 [3] but not state */
        {OP_LMU, F_SCRATCH, B.out, EM_ERR_BUFFER}, /* scratch = the trace: s16 [3] but state */
        {OP_LMU, F_STATE0, B.q, EM_ERR_BUFFER},    /* m = q: s32 */
        {OP_CONV, F_STATE0, B.spk, EM_ERR_BUFFER}, /* ring = spk: s8, but [5] and not state */
        {OP_CONV, F_D2, 2, EM_ERR_BUFFER},         /* ring has 8 = 2 * 4 elements, k = 2 wants 4 */
        {OP_FC1, F_T0, 4, EM_ERR_TENSOR},          /* w = conv's w: s8 [60], not [20] */
        {OP_FC1, F_T1, 3, EM_ERR_TENSOR},          /* bias = shift: s8 */
        {OP_FC1, F_T1, 2, EM_OK},                  /* bias = mult: same dtype and count, so accepted */
        {OP_FC1, F_IN0, B.h, EM_ERR_BUFFER},       /* in = h: s8 [5], d_in 4 */
        {OP_FC2, F_IN0, B.spk, EM_ERR_ORDER},      /* spk: s8 [5], but op 5 writes it, after op 3 reads it */
        {OP_FCS, F_IN0, B.h, EM_OK},               /* h: s8 [5] written by op 2, before op 11: fine */
        {OP_FC16, F_IN0, B.r, EM_ERR_BUFFER},      /* s16 [3], d_in 30 */
        {OP_FC1, F_T2, 3, EM_ERR_TENSOR},          /* mult = shift: s8 */
        {OP_LUT, F_T0, 0, EM_ERR_TENSOR},
        {OP_ADD8, F_T0, 1, EM_ERR_TENSOR},
    };
    for (size_t k = 0; k < sizeof e / sizeof e[0]; k++) {
        fresh();
        set_op(e[k].op, e[k].field, e[k].v);
        em_status_t got = reparse();
        if (got != e[k].want) printf("  op case %u: op %d field %d = %u\n", (unsigned)k, e[k].op, e[k].field, (unsigned)e[k].v);
        CHECK_EQ(got, e[k].want);
    }
    /* LMU n_u * order above 4096 with each dim in range */
    fresh();
    set_op(OP_LMU, F_D0, 64);
    set_op(OP_LMU, F_D1, 65);
    CHECK_EQ(reparse(), EM_ERR_DIMS);
    /* the first failing step decides: a bad type beats everything after it, fields beat dims */
    fresh();
    set_op(OP_FC1, F_D0, 0);
    set_op(OP_FC1, F_IN1, 3);
    CHECK_EQ(reparse(), EM_ERR_OP);
    fresh();
    set_op(OP_FC1, F_D0, 0);
    set_op(OP_FC1, F_T0, 4);
    CHECK_EQ(reparse(), EM_ERR_DIMS);
}

/* Targeted buffer/tensor/order rules on tiny graphs built with the defect (the builder does not validate). */
static void tiny(int out_state) {
    gb_init(&g_gb, 2, 2);
    int z = gb_buffer(&g_gb, GB_S32, 2, 0), y = gb_buffer(&g_gb, GB_S16, 2, out_state);
    g_gb.out_buffer = (uint16_t)y;
    (void)z;
}
static int tiny_fc(int in0, int out, int flags) {
    int w = gb_tensor(&g_gb, GB_S8, NULL, 4), b = gb_tensor(&g_gb, GB_S32, NULL, 2);
    int m = gb_tensor(&g_gb, GB_S32, NULL, 2), s = gb_tensor(&g_gb, GB_S8, NULL, 2);
    gb_values(&g_gb, m)[0] = gb_values(&g_gb, m)[1] = 1 << 30;
    gb_values(&g_gb, s)[0] = gb_values(&g_gb, s)[1] = 1;
    add_fc(GB_FC, flags, in0, out, 2, 2, w, b, m, s);
    return w;
}
static em_status_t tiny_parse(void) {
    g_size = gb_build(&g_gb, g_blob, CAP);
    return parse_edited(g_size);
}

static void test_reject_order_and_state(void) {
    /* valid: x -> FC -> z -> ACT SAT -> y */
    tiny(0);
    tiny_fc(0, 1, 0);
    add_unary(GB_ACT, 0, 1, 2, 2, -1, -1);
    CHECK_EQ(tiny_parse(), EM_OK);
    /* ACT reads z before any op writes it */
    tiny(0);
    add_unary(GB_ACT, 0, 1, 2, 2, -1, -1);
    tiny_fc(0, 1, 0);
    CHECK_EQ(tiny_parse(), EM_ERR_ORDER);
    /* ACC into z that nothing wrote this step */
    tiny(0);
    tiny_fc(0, 1, 1);
    add_unary(GB_ACT, 0, 1, 2, 2, -1, -1);
    CHECK_EQ(tiny_parse(), EM_ERR_ORDER);
    /* ... fine once z is a state buffer (an accumulator across steps) */
    tiny(0);
    g_gb.buf[1].state = 1;
    tiny_fc(0, 1, 1);
    add_unary(GB_ACT, 0, 1, 2, 2, -1, -1);
    CHECK_EQ(tiny_parse(), EM_OK);
    /* the output buffer is never written */
    tiny(0);
    tiny_fc(0, 1, 0);
    CHECK_EQ(tiny_parse(), EM_ERR_ORDER);
    /* ... unless it is state (then it reads zeros: allowed) */
    tiny(1);
    tiny_fc(0, 1, 0);
    CHECK_EQ(tiny_parse(), EM_OK);
    /* no ops at all, state output */
    tiny(1);
    CHECK_EQ(tiny_parse(), EM_OK);
    /* ACT LUT writing s16 */
    tiny(0);
    tiny_fc(0, 1, 0);
    int lut = gb_tensor(&g_gb, GB_S8, NULL, 256);
    add_unary(GB_ACT, 2 << 1, 1, 2, 2, lut, -1);
    CHECK_EQ(tiny_parse(), EM_ERR_BUFFER);
    /* LIF membrane not a state buffer */
    gb_init(&g_gb, 2, 2);
    int z = gb_buffer(&g_gb, GB_S32, 2, 0), spk = gb_buffer(&g_gb, GB_S8, 2, 0);
    int mem = gb_buffer(&g_gb, GB_S16, 2, 0), y = gb_buffer(&g_gb, GB_S16, 2, 1);
    g_gb.out_buffer = (uint16_t)y;
    tiny_fc(0, z, 0);
    gb_op_t lif = gb_op(GB_LIF, 0);
    lif.in0 = (uint16_t)z;
    lif.out = (uint16_t)spk;
    lif.state0 = (uint16_t)mem;
    lif.d[0] = 2;
    lif.t[0] = (uint16_t)gb_tensor(&g_gb, GB_S16, NULL, 2);
    lif.t[2] = (uint16_t)gb_tensor(&g_gb, GB_S16, NULL, 2);
    gb_add(&g_gb, &lif);
    CHECK_EQ(tiny_parse(), EM_ERR_BUFFER);
    g_gb.buf[mem].state = 1;
    CHECK_EQ(tiny_parse(), EM_OK);
    /* one op naming a buffer twice: LIF CuBa with mem == syn */
    lif.flags = 2;
    lif.state1 = (uint16_t)mem;
    lif.t[1] = lif.t[0];
    g_gb.op[1] = lif;
    CHECK_EQ(tiny_parse(), EM_ERR_OP);
    /* LMU scratch counts as written: a later op may read it (it holds m_old[n_u - 1]) */
    gb_init(&g_gb, 2, 4);
    int m = gb_buffer(&g_gb, GB_S16, 4, 1), scr = gb_buffer(&g_gb, GB_S16, 2, 0), q = gb_buffer(&g_gb, GB_S32, 4, 0);
    y = gb_buffer(&g_gb, GB_S16, 4, 0);
    g_gb.out_buffer = (uint16_t)y;
    gb_op_t lmu = gb_op(GB_LMU, 0);
    lmu.in0 = 0;
    lmu.state0 = (uint16_t)m;
    lmu.scratch = (uint16_t)scr;
    lmu.d[0] = 2;
    lmu.d[1] = 2;
    lmu.d[2] = 1;
    lmu.d[3] = 0;
    lmu.t[0] = (uint16_t)gb_tensor(&g_gb, GB_S16, NULL, 4);
    lmu.t[1] = (uint16_t)gb_tensor(&g_gb, GB_S32, NULL, 2);
    gb_values(&g_gb, lmu.t[0])[0] = gb_values(&g_gb, lmu.t[0])[3] = 2; /* A = I in Q1 */
    gb_values(&g_gb, lmu.t[1])[0] = 10;
    gb_values(&g_gb, lmu.t[1])[1] = -10;
    gb_add(&g_gb, &lmu);
    add_unary(GB_ONOFF, 0, scr, q, 2, -1, -1); /* q = [scr, -scr] */
    add_unary(GB_ACT, 0, q, y, 4, -1, -1);    /* y = q */
    CHECK_EQ(tiny_parse(), EM_OK);
    em_graph_t g;
    memset(&g, 0, sizeof g); /* a failed parse must not leave a stale graph to init */
    em_graph_ctx_t ctx;
    CHECK_EQ(em_graph_parse(&g, g_blob, g_size), EM_OK);
    CHECK_EQ(em_graph_init(&ctx, &g, g_arena32, em_graph_arena_size(&g)), EM_OK);
    int8_t x[2] = {3, 5};
    int16_t out[4];
    CHECK_EQ(em_graph_step(&ctx, x, out), EM_OK); /* m = [30, -30, 50, -50]; scratch = old row 1 = 0 */
    CHECK_EQ(out[0], 0);
    CHECK_EQ(out[1], 0);
    CHECK_EQ(em_graph_step(&ctx, x, out), EM_OK); /* scratch = m_old[1] = [50, -50] */
    CHECK_EQ(out[0], 50);
    CHECK_EQ(out[1], -50);
    CHECK_EQ(out[2], -50);
    CHECK_EQ(out[3], 50);
}

static void test_reject_tensor_table(void) {
    const int t = B.unused; /* named by no op: only steps 6-7 see it */
    fresh();
    tb_w16(gb_tensor_entry(g_blob, t), (uint32_t)t + 1); /* id != index */
    CHECK_EQ(reparse(), EM_ERR_TENSOR);
    fresh();
    gb_tensor_entry(g_blob, t)[2] = 0; /* dtype */
    CHECK_EQ(reparse(), EM_ERR_TENSOR);
    fresh();
    gb_tensor_entry(g_blob, t)[3] = 1; /* pad */
    CHECK_EQ(reparse(), EM_ERR_TENSOR);
    fresh();
    tb_w32(gb_tensor_entry(g_blob, t) + 4, 64); /* inside the tables */
    CHECK_EQ(reparse(), EM_ERR_BOUNDS);
    fresh();
    tb_w32(gb_tensor_entry(g_blob, t) + 4, (uint32_t)g_size); /* at total_size */
    CHECK_EQ(reparse(), EM_ERR_BOUNDS);
    fresh();
    tb_w32(gb_tensor_entry(g_blob, t) + 4, (uint32_t)g_size - 4); /* 8 bytes from 4 before the end */
    CHECK_EQ(reparse(), EM_ERR_BOUNDS);
    fresh();
    tb_w32(gb_tensor_entry(g_blob, t) + 8, 0x40000001u); /* count * 4 wraps in 32 bits */
    CHECK_EQ(reparse(), EM_ERR_BOUNDS);
    fresh();
    tb_w32(gb_tensor_entry(g_blob, B.b1) + 4, tb_r32(gb_tensor_entry(g_blob, B.b1) + 4) + 2); /* s32 at +2 */
    CHECK_EQ(reparse(), EM_ERR_ALIGN);
    fresh();
    tb_w32(gb_tensor_entry(g_blob, B.beta) + 4, tb_r32(gb_tensor_entry(g_blob, B.beta) + 4) + 1); /* s16 at +1 */
    CHECK_EQ(reparse(), EM_ERR_ALIGN);
    fresh();
    tb_w32(gb_tensor_entry(g_blob, B.lut) + 4, tb_r32(gb_tensor_entry(g_blob, B.lut) + 4) + 1); /* s8: fine */
    CHECK_EQ(reparse(), EM_OK);
    /* the same blob at a misaligned address: its s16/s32 tensors are misaligned in memory */
    fresh();
    static uint32_t shifted32[CAP / 4 + 4];
    uint8_t *shifted = (uint8_t *)shifted32 + 2;
    memcpy(shifted, g_blob, g_size);
    em_graph_t g;
    memset(&g, 0, sizeof g); /* a failed parse must not leave a stale graph to init */
    CHECK_EQ(em_graph_parse(&g, shifted, g_size), EM_ERR_ALIGN);
}

static void test_reject_params(void) {
    const struct {
        int tensor, index;
        int32_t v;
        em_status_t want;
    } e[] = {
        {0, 0, (1 << 30) - 1, EM_ERR_PARAM}, /* FC mult below 2^30 (tensor picked below) */
        {1, 0, 0, EM_ERR_PARAM},             /* FC shift 0 */
        {1, 0, 63, EM_ERR_PARAM},
        {2, 0, 0, EM_ERR_PARAM},             /* CONV1D shift */
        {3, 0, -1, EM_ERR_PARAM},            /* ADD mult (negative) */
        {4, 0, 0, EM_ERR_PARAM},             /* ADD shift */
        {5, 2, -1, EM_ERR_PARAM},            /* LIF beta */
        {6, 4, -1, EM_ERR_PARAM},            /* CuBa alpha */
        {7, 1, -5, EM_ERR_PARAM},            /* LEAKY beta */
        {8, 0, -32768, EM_OK},               /* thresholds may be anything */
        {9, 0, -32768, EM_OK},               /* so may the LMU A */
    };
    for (size_t k = 0; k < sizeof e / sizeof e[0]; k++) {
        fresh();
        const int ids[10] = {B.m1, B.s1, B.sc, B.am, B.rs, B.beta2, B.alpha, B.lbeta, B.thr, B.la};
        const int t = ids[e[k].tensor];
        uint8_t *p = gb_tensor_data(g_blob, t);
        const int dt = gb_tensor_entry(g_blob, t)[2];
        if (dt == GB_S8) p[e[k].index] = (uint8_t)e[k].v;
        else if (dt == GB_S16) tb_w16(p + 2 * e[k].index, (uint32_t)e[k].v);
        else tb_w32(p + 4 * e[k].index, (uint32_t)e[k].v);
        CHECK_EQ(reparse(), e[k].want);
    }
}

void suite_graph(void) {
    RUN(test_graph_parse_valid);
    RUN(test_graph_matches_reference);
    RUN(test_graph_reset_and_init);
    RUN(test_graph_guard);
    RUN(test_reject_size_and_header);
    RUN(test_reject_buffers);
    RUN(test_reject_op_fields);
    RUN(test_reject_order_and_state);
    RUN(test_reject_tensor_table);
    RUN(test_reject_params);
}
