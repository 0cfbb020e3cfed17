/* Patch schedule of a graph (docs/graph.md "Patch schedule"): parse and check the offline plan, then run blocks
 * of frames with the front stage op by op over the patch and its halo, and the rest one frame at a time.
 *
 * Frame j of a buffer b holds time t0 - lead[b] + j, where t0 is the first frame of the current block; the rest
 * reads frame lead[b] + f of a stage buffer at frame f. Times before the first frame since reset are the causal
 * zero padding: stage ops write zeros there (the streaming rings hold zeros then too), so outputs equal
 * em_graph_step's. */
#include "em_graph.h"
#include "em_kernels.h"
#include "em_crc32.h"
#include "em_graph_internal.h"

#define EM_PATCH_VALID 0x48435450u /* "PTCH" */
#define EM_PATCH_CTX_READY 0x59445250u

/* buffer roles, from the op table */
enum { ROLE_STAGE = 1, ROLE_REST = 2, ROLE_RING = 4 };

typedef struct {
    uint32_t offset, frames, lead;
} entry_t;

static void rd_entry(const uint8_t *table, uint32_t b, entry_t *e) {
    const uint8_t *p = table + (size_t)EM_PATCH_ENTRY_SIZE * b;
    e->offset = em_rd_u32(p);
    e->frames = em_rd_u16(p + 4);
    e->lead = em_rd_u16(p + 6);
}

static const uint8_t *gbuf(const em_graph_t *g, uint32_t b) {
    return g->buffers + (size_t)EM_GRAPH_BUFFER_ENTRY_SIZE * b;
}
static uint32_t frame_bytes(const em_graph_t *g, uint32_t b) {
    return em_rd_u32(gbuf(g, b) + 4) * em_graph_elsize(gbuf(g, b)[0]);
}
static int is_state(const em_graph_t *g, uint32_t b) { return (gbuf(g, b)[1] & EM_GRAPH_BUF_STATE) != 0; }

static int stage_type(uint32_t type) {
    return type == EM_OP_CONV1D || type == EM_OP_ACT || type == EM_OP_FC || type == EM_OP_ADD || type == EM_OP_ONOFF;
}

/* Role bits of buffer b (ops read from the table; a few hundred records, once per parse). */
static uint32_t role_of(const em_graph_t *g, uint32_t stage_ops, uint32_t b) {
    uint32_t role = 0;
    for (uint32_t i = 0; i < g->n_ops; i++) {
        em_op_rec_t op;
        em_graph_read_op(g->ops, i, &op);
        for (int f = 0; f < EM_F_COUNT; f++) {
            if (op.buf[f] != b) continue;
            if (i >= stage_ops) role |= ROLE_REST;
            else if (f == EM_F_STATE0 || f == EM_F_STATE1) role |= ROLE_RING;
            else role |= ROLE_STAGE;
        }
    }
    return role;
}

/* Closed op-index live range of a scratch buffer (first .. last op naming it; out_buffer to the end). A stage
 * buffer the rest reads lives to the end too: the rest reads its frames one per pass over ops stage_ops.. . */
static void live_range(const em_graph_t *g, uint32_t stage_ops, uint32_t b, uint32_t *first, uint32_t *last) {
    *first = g->n_ops;
    *last = 0;
    for (uint32_t i = 0; i < g->n_ops; i++) {
        em_op_rec_t op;
        em_graph_read_op(g->ops, i, &op);
        for (int f = 0; f < EM_F_COUNT; f++)
            if (op.buf[f] == b) {
                if (i < *first) *first = i;
                *last = i;
            }
    }
    if (b == g->out_buffer || (*first < stage_ops && *last >= stage_ops)) *last = g->n_ops;
}

/* Persistent in the patch schedule: state outside the stage, and the input (it keeps the halo between blocks). */
static int persistent(const em_graph_t *g, uint32_t b) { return b == g->in_buffer || is_state(g, b); }

static em_status_t check_table(const em_graph_t *g, const uint8_t *table, uint32_t patch, uint32_t stage_ops,
                               uint32_t arena) {
    for (uint32_t b = 0; b < g->n_buffers; b++) {
        entry_t e;
        rd_entry(table, b, &e);
        const uint32_t role = role_of(g, stage_ops, b);
        if (role & ROLE_RING) {
            /* a stage conv's ring and head: the halo replaces them, and no other op may use them */
            if (role != ROLE_RING || e.frames != 0 || e.lead != 0) return EM_ERR_PLAN;
            continue;
        }
        if (role & ROLE_STAGE) {
            if (is_state(g, b) || e.lead > EM_PATCH_MAX_FRAMES || e.frames != patch + e.lead) return EM_ERR_PLAN;
        } else if (role == ROLE_REST) {
            if (e.frames != 1 || e.lead != 0) return EM_ERR_PLAN;
        } else if (e.frames != 0 || e.lead != 0) {
            return EM_ERR_PLAN; /* named by no op */
        }
        if (e.offset % 4u != 0 || (uint64_t)e.offset + (uint64_t)e.frames * frame_bytes(g, b) > arena)
            return EM_ERR_PLAN;
    }
    /* every stage op can read the frames it needs: its input holds the output's lead plus a conv's k-1 */
    for (uint32_t i = 0; i < stage_ops; i++) {
        em_op_rec_t op;
        em_graph_read_op(g->ops, i, &op);
        entry_t in, out;
        rd_entry(table, op.buf[EM_F_IN0], &in);
        rd_entry(table, op.buf[EM_F_OUT], &out);
        const uint32_t need = out.lead + (op.type == EM_OP_CONV1D ? (uint32_t)op.d[2] - 1u : 0u);
        if (in.lead < need) return EM_ERR_PLAN;
        if (op.type == EM_OP_CONV1D && (uint32_t)op.d[2] * op.d[0] > EM_MAX_DIM) return EM_ERR_DIMS;
        /* a stage conv runs as the FC kernel of its weights over a window of frames */
        if (op.type == EM_OP_CONV1D) {
            const int conv = em_graph_op_kernel(g->buffers, g->tensors, g->ops + (size_t)EM_GRAPH_OP_SIZE * i);
            const int k = conv == EM_K_CONV1D_PACKED ? EM_K_FC_S8_PACKED : EM_K_FC_S8;
            if (!em_graph_kernel_built(k)) return EM_ERR_OP;
        }
    }
    /* two buffers share bytes only if neither persists and their live ranges are disjoint */
    for (uint32_t a = 0; a < g->n_buffers; a++) {
        entry_t ea;
        rd_entry(table, a, &ea);
        if (ea.frames == 0) continue;
        const uint64_t a_end = (uint64_t)ea.offset + (uint64_t)ea.frames * frame_bytes(g, a);
        for (uint32_t b = a + 1; b < g->n_buffers; b++) {
            entry_t eb;
            rd_entry(table, b, &eb);
            if (eb.frames == 0) continue;
            const uint64_t b_end = (uint64_t)eb.offset + (uint64_t)eb.frames * frame_bytes(g, b);
            if (!(ea.offset < b_end && eb.offset < a_end)) continue;
            if (persistent(g, a) || persistent(g, b)) return EM_ERR_PLAN;
            uint32_t fa, la, fb, lb;
            live_range(g, stage_ops, a, &fa, &la);
            live_range(g, stage_ops, b, &fb, &lb);
            if (fa <= lb && fb <= la) return EM_ERR_PLAN;
        }
    }
    return EM_OK;
}

em_status_t em_graph_patch_parse(em_graph_patch_t *p, const em_graph_t *g, const uint8_t *blob, size_t size) {
    if (!p || !g || !blob) return EM_ERR_NULL;
    if (g->valid != EM_GRAPH_VALID) return EM_ERR_STATE;
    if (size < EM_PATCH_HEADER_SIZE) return EM_ERR_TRUNCATED;
    if (blob[0] != 'E' || blob[1] != 'M' || blob[2] != 'P' || blob[3] != 'S') return EM_ERR_MAGIC;
    if (em_rd_u16(blob + 4) != 1u || em_rd_u16(blob + 6) != EM_PATCH_HEADER_SIZE) return EM_ERR_VERSION;
    const uint32_t total = em_rd_u32(blob + 8);
    if (total < EM_PATCH_HEADER_SIZE || total > size) return EM_ERR_TRUNCATED;
    if (em_crc32(blob + EM_PATCH_HEADER_SIZE, total - EM_PATCH_HEADER_SIZE) != em_rd_u32(blob + 12)) return EM_ERR_CRC;
    /* the graph's own CRC field: a plan is laid out for one graph's buffers */
    if (em_rd_u32(blob + 16) != em_rd_u32(g->blob + 12)) return EM_ERR_PLAN;
    const uint32_t patch = em_rd_u16(blob + 20), stage_ops = em_rd_u16(blob + 22), n_b = em_rd_u16(blob + 24);
    const uint32_t arena = em_rd_u32(blob + 28);
    if (n_b != g->n_buffers || total != EM_PATCH_HEADER_SIZE + EM_PATCH_ENTRY_SIZE * n_b) return EM_ERR_PLAN;
    if (em_rd_u16(blob + 26) != 0u || arena % 4u != 0) return EM_ERR_PLAN;
    if (patch < 1u || patch > EM_PATCH_MAX_FRAMES || stage_ops < 1u || stage_ops > g->n_ops) return EM_ERR_DIMS;
    for (uint32_t i = 0; i < stage_ops; i++) {
        em_op_rec_t op;
        em_graph_read_op(g->ops, i, &op);
        if (!stage_type(op.type) || (i == 0 && op.type != EM_OP_CONV1D)) return EM_ERR_OP;
    }
    const uint8_t *table = blob + EM_PATCH_HEADER_SIZE;
    const em_status_t st = check_table(g, table, patch, stage_ops, arena);
    if (st != EM_OK) return st;
    p->graph = g;
    p->table = table;
    p->arena_size = arena;
    p->patch_frames = (uint16_t)patch;
    p->stage_ops = (uint16_t)stage_ops;
    p->valid = EM_PATCH_VALID;
    return EM_OK;
}

size_t em_graph_patch_arena_size(const em_graph_patch_t *p) {
    if (!p || p->valid != EM_PATCH_VALID) return 0;
    return p->arena_size;
}

static void zero_persistent(const em_graph_patch_ctx_t *c) {
    const em_graph_t *g = c->plan->graph;
    for (uint32_t b = 0; b < g->n_buffers; b++) {
        entry_t e;
        rd_entry(c->plan->table, b, &e);
        if (e.frames == 0 || !persistent(g, b)) continue;
        uint8_t *p = c->arena + e.offset;
        const uint32_t bytes = e.frames * frame_bytes(g, b); /* inside the arena: checked by the parser */
        for (uint32_t i = 0; i < bytes; i++) p[i] = 0;
    }
}

em_status_t em_graph_patch_init(em_graph_patch_ctx_t *c, const em_graph_patch_t *p, void *arena,
                                size_t arena_size) {
    if (!c) return EM_ERR_NULL;
    c->ready = 0;
    if (!p || !arena) return EM_ERR_NULL;
    if (p->valid != EM_PATCH_VALID) return EM_ERR_STATE;
    if ((uintptr_t)arena % 4u != 0 || arena_size < p->arena_size) return EM_ERR_ARENA;
    c->plan = p;
    c->arena = (uint8_t *)arena;
    zero_persistent(c);
    c->frames_seen = 0;
    c->ready = EM_PATCH_CTX_READY;
    return EM_OK;
}

em_status_t em_graph_patch_reset(em_graph_patch_ctx_t *c) {
    if (!c) return EM_ERR_NULL;
    if (c->ready != EM_PATCH_CTX_READY) return EM_ERR_STATE;
    zero_persistent(c);
    c->frames_seen = 0;
    return EM_OK;
}

/* Address of frame `frame` of buffer b. */
static uint8_t *frame_at(const em_graph_patch_ctx_t *c, uint32_t b, uint32_t frame) {
    entry_t e;
    rd_entry(c->plan->table, b, &e);
    return c->arena + e.offset + (size_t)frame * frame_bytes(c->plan->graph, b);
}

static const uint8_t *tensor_entry(const em_graph_t *g, uint32_t t) {
    return g->tensors + (size_t)EM_GRAPH_TENSOR_ENTRY_SIZE * t;
}
static const void *tensor_data(const em_graph_t *g, uint32_t t) { return g->blob + em_rd_u32(tensor_entry(g, t) + 4); }

/* A stage CONV1D over frames: output frame j is an FC over the k input frames ending at the matching time, which
 * lie next to each other in the input buffer, in the weights' [k][c_in] order (same sums as the ring kernel). */
static em_status_t conv_frame(const em_graph_t *g, const em_op_rec_t *op, const int8_t *window, int32_t *out) {
    const void *w = tensor_data(g, op->t[0]);
    const int32_t *bias = (const int32_t *)tensor_data(g, op->t[1]), *mult = (const int32_t *)tensor_data(g, op->t[2]);
    const int8_t *shift = (const int8_t *)tensor_data(g, op->t[3]);
    const em_out_mode_t mode = (op->flags & EM_GRAPH_OPF_ACC) ? EM_OUT_ACC : EM_OUT_ASSIGN;
    const int row = op->d[0] * op->d[2], wdt = tensor_entry(g, op->t[0])[2];
    if (wdt == EM_DTYPE_S4 || wdt == EM_DTYPE_S2) {
        if (!((EM_GRAPH_KERNELS >> EM_K_FC_S8_PACKED) & 1u)) return EM_ERR_OP; /* constant: lets gc drop it */
        return em_fc_s8_packed(window, (const uint8_t *)w, wdt == EM_DTYPE_S4 ? 4 : 2, bias, mult, shift, row,
                               op->d[1], mode, out);
    }
    if (!((EM_GRAPH_KERNELS >> EM_K_FC_S8) & 1u)) return EM_ERR_OP;
    return em_fc_s8_mode(window, (const int8_t *)w, bias, mult, shift, row, op->d[1], mode, out);
}

static em_status_t run_stage(const em_graph_patch_ctx_t *c, uint32_t n) {
    const em_graph_patch_t *p = c->plan;
    const em_graph_t *g = p->graph;
    for (uint32_t i = 0; i < p->stage_ops; i++) {
        em_op_rec_t op;
        em_graph_read_op(g->ops, i, &op);
        entry_t in, out;
        rd_entry(p->table, op.buf[EM_F_IN0], &in);
        rd_entry(p->table, op.buf[EM_F_OUT], &out);
        const uint32_t out_bytes = frame_bytes(g, op.buf[EM_F_OUT]);
        const int acc = (op.flags & EM_GRAPH_OPF_ACC) != 0;
        for (uint32_t j = 0; j < out.lead + n; j++) {
            uint8_t *dst = frame_at(c, op.buf[EM_F_OUT], j);
            /* time t0 - lead + j < 0: causal padding, zero (an accumulating op adds nothing to it) */
            if ((uint64_t)c->frames_seen + j < out.lead) {
                if (!acc)
                    for (uint32_t k = 0; k < out_bytes; k++) dst[k] = 0;
                continue;
            }
            const uint32_t src = in.lead - out.lead + j; /* the same time in the input */
            em_status_t st;
            if (op.type == EM_OP_CONV1D) {
                st = conv_frame(g, &op, (const int8_t *)frame_at(c, op.buf[EM_F_IN0], src - (op.d[2] - 1u)),
                                (int32_t *)(void *)dst);
            } else {
                uint8_t *addr[EM_F_COUNT] = {0};
                addr[EM_F_IN0] = frame_at(c, op.buf[EM_F_IN0], src);
                addr[EM_F_OUT] = dst;
                if (op.buf[EM_F_SCRATCH] != EM_GRAPH_NONE) /* an event-driven FC's index list */
                    addr[EM_F_SCRATCH] = frame_at(c, op.buf[EM_F_SCRATCH], j);
                st = em_graph_run_op(g, g->ops + (size_t)EM_GRAPH_OP_SIZE * i, addr);
            }
            if (st != EM_OK) return st;
        }
    }
    return EM_OK;
}

em_status_t em_graph_patch_run(em_graph_patch_ctx_t *c, const int8_t *in, int n, int16_t *out) {
    if (!c) return EM_ERR_NULL;
    if (c->ready != EM_PATCH_CTX_READY) return EM_ERR_STATE;
    if (!in || !out) return EM_ERR_NULL;
    const em_graph_patch_t *p = c->plan;
    const em_graph_t *g = p->graph;
    if (n < 1 || n > (int)p->patch_frames) return EM_ERR_DIMS;
    entry_t xin;
    rd_entry(p->table, g->in_buffer, &xin);
    /* the block after the kept history: input frames lead .. lead + n - 1 */
    int8_t *x = (int8_t *)frame_at(c, g->in_buffer, xin.lead);
    for (uint32_t k = 0; k < (uint32_t)n * g->n_in; k++) x[k] = in[k];
    em_status_t st = run_stage(c, (uint32_t)n);
    if (st != EM_OK) return st;
    for (uint32_t f = 0; f < (uint32_t)n; f++) {
        for (uint32_t i = p->stage_ops; i < g->n_ops; i++) {
            em_op_rec_t op;
            em_graph_read_op(g->ops, i, &op);
            uint8_t *addr[EM_F_COUNT];
            for (int k = 0; k < EM_F_COUNT; k++) {
                if (op.buf[k] == EM_GRAPH_NONE) {
                    addr[k] = NULL;
                    continue;
                }
                entry_t e;
                rd_entry(p->table, op.buf[k], &e);
                /* a stage buffer (frames > 1 or a lead) is read at this frame's time; the rest's own are single */
                addr[k] = frame_at(c, op.buf[k], e.frames == 1 && e.lead == 0 ? 0u : e.lead + f);
            }
            st = em_graph_run_op(g, g->ops + (size_t)EM_GRAPH_OP_SIZE * i, addr);
            if (st != EM_OK) return st;
        }
        entry_t eo;
        rd_entry(p->table, g->out_buffer, &eo);
        const int16_t *y = (const int16_t *)(const void *)frame_at(c, g->out_buffer,
                                                                   eo.frames == 1 && eo.lead == 0 ? 0u : eo.lead + f);
        for (uint32_t o = 0; o < g->n_out; o++) out[(size_t)f * g->n_out + o] = y[o];
    }
    /* keep the last `lead` input frames as the next block's history */
    int8_t *hist = (int8_t *)frame_at(c, g->in_buffer, 0);
    const int8_t *from = (const int8_t *)frame_at(c, g->in_buffer, (uint32_t)n);
    for (uint32_t k = 0; k < xin.lead * g->n_in; k++) hist[k] = from[k];
    c->frames_seen = c->frames_seen > 0xFFFFFFFFu - (uint32_t)n ? 0xFFFFFFFFu : c->frames_seen + (uint32_t)n;
    return EM_OK;
}
