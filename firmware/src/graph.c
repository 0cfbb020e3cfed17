/* Graph runtime (blob version 2): bind an arena, reset state, and run one step as the op list says.
 * The op table is read in place every step (32 bytes an op, cheap next to any kernel), so a parsed graph costs no
 * RAM beyond em_graph_t; dispatch is a switch (no function pointers: `make stack` can bound every call). */
#include "em_graph.h"
#include "em_kernels.h"
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
 * dtype, count and alignment. */
#define B8(f) ((int8_t *)addr[f])
#define B16(f) ((int16_t *)(void *)addr[f])
#define B32(f) ((int32_t *)(void *)addr[f])
#define T8(k) ((const int8_t *)tensor_at(g, op->t[k]))
#define TU8(k) ((const uint8_t *)tensor_at(g, op->t[k]))
#define T16(k) ((const int16_t *)tensor_at(g, op->t[k]))
#define T32(k) ((const int32_t *)tensor_at(g, op->t[k]))

em_status_t em_graph_run_op(const em_graph_t *g, const em_op_rec_t *op, uint8_t *const addr[EM_F_COUNT]) {
    const em_out_mode_t mode = (op->flags & EM_GRAPH_OPF_ACC) ? EM_OUT_ACC : EM_OUT_ASSIGN;
    const int n = op->d[0];
    const int k = em_graph_op_kernel(g->buffers, g->tensors, op);
    /* A kernel left out of this build (EM_GRAPH_KERNELS) is refused by the parser already. BUILT(K) is a
     * compile-time constant in each case, so the compiler drops that call and --gc-sections the kernel. */
#define BUILT(K) if (!((EM_GRAPH_KERNELS >> (K)) & 1u)) return EM_ERR_OP
    switch (k) {
    case EM_K_FC_S8:
        BUILT(EM_K_FC_S8);
        return em_fc_s8_mode(B8(EM_F_IN0), T8(0), T32(1), T32(2), T8(3), n, op->d[1], mode, B32(EM_F_OUT));
    case EM_K_FC_S16:
        BUILT(EM_K_FC_S16);
        return em_fc_s16(B16(EM_F_IN0), T8(0), T32(1), T32(2), T8(3), n, op->d[1], mode, B32(EM_F_OUT));
    case EM_K_FC_S8_PACKED: /* packed S4 / S2 weights (rows byte-aligned: checked by the parser) */
        BUILT(EM_K_FC_S8_PACKED);
        return em_fc_s8_packed(B8(EM_F_IN0), TU8(0), tensor_wbits(g, op->t[0]), T32(1), T32(2), T8(3), n, op->d[1],
                               mode, B32(EM_F_OUT));
    case EM_K_FC_S16_PACKED:
        BUILT(EM_K_FC_S16_PACKED);
        return em_fc_s16_packed(B16(EM_F_IN0), TU8(0), tensor_wbits(g, op->t[0]), T32(1), T32(2), T8(3), n,
                                op->d[1], mode, B32(EM_F_OUT));
    case EM_K_FC_S8_EVENTS:
        BUILT(EM_K_FC_S8_EVENTS);
        return em_fc_s8_events(B8(EM_F_IN0), T8(0), T32(1), T32(2), T8(3), n, op->d[1], mode, B16(EM_F_SCRATCH),
                               B32(EM_F_OUT));
    case EM_K_FC_S8_PACKED_EVENTS:
        BUILT(EM_K_FC_S8_PACKED_EVENTS);
        return em_fc_s8_packed_events(B8(EM_F_IN0), TU8(0), tensor_wbits(g, op->t[0]), T32(1), T32(2), T8(3), n,
                                      op->d[1], mode, B16(EM_F_SCRATCH), B32(EM_F_OUT));
    case EM_K_CONV1D_S8:
    case EM_K_CONV1D_PACKED: {
        const int kern = op->d[2];
        if (k == EM_K_CONV1D_S8) {
            BUILT(EM_K_CONV1D_S8);
        } else {
            BUILT(EM_K_CONV1D_PACKED);
        }
        int8_t *ring = kern > 1 ? B8(EM_F_STATE0) : NULL;
        int32_t *head = kern > 1 ? B32(EM_F_STATE1) : NULL;
        if (k == EM_K_CONV1D_PACKED)
            return em_conv1d_causal_packed(B8(EM_F_IN0), ring, head, TU8(0), tensor_wbits(g, op->t[0]), T32(1),
                                           T32(2), T8(3), n, op->d[1], kern, mode, B32(EM_F_OUT));
        return em_conv1d_causal_s8(B8(EM_F_IN0), ring, head, T8(0), T32(1), T32(2), T8(3), n, op->d[1], kern, mode,
                                   B32(EM_F_OUT));
    }
    case EM_K_ACT_S8: {
        BUILT(EM_K_ACT_S8);
        const em_act_t func = (em_act_t)((op->flags >> 1) & 3u);
        return em_act_s32_s8(B32(EM_F_IN0), n, func, func == EM_ACT_LUT ? T8(0) : NULL, B8(EM_F_OUT));
    }
    case EM_K_ACT_S16:
        BUILT(EM_K_ACT_S16);
        return em_act_s32_s16(B32(EM_F_IN0), n, (em_act_t)((op->flags >> 1) & 3u), B16(EM_F_OUT));
    case EM_K_LIF: {
        BUILT(EM_K_LIF);
        const int cuba = (op->flags & EM_GRAPH_OPF_CUBA) != 0;
        return em_lif_s16(B32(EM_F_IN0), B16(EM_F_STATE0), cuba ? B16(EM_F_STATE1) : NULL, T16(0),
                          cuba ? T16(1) : NULL, T16(2), n, B8(EM_F_OUT));
    }
    case EM_K_LEAKY:
        BUILT(EM_K_LEAKY);
        return em_leaky_s16(B32(EM_F_IN0), T16(0), n, B16(EM_F_OUT));
    case EM_K_LMU:
        BUILT(EM_K_LMU);
        return em_lmu_s8_s16(B16(EM_F_STATE0), B8(EM_F_IN0), T16(0), op->d[2], T32(1), op->d[3], n, op->d[1],
                             B16(EM_F_SCRATCH));
    case EM_K_ADD_S8:
        BUILT(EM_K_ADD_S8);
        return em_add_requant_s8(B8(EM_F_IN0), n, T32(0)[0], T8(1)[0], mode, B32(EM_F_OUT));
    case EM_K_ADD_S16:
        BUILT(EM_K_ADD_S16);
        return em_add_requant_s16(B16(EM_F_IN0), n, T32(0)[0], T8(1)[0], mode, B32(EM_F_OUT));
    case EM_K_ONOFF:
        BUILT(EM_K_ONOFF);
        return em_onoff_s16(B16(EM_F_IN0), n, mode, B32(EM_F_OUT));
    case EM_K_SPIKE:
        BUILT(EM_K_SPIKE);
        return em_spike_s16(B16(EM_F_IN0), T16(0), n, B8(EM_F_OUT));
    default:
        return EM_ERR_OP; /* unreachable for a parsed graph */
    }
#undef BUILT
}

/* in [n_in] int8, out [n_out] int16. */
em_status_t em_graph_step(em_graph_ctx_t *ctx, const int8_t *in, int16_t *out) {
    if (!ctx) return EM_ERR_NULL;
    if (ctx->ready != EM_GRAPH_CTX_READY) return EM_ERR_STATE;
    if (!in || !out) return EM_ERR_NULL;
    const em_graph_t *g = ctx->graph;
    int8_t *x = (int8_t *)buf_at(ctx, g->in_buffer);
    for (uint32_t i = 0; i < g->n_in; i++) x[i] = in[i];
    for (uint32_t i = 0; i < g->n_ops; i++) {
        em_op_rec_t op;
        em_graph_read_op(g->ops, i, &op);
        uint8_t *addr[EM_F_COUNT];
        for (int f = 0; f < EM_F_COUNT; f++) addr[f] = op.buf[f] == EM_GRAPH_NONE ? NULL : buf_at(ctx, op.buf[f]);
        em_status_t st = em_graph_run_op(g, &op, addr);
        if (st != EM_OK) return st;
    }
    const int16_t *y = (const int16_t *)(const void *)buf_at(ctx, g->out_buffer);
    for (uint32_t o = 0; o < g->n_out; o++) out[o] = y[o];
    return EM_OK;
}
