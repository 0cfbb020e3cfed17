/* edgemem runtime: model check, arena layout, and one L2MU step in the order of docs/architecture.md. */
#include "edgemem.h"
#include "em_kernels.h"
#include "em_intops_inline.h"

#define EM_CTX_READY 0x454D5244u /* "EMRD": a zeroed or stale ctx is unlikely to hold it by chance */

static size_t round4(size_t n) { return (n + 3u) & ~(size_t)3u; }
static int dim_ok(uint32_t d) { return d >= 1 && d <= EM_MAX_DIM; }

em_status_t em_model_check(const em_model_t *model) {
    if (!model) return EM_ERR_NULL;
    const em_model_t *m = model;
    if (m->kind != EM_KIND_L2MU) return EM_ERR_KIND;
    if (!dim_ok(m->n_in) || !dim_ok(m->n_u) || !dim_ok(m->order) || !dim_ok(m->n_h) || !dim_ok(m->n_out))
        return EM_ERR_DIMS;
    if ((uint32_t)m->n_m != 2u * m->n_u * m->order || m->n_m > EM_MAX_DIM) return EM_ERR_DIMS;
    const uint16_t want[EM_FC_COUNT][2] = {{m->n_u, m->n_in}, {m->n_u, m->n_h}, {m->n_u, m->n_m}, {m->n_h, m->n_in},
                                           {m->n_h, m->n_h},  {m->n_h, m->n_m}, {m->n_out, m->n_h}};
    const uint16_t pop_n[EM_POP_COUNT] = {m->n_u, m->n_m, m->n_h};
    for (int f = 0; f < EM_FC_COUNT; f++) {
        const em_fc_t *fc = &m->fc[f];
        if (fc->out_dim != want[f][0] || fc->in_dim != want[f][1]) return EM_ERR_DIMS;
    }
    for (int p = 0; p < EM_POP_COUNT; p++)
        if (m->pop[p].n != pop_n[p]) return EM_ERR_DIMS;
    /* pointers after dims so a descriptor with wrong dims reports the dims */
    for (int f = 0; f < EM_FC_COUNT; f++) {
        const em_fc_t *fc = &m->fc[f];
        if (!fc->w || !fc->bias || !fc->mult || !fc->shift) return EM_ERR_NULL;
    }
    for (int p = 0; p < EM_POP_COUNT; p++) {
        const em_pop_t *pp = &m->pop[p];
        if (!pp->beta || !pp->thr || (pp->cuba && !pp->alpha)) return EM_ERR_NULL;
    }
    if (!m->lmu_a || !m->lmu_b) return EM_ERR_NULL;

    for (int f = 0; f < EM_FC_COUNT; f++) {
        const em_fc_t *fc = &m->fc[f];
        for (int o = 0; o < fc->out_dim; o++) {
            /* mult in [2^30, 2^31): int32 already caps the top */
            if (fc->mult[o] < (int32_t)0x40000000 || fc->shift[o] < 1 || fc->shift[o] > 62) return EM_ERR_PARAM;
        }
    }
    for (int p = 0; p < EM_POP_COUNT; p++) {
        const em_pop_t *pp = &m->pop[p];
        for (int i = 0; i < pp->n; i++) {
            if (pp->beta[i] < 0) return EM_ERR_PARAM; /* thr may be any value: snntorch learns it freely */
            if (pp->cuba && pp->alpha[i] < 0) return EM_ERR_PARAM; /* alpha is unused (may be NULL) for LIF */
        }
    }
    if (m->a_shift < 1 || m->a_shift > 30) return EM_ERR_PARAM;
    return EM_OK;
}

/* Arena layout (each region rounded up to 4 bytes, in this order; see em_arena_size in edgemem.h):
 *   cur      int32 [max(n_u, n_m, n_h, n_out)]
 *   mem[p]   int16 [n_p]  for p = ENC, MEM, HID
 *   syn[p]   int16 [n_p]  for each CuBa population, same order
 *   lmu_m    int16 [n_u * order]
 *   scratch  int16 [order]
 *   spikes   int8  h_prev [n_h], m_prev [n_m], u [n_u], m [n_m], h [n_h] */
typedef struct {
    size_t cur, mem[EM_POP_COUNT], syn[EM_POP_COUNT], lmu_m, scratch, spk_h_prev, spk_m_prev, spk_u, spk_m, spk_h,
        total;
} em_layout_t;

static size_t max4(size_t a, size_t b, size_t c, size_t d) {
    size_t m = a > b ? a : b;
    m = m > c ? m : c;
    return m > d ? m : d;
}

static void layout(const em_model_t *m, em_layout_t *l) {
    size_t at = 0;
    l->cur = at;
    at += round4(4u * max4(m->n_u, m->n_m, m->n_h, m->n_out));
    for (int p = 0; p < EM_POP_COUNT; p++) {
        l->mem[p] = at;
        at += round4(2u * m->pop[p].n);
    }
    for (int p = 0; p < EM_POP_COUNT; p++) {
        l->syn[p] = at;
        if (m->pop[p].cuba) at += round4(2u * m->pop[p].n);
    }
    l->lmu_m = at;
    at += round4(2u * (size_t)m->n_u * m->order);
    l->scratch = at;
    at += round4(em_lmu_memory_buffer_size(m->order));
    l->spk_h_prev = at;
    at += round4(m->n_h);
    l->spk_m_prev = at;
    at += round4(m->n_m);
    l->spk_u = at;
    at += round4(m->n_u);
    l->spk_m = at;
    at += round4(m->n_m);
    l->spk_h = at;
    at += round4(m->n_h);
    l->total = at;
}

size_t em_arena_size(const em_model_t *model) {
    if (em_model_check(model) != EM_OK) return 0;
    em_layout_t l;
    layout(model, &l);
    return l.total;
}

/* Zero membranes, synaptic currents and LMU memory (everything the next step reads). */
static void reset_state(em_ctx_t *ctx) {
    const em_model_t *m = ctx->model;
    for (int p = 0; p < EM_POP_COUNT; p++) {
        for (int i = 0; i < m->pop[p].n; i++) ctx->mem[p][i] = 0;
        if (ctx->syn[p])
            for (int i = 0; i < m->pop[p].n; i++) ctx->syn[p][i] = 0;
    }
    for (int i = 0; i < m->n_u * m->order; i++) ctx->lmu_m[i] = 0;
}

em_status_t em_init(em_ctx_t *ctx, const em_model_t *model, void *arena, size_t arena_size) {
    if (!ctx) return EM_ERR_NULL;
    ctx->ready = 0; /* a failed init leaves the ctx unusable */
    if (!model || !arena) return EM_ERR_NULL;
    em_status_t st = em_model_check(model);
    if (st != EM_OK) return st;
    em_layout_t l;
    layout(model, &l);
    if ((uintptr_t)arena % 4u != 0 || arena_size < l.total) return EM_ERR_ARENA;
    uint8_t *a = (uint8_t *)arena;
    ctx->model = model;
    ctx->cur = (int32_t *)(void *)(a + l.cur);
    for (int p = 0; p < EM_POP_COUNT; p++) {
        ctx->mem[p] = (int16_t *)(void *)(a + l.mem[p]);
        ctx->syn[p] = model->pop[p].cuba ? (int16_t *)(void *)(a + l.syn[p]) : NULL;
    }
    ctx->lmu_m = (int16_t *)(void *)(a + l.lmu_m);
    ctx->lmu_scratch = (int16_t *)(void *)(a + l.scratch);
    ctx->spk_h_prev = (int8_t *)(a + l.spk_h_prev);
    ctx->spk_m_prev = (int8_t *)(a + l.spk_m_prev);
    ctx->spk_u = (int8_t *)(a + l.spk_u);
    ctx->spk_m = (int8_t *)(a + l.spk_m);
    ctx->spk_h = (int8_t *)(a + l.spk_h);
    reset_state(ctx);
    ctx->ready = EM_CTX_READY;
    return EM_OK;
}

em_status_t em_reset(em_ctx_t *ctx) {
    if (!ctx) return EM_ERR_NULL;
    if (ctx->ready != EM_CTX_READY) return EM_ERR_STATE;
    reset_state(ctx);
    return EM_OK;
}

static em_status_t fc_into(const em_fc_t *fc, const int8_t *in, int32_t *acc) {
    return em_fc_s8(in, fc->w, fc->bias, fc->mult, fc->shift, fc->in_dim, fc->out_dim, acc);
}

static em_status_t pop_step(em_ctx_t *ctx, int p, int8_t *spk) {
    const em_pop_t *pp = &ctx->model->pop[p];
    return em_lif_s16(ctx->cur, ctx->mem[p], ctx->syn[p], pp->beta, pp->alpha, pp->thr, pp->n, spk);
}

static void zero32(int32_t *x, int n) {
    for (int i = 0; i < n; i++) x[i] = 0;
}

#define EM_TRY(expr)                        \
    do {                                    \
        em_status_t st_ = (expr);           \
        if (st_ != EM_OK) return st_;       \
    } while (0)

/* in [n_in] int8, out [n_out] int16. */
em_status_t em_step(em_ctx_t *ctx, const int8_t *in, int16_t *out) {
    if (!ctx) return EM_ERR_NULL;
    if (ctx->ready != EM_CTX_READY) return EM_ERR_STATE;
    if (!in || !out) return EM_ERR_NULL;
    const em_model_t *m = ctx->model;
    const em_pop_t *ph = &m->pop[EM_POP_HID], *pm = &m->pop[EM_POP_MEM];
    int32_t *cur = ctx->cur;

    /* 1. spikes of the previous step, recomputed from the membranes (not state of their own) */
    for (int i = 0; i < m->n_h; i++) ctx->spk_h_prev[i] = (int8_t)(ctx->mem[EM_POP_HID][i] > ph->thr[i]);
    for (int i = 0; i < m->n_m; i++) ctx->spk_m_prev[i] = (int8_t)(ctx->mem[EM_POP_MEM][i] > pm->thr[i]);

    /* 2. encoder: cur [n_u] = fc(ENC_X, x) + fc(ENC_H, s_h_prev) + fc(ENC_M, s_m_prev) -> s_u [n_u] */
    zero32(cur, m->n_u);
    EM_TRY(fc_into(&m->fc[EM_FC_ENC_X], in, cur));
    EM_TRY(fc_into(&m->fc[EM_FC_ENC_H], ctx->spk_h_prev, cur));
    EM_TRY(fc_into(&m->fc[EM_FC_ENC_M], ctx->spk_m_prev, cur));
    EM_TRY(pop_step(ctx, EM_POP_ENC, ctx->spk_u));

    /* 3. LMU memory m [n_u][order] = A m + B s_u */
    EM_TRY(em_lmu_memory_s16(ctx->lmu_m, ctx->spk_u, m->lmu_a, m->a_shift, m->lmu_b, m->n_u, m->order,
                             ctx->lmu_scratch));

    /* 4. memory population: cur [n_m] = [+m, -m] flattened (on/off cells, already in membrane units) -> s_m */
    const int nq = m->n_u * m->order;
    for (int k = 0; k < nq; k++) {
        int32_t v = ctx->lmu_m[k];
        cur[k] = v;
        cur[nq + k] = -v; /* -(-32768) = 32768 in int32; the LIF saturates it */
    }
    EM_TRY(pop_step(ctx, EM_POP_MEM, ctx->spk_m));

    /* 5. hidden: cur [n_h] = fc(HID_X, x) + fc(HID_H, s_h_prev) + fc(HID_M, s_m) -> s_h [n_h] */
    zero32(cur, m->n_h);
    EM_TRY(fc_into(&m->fc[EM_FC_HID_X], in, cur));
    EM_TRY(fc_into(&m->fc[EM_FC_HID_H], ctx->spk_h_prev, cur));
    EM_TRY(fc_into(&m->fc[EM_FC_HID_M], ctx->spk_m, cur));
    EM_TRY(pop_step(ctx, EM_POP_HID, ctx->spk_h));

    /* 6. logits out [n_out] = sat16(fc(OUT, s_h)) */
    zero32(cur, m->n_out);
    EM_TRY(fc_into(&m->fc[EM_FC_OUT], ctx->spk_h, cur));
    for (int o = 0; o < m->n_out; o++) out[o] = em_sat16_32i(cur[o]);
    return EM_OK;
}

const char *em_status_str(em_status_t status) {
    switch (status) {
    case EM_OK: return "ok";
    case EM_ERR_NULL: return "null pointer";
    case EM_ERR_TRUNCATED: return "blob truncated";
    case EM_ERR_MAGIC: return "bad magic (not an EMMB blob)";
    case EM_ERR_VERSION: return "unsupported blob version";
    case EM_ERR_CRC: return "CRC-32 mismatch";
    case EM_ERR_KIND: return "unknown model kind";
    case EM_ERR_DIMS: return "bad dimensions";
    case EM_ERR_TENSOR: return "missing, duplicate or malformed tensor";
    case EM_ERR_BOUNDS: return "tensor outside the blob";
    case EM_ERR_ALIGN: return "misaligned tensor";
    case EM_ERR_ARENA: return "arena too small or misaligned";
    case EM_ERR_PARAM: return "quantization parameter out of range";
    case EM_ERR_STATE: return "context not initialised";
    case EM_ERR_OP: return "bad op (type, flags or fields)";
    case EM_ERR_ORDER: return "buffer read before it is written";
    case EM_ERR_BUFFER: return "bad buffer (table entry, overlap, or dtype/count/state for its op)";
    case EM_ERR_PLAN: return "bad patch plan (table, overlap, or not for this graph)";
    }
    return "unknown status";
}
