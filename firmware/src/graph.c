/* Graph runtime: bind an arena, reset state, and run one step as the op list says. The op table is read in place
 * every step (32 bytes an op, cheap next to any kernel), so a graph costs no RAM beyond em_graph_t; dispatch is a
 * switch (no function pointers: `make stack` can bound every call). Everything read from the blob here was checked
 * by em_graph_parse, or is trusted because em_graph_bind found the exporter's bytes (em_graph.h); the arena's
 * contents are not trusted (a conv head is indexed by its remainder only). */
#include "em_graph.h"
#include "em_k.h"
#include "em_graph_internal.h"

#define EM_GRAPH_CTX_READY 0x47524459u /* "YDRG": a zeroed or stale ctx is unlikely to hold it by chance */

size_t em_graph_arena_size(const em_graph_t *g) {
    if (!g || g->valid != EM_GRAPH_VALID) return 0;
    return g->arena_size;
}

static const uint8_t *buf_entry(const em_graph_t *g, uint32_t b) {
    return g->buffers + (size_t)EM_GRAPH_BUFFER_ENTRY_SIZE * b;
}
/* Arena address of buffer b (offset 4-byte aligned and inside arena_size: checked by the parser). */
static uint8_t *buf_at(const em_graph_ctx_t *ctx, uint32_t b) {
    return ctx->arena + em_rd_u32(buf_entry(ctx->graph, b) + 8);
}
/* Blob address of tensor t (aligned to its element size: checked by the parser). */
static const void *tensor_at(const em_graph_t *g, uint32_t t) {
    return g->blob + em_rd_u32(g->tensors + (size_t)EM_GRAPH_TENSOR_ENTRY_SIZE * t + 4);
}

/* Bits per element of a weight tensor: 4 (S4), 2 (S2) or 8 (S8; the parser allows nothing else for FC/CONV1D t0). */
static int tensor_wbits(const em_graph_t *g, uint32_t t) {
    const uint32_t dt = g->tensors[(size_t)EM_GRAPH_TENSOR_ENTRY_SIZE * t + 2];
    return dt == EM_DTYPE_S4 ? 4 : dt == EM_DTYPE_S2 ? 2 : 8;
}

/* Zeroing loops stay loops: gcc would turn them into a call to memset, and a firmware whose only memset call this
 * is (the footprint probe) would link newlib's for it (162 B of flash, for a loop that runs at reset only). An empty
 * asm that may read p keeps the stores from being merged into such a call; it emits no instruction. */
#if defined(__GNUC__)
#define EM_NOT_MEMSET(p) __asm__("" : : "r"(p) : "memory")
#else
#define EM_NOT_MEMSET(p) ((void)(p))
#endif

static void zero_state(const em_graph_ctx_t *ctx) {
    const em_graph_t *g = ctx->graph;
    for (uint32_t b = 0; b < g->n_buffers; b++) {
        const uint8_t *e = buf_entry(g, b);
        if (!(e[1] & EM_GRAPH_BUF_STATE)) continue;
        uint8_t *p = buf_at(ctx, b);
        const uint32_t bytes = em_rd_u32(e + 4) * em_graph_elsize(e[0]); /* <= arena_size: no wrap */
        for (uint32_t i = 0; i < bytes; i++) {
            p[i] = 0;
            EM_NOT_MEMSET(p);
        }
    }
}

em_status_t em_graph_init(em_graph_ctx_t *ctx, const em_graph_t *g, void *arena, size_t arena_size) {
    if (!ctx) return EM_ERR_NULL;
    ctx->ready = 0; /* a failed init leaves the ctx unusable */
    if (!g || !arena) return EM_ERR_NULL;
    if (g->valid != EM_GRAPH_VALID) return EM_ERR_STATE; /* not from a successful em_graph_parse or bind */
    if ((uintptr_t)arena % 4u != 0 || arena_size < g->arena_size) return EM_ERR_ARENA;
    ctx->graph = g;
    ctx->arena = (uint8_t *)arena;
    zero_state(ctx);
    ctx->ready = EM_GRAPH_CTX_READY;
    return EM_OK;
}

em_status_t em_graph_reset(em_graph_ctx_t *ctx) {
    if (!ctx) return EM_ERR_NULL;
    if (ctx->ready != EM_GRAPH_CTX_READY) return EM_ERR_STATE;
    zero_state(ctx);
    return EM_OK;
}

/* Typed views of an op's buffers (at the addresses the schedule resolved) and tensors; the parser checked every
 * dtype, count and alignment (bind: the exporter's parser did). */
#define B8(f) ((int8_t *)addr[f])
#define B16(f) ((int16_t *)(void *)addr[f])
#define B32(f) ((int32_t *)(void *)addr[f])
#define T8(k) ((const int8_t *)tensor_at(g, em_rec_t(rec, k)))
#define TU8(k) ((const uint8_t *)tensor_at(g, em_rec_t(rec, k)))
#define T16(k) ((const int16_t *)tensor_at(g, em_rec_t(rec, k)))
#define T32(k) ((const int32_t *)tensor_at(g, em_rec_t(rec, k)))
#define D(k) ((int)em_rec_d(rec, k))
#define WBITS tensor_wbits(g, em_rec_t(rec, 0))

/* The input stages' ops (SENSOR, LOGMEL), out of line: they run once per step of a stage graph. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static em_status_t run_stage_op(const em_graph_t *g, const uint8_t *rec, uint8_t *const addr[EM_F_COUNT]) {
    const int n = D(0);
    const int k = em_graph_op_kernel(g->buffers, g->tensors, rec);
#define BUILT(K) if (!((EM_GRAPH_KERNELS >> (K)) & 1u)) return EM_ERR_OP
    switch (k) {
    case EM_K_SENSOR:
        BUILT(EM_K_SENSOR);
        em_k_sensor((const int16_t *)(const void *)addr[EM_F_IN0], (int)n, D(1), T32(0), T32(1), T8(2), B8(EM_F_OUT));
        return EM_OK;
    case EM_K_LOGMEL:
        BUILT(EM_K_LOGMEL);
        em_k_logmel((const int16_t *)(const void *)addr[EM_F_IN0], B16(EM_F_STATE0), B8(EM_F_OUT), n, D(1), D(2), D(3),
                    T16(0), T32(1), T16(2), T32(3), B32(EM_F_SCRATCH));
        return EM_OK;
    default:
        return EM_ERR_OP; /* unreachable for a parsed graph */
    }
#undef BUILT
}

/* Inline: the step (the only caller in a firmware without the patch schedule) gets the dispatch without a call. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline em_status_t run_op(const em_graph_t *g, const uint8_t *rec, uint8_t *const addr[EM_F_COUNT]) {
    const uint32_t flags = em_rec_flags(rec);
    const int acc = (flags & EM_GRAPH_OPF_ACC) != 0;
    const int n = D(0);
    const int k = em_graph_op_model_kernel(g->buffers, g->tensors, rec);
    /* A kernel left out of this build (EM_GRAPH_KERNELS) is refused by the parser already, and stepping a bound blob
     * that needs one gets EM_ERR_OP here. BUILT(K) is a compile-time constant in each case, so the compiler drops
     * that call and --gc-sections the kernel. The kernels run without their argument checks (em_k.h): the parser
     * checked every one of them once. */
#define BUILT(K) if (!((EM_GRAPH_KERNELS >> (K)) & 1u)) return EM_ERR_OP
    switch (k) {
    case EM_K_FC_S8:
        BUILT(EM_K_FC_S8);
        em_k_fc_s8(B8(EM_F_IN0), T8(0), T32(1), T32(2), T8(3), n, D(1), acc, B32(EM_F_OUT));
        return EM_OK;
    case EM_K_FC_S16:
        BUILT(EM_K_FC_S16);
        em_k_fc_s16(B16(EM_F_IN0), T8(0), T32(1), T32(2), T8(3), n, D(1), acc, B32(EM_F_OUT));
        return EM_OK;
    case EM_K_FC_S8_PACKED: /* packed S4 / S2 weights (rows byte-aligned: checked by the parser) */
        BUILT(EM_K_FC_S8_PACKED);
        em_k_fc_s8_packed(B8(EM_F_IN0), TU8(0), WBITS, T32(1), T32(2), T8(3), n, D(1), acc,
                          B32(EM_F_OUT));
        return EM_OK;
    case EM_K_FC_S16_PACKED:
        BUILT(EM_K_FC_S16_PACKED);
        em_k_fc_s16_packed(B16(EM_F_IN0), TU8(0), WBITS, T32(1), T32(2), T8(3), n, D(1), acc,
                           B32(EM_F_OUT));
        return EM_OK;
    case EM_K_FC_S8_EVENTS:
        BUILT(EM_K_FC_S8_EVENTS);
        em_k_fc_s8_events(B8(EM_F_IN0), T8(0), T32(1), T32(2), T8(3), n, D(1), acc, B16(EM_F_SCRATCH),
                          B32(EM_F_OUT));
        return EM_OK;
    case EM_K_FC_S8_PACKED_EVENTS:
        BUILT(EM_K_FC_S8_PACKED_EVENTS);
        em_k_fc_s8_packed_events(B8(EM_F_IN0), TU8(0), WBITS, T32(1), T32(2), T8(3), n, D(1),
                                 acc, B16(EM_F_SCRATCH), B32(EM_F_OUT));
        return EM_OK;
    case EM_K_CONV1D_S8:
        BUILT(EM_K_CONV1D_S8);
        em_k_conv1d_s8(B8(EM_F_IN0), B8(EM_F_STATE0), B32(EM_F_STATE1), T8(0), T32(1), T32(2), T8(3), n, D(1),
                       D(2), acc, B32(EM_F_OUT));
        return EM_OK;
    case EM_K_CONV1D_PACKED:
        BUILT(EM_K_CONV1D_PACKED);
        em_k_conv1d_packed(B8(EM_F_IN0), B8(EM_F_STATE0), B32(EM_F_STATE1), TU8(0), WBITS, T32(1),
                           T32(2), T8(3), n, D(1), D(2), acc, B32(EM_F_OUT));
        return EM_OK;
    case EM_K_ACT_S8: {
        BUILT(EM_K_ACT_S8);
        const em_act_t func = (em_act_t)((flags >> 1) & 3u);
        em_k_act_s8(B32(EM_F_IN0), n, func, func == EM_ACT_LUT ? T8(0) : NULL, B8(EM_F_OUT));
        return EM_OK;
    }
    case EM_K_ACT_S16:
        BUILT(EM_K_ACT_S16);
        em_k_act_s16(B32(EM_F_IN0), n, (em_act_t)((flags >> 1) & 3u), B16(EM_F_OUT));
        return EM_OK;
    case EM_K_LIF: {
        BUILT(EM_K_LIF);
        const int cuba = (flags & EM_GRAPH_OPF_CUBA) != 0;
        em_k_lif(B32(EM_F_IN0), B16(EM_F_STATE0), cuba ? B16(EM_F_STATE1) : NULL, T16(0), cuba ? T16(1) : NULL, T16(2),
                 n, B8(EM_F_OUT));
        return EM_OK;
    }
    case EM_K_LEAKY:
        BUILT(EM_K_LEAKY);
        em_k_leaky(B32(EM_F_IN0), T16(0), n, B16(EM_F_OUT));
        return EM_OK;
    case EM_K_LMU: /* and LMU_LEGENDRE (em_graph_op_kernel), whose bit alone links its kernel */
        if (((EM_GRAPH_KERNELS >> EM_K_LMU_LEGENDRE) & 1u) && (flags & EM_GRAPH_OPF_LEGENDRE)) {
            em_k_lmu_legendre(B16(EM_F_STATE0), B8(EM_F_IN0), T16(0), D(2), T32(1), D(3), n, D(1), B16(EM_F_SCRATCH));
            return EM_OK;
        }
        BUILT(EM_K_LMU);
        em_k_lmu(B16(EM_F_STATE0), B8(EM_F_IN0), T16(0), D(2), T32(1), D(3), n, D(1), B16(EM_F_SCRATCH));
        return EM_OK;
    case EM_K_ADD_S8:
        BUILT(EM_K_ADD_S8);
        em_k_add_s8(B8(EM_F_IN0), n, T32(0)[0], T8(1)[0], acc, B32(EM_F_OUT));
        return EM_OK;
    case EM_K_ADD_S16:
        BUILT(EM_K_ADD_S16);
        em_k_add_s16(B16(EM_F_IN0), n, T32(0)[0], T8(1)[0], acc, B32(EM_F_OUT));
        return EM_OK;
    case EM_K_ONOFF:
        BUILT(EM_K_ONOFF);
        em_k_onoff(B16(EM_F_IN0), n, acc, B32(EM_F_OUT));
        return EM_OK;
    case EM_K_SPIKE:
        BUILT(EM_K_SPIKE);
        em_k_spike(B16(EM_F_IN0), T16(0), n, B8(EM_F_OUT));
        return EM_OK;
    default: /* the input stages' ops (not model kernels: see em_graph_op_model_kernel), or unreachable */
        return run_stage_op(g, rec, addr);
    }
#undef BUILT
}

em_status_t em_graph_run_op(const em_graph_t *g, const uint8_t *rec, uint8_t *const addr[EM_F_COUNT]) {
    return run_op(g, rec, addr);
}

/* Buffer dtype byte of the graph's input buffer (the parser or bind left a valid table). */
static uint32_t in_dtype(const em_graph_t *g) {
    return g->buffers[(size_t)EM_GRAPH_BUFFER_ENTRY_SIZE * g->in_buffer];
}

int em_graph_is_input_stage(const em_graph_t *g) {
    if (!g || g->valid != EM_GRAPH_VALID) return -1;
    return in_dtype(g) == EM_DTYPE_S16;
}

/* Every op in list order (the input already in in_buffer), for em_graph_stage_step. em_graph_step keeps this loop
 * written out in its own body: calling this (or inlining it) costs the model step 6 to 30 instructions on the M4
 * (har_elm 9,177 -> 9,183 called, 9,209 inlined), and the model step is the hot path. */
static em_status_t run_ops(em_graph_ctx_t *ctx) {
    const em_graph_t *g = ctx->graph;
    const uint32_t n_ops = g->n_ops;
    for (uint32_t i = 0; i < n_ops; i++) {
        const uint8_t *rec = g->ops + (size_t)EM_GRAPH_OP_SIZE * i; /* read in place, not copied */
        uint8_t *addr[EM_F_COUNT];
        for (int f = 0; f < EM_F_COUNT; f++) {
            const uint32_t b = em_rec_buf(rec, f);
            addr[f] = b == EM_GRAPH_NONE ? NULL : buf_at(ctx, b);
        }
        em_status_t st = run_op(g, rec, addr);
        if (st != EM_OK) return st;
    }
    return EM_OK;
}

/* in [n_in] int8, out [n_out] int16. */
em_status_t em_graph_step(em_graph_ctx_t *ctx, const int8_t *in, int16_t *out) {
    if (!ctx) return EM_ERR_NULL;
    if (ctx->ready != EM_GRAPH_CTX_READY) return EM_ERR_STATE;
    if (!in || !out) return EM_ERR_NULL;
    const em_graph_t *g = ctx->graph;
    if (in_dtype(g) != EM_DTYPE_S8) return EM_ERR_BUFFER; /* an input stage: em_graph_stage_step */
    /* counts in locals: the byte stores below may alias *g as far as the compiler knows */
    const uint32_t n_in = g->n_in, n_ops = g->n_ops, n_out = g->n_out;
    int8_t *x = (int8_t *)buf_at(ctx, g->in_buffer);
    for (uint32_t i = 0; i < n_in; i++) x[i] = in[i];
    for (uint32_t i = 0; i < n_ops; i++) {
        const uint8_t *rec = g->ops + (size_t)EM_GRAPH_OP_SIZE * i; /* read in place, not copied */
        uint8_t *addr[EM_F_COUNT];
        for (int f = 0; f < EM_F_COUNT; f++) {
            const uint32_t b = em_rec_buf(rec, f);
            addr[f] = b == EM_GRAPH_NONE ? NULL : buf_at(ctx, b);
        }
        em_status_t st = run_op(g, rec, addr);
        if (st != EM_OK) return st;
    }
    const int16_t *y = (const int16_t *)(const void *)buf_at(ctx, g->out_buffer);
    for (uint32_t o = 0; o < n_out; o++) out[o] = y[o];
    return EM_OK;
}

/* in [n_in] int16 samples, out [n_out] int8 (the model's input). */
em_status_t em_graph_stage_step(em_graph_ctx_t *ctx, const int16_t *in, int8_t *out) {
    if (!ctx) return EM_ERR_NULL;
    if (ctx->ready != EM_GRAPH_CTX_READY) return EM_ERR_STATE;
    if (!in || !out) return EM_ERR_NULL;
    const em_graph_t *g = ctx->graph;
    if (in_dtype(g) != EM_DTYPE_S16) return EM_ERR_BUFFER; /* a model: em_graph_step */
    const uint32_t n_in = g->n_in, n_out = g->n_out;
    int16_t *x = (int16_t *)(void *)buf_at(ctx, g->in_buffer);
    for (uint32_t i = 0; i < n_in; i++) x[i] = in[i];
    em_status_t st = run_ops(ctx);
    if (st != EM_OK) return st;
    const int8_t *y = (const int8_t *)buf_at(ctx, g->out_buffer);
    for (uint32_t o = 0; o < n_out; o++) out[o] = y[o];
    return EM_OK;
}
