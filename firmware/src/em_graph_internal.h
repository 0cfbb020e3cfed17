/* Internal to the graph runtime (graph_blob.c, graph_bind.c, graph.c, graph_patch.c): little-endian table readers,
 * the decoded op record, the kernel of an op. */
#ifndef EM_GRAPH_INTERNAL_H
#define EM_GRAPH_INTERNAL_H

#include "em_graph.h"

#define EM_GRAPH_VALID 0x47525056u /* "VPRG": set in em_graph_t.valid by a successful parse or bind */

/* Byte assembly: no alignment needed, no unaligned casts, host endianness irrelevant. */
static inline uint32_t em_rd_u16(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
static inline uint32_t em_rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Point g into a blob whose header was checked (or is trusted): the header's counts and sizes, the three tables
 * in place (docs/graph.md "Blob layout"), and the mark em_graph_init looks for. The one fill of em_graph_parse and
 * em_graph_bind. */
static inline void em_graph_set(em_graph_t *g, const uint8_t *blob) {
    const uint32_t n_b = em_rd_u16(blob + 22), n_op = em_rd_u16(blob + 24);
    g->blob = blob;
    g->buffers = blob + EM_HEADER_SIZE;
    g->ops = g->buffers + EM_GRAPH_BUFFER_ENTRY_SIZE * n_b;
    g->tensors = g->ops + EM_GRAPH_OP_SIZE * n_op;
    g->total_size = em_rd_u32(blob + 8);
    g->arena_size = em_rd_u32(blob + 32);
    g->n_in = (uint16_t)em_rd_u16(blob + 18);
    g->n_out = (uint16_t)em_rd_u16(blob + 20);
    g->n_buffers = (uint16_t)n_b;
    g->n_ops = (uint16_t)n_op;
    g->n_tensors = (uint16_t)em_rd_u16(blob + 26);
    g->in_buffer = (uint16_t)em_rd_u16(blob + 28);
    g->out_buffer = (uint16_t)em_rd_u16(blob + 30);
    g->valid = EM_GRAPH_VALID;
}

/* Buffer fields of an op record, in record order (after type, flags). */
enum { EM_F_IN0, EM_F_IN1, EM_F_OUT, EM_F_STATE0, EM_F_STATE1, EM_F_SCRATCH, EM_F_COUNT };

typedef struct {
    uint16_t type, flags;
    uint16_t buf[EM_F_COUNT]; /* buffer indices or EM_GRAPH_NONE */
    uint16_t d[4];
    uint16_t t[4];            /* tensor indices or EM_GRAPH_NONE */
} em_op_rec_t;

/* Op record i of the table at `ops` (32 bytes: 16 x u16). */
static inline void em_graph_read_op(const uint8_t *ops, uint32_t i, em_op_rec_t *op) {
    const uint8_t *r = ops + (size_t)EM_GRAPH_OP_SIZE * i;
    op->type = (uint16_t)em_rd_u16(r);
    op->flags = (uint16_t)em_rd_u16(r + 2);
    for (int k = 0; k < EM_F_COUNT; k++) op->buf[k] = (uint16_t)em_rd_u16(r + 4 + 2 * k);
    for (int k = 0; k < 4; k++) op->d[k] = (uint16_t)em_rd_u16(r + 16 + 2 * k);
    for (int k = 0; k < 4; k++) op->t[k] = (uint16_t)em_rd_u16(r + 24 + 2 * k);
}

static inline uint32_t em_graph_elsize(uint32_t dtype) {
    return dtype == EM_DTYPE_S8 ? 1u : dtype == EM_DTYPE_S16 ? 2u : 4u;
}

/* Packed tensor dtypes (S4, S2): elements per byte; 1 for the whole-byte dtypes. */
static inline uint32_t em_graph_per_byte(uint32_t dtype) {
    return dtype == EM_DTYPE_S4 ? 2u : dtype == EM_DTYPE_S2 ? 4u : 1u;
}
static inline int em_graph_packed(uint32_t dtype) { return dtype == EM_DTYPE_S4 || dtype == EM_DTYPE_S2; }
/* Blob bytes of a tensor of `count` elements (64-bit: count * 4 may exceed uint32). */
static inline uint64_t em_graph_tensor_bytes(uint32_t dtype, uint32_t count) {
    if (em_graph_packed(dtype)) {
        const uint32_t per = em_graph_per_byte(dtype);
        return ((uint64_t)count + per - 1u) / per;
    }
    return (uint64_t)count * em_graph_elsize(dtype);
}
/* Alignment a tensor needs: its element size; packed tensors are read byte by byte. */
static inline uint32_t em_graph_tensor_align(uint32_t dtype) {
    return em_graph_packed(dtype) ? 1u : em_graph_elsize(dtype);
}

/* The kernel variant of an op whose fields passed the op checks: its type and flags (FC EVENTS), the dtype of its
 * in0 buffer (FC, ADD),
 * its out buffer (ACT) and its weight tensor t0 (FC, CONV1D); -1 for an unknown type. One rule for the parser's
 * EM_GRAPH_KERNELS check and the dispatch. */
static inline int em_graph_kernel(uint32_t type, uint32_t flags, uint32_t in_dtype, uint32_t out_dtype,
                                  uint32_t w_dtype) {
    const int packed = em_graph_packed(w_dtype);
    switch (type) {
    case EM_OP_FC:
        if (flags & EM_GRAPH_OPF_EVENTS) return packed ? EM_K_FC_S8_PACKED_EVENTS : EM_K_FC_S8_EVENTS;
        if (in_dtype == EM_DTYPE_S8) return packed ? EM_K_FC_S8_PACKED : EM_K_FC_S8;
        return packed ? EM_K_FC_S16_PACKED : EM_K_FC_S16;
    case EM_OP_CONV1D: return packed ? EM_K_CONV1D_PACKED : EM_K_CONV1D_S8;
    case EM_OP_ACT: return out_dtype == EM_DTYPE_S8 ? EM_K_ACT_S8 : EM_K_ACT_S16;
    case EM_OP_LIF: return EM_K_LIF;
    case EM_OP_LEAKY: return EM_K_LEAKY;
    case EM_OP_LMU: return EM_K_LMU; /* LEGENDRE too: the LMU case dispatches it (em_graph_op_kernel's note) */
    case EM_OP_ADD: return in_dtype == EM_DTYPE_S8 ? EM_K_ADD_S8 : EM_K_ADD_S16;
    case EM_OP_ONOFF: return EM_K_ONOFF;
    case EM_OP_SPIKE: return EM_K_SPIKE;
    default: return -1;
    }
}
/* em_graph_kernel with the input stages' ops: the parser's kernel (EM_GRAPH_KERNELS checks). The model step
 * dispatches on em_graph_kernel alone and sends every other op to the stage dispatch: with the two more cases in
 * its switch gcc lowers the step's dispatch differently, and every model op then costs ~10 more instructions
 * (measured on the M4). */
static inline int em_graph_kernel_any(uint32_t type, uint32_t flags, uint32_t in_dtype, uint32_t out_dtype,
                                      uint32_t w_dtype) {
    if (type == EM_OP_SENSOR) return EM_K_SENSOR;
    if (type == EM_OP_LOGMEL) return EM_K_LOGMEL;
    return em_graph_kernel(type, flags, in_dtype, out_dtype, w_dtype);
}
static inline int em_graph_kernel_built(int k) { return k >= 0 && ((EM_GRAPH_KERNELS >> (unsigned)k) & 1u) != 0; }

/* Fields of op record `rec` (32 bytes in the op table: 16 x u16, docs/graph.md), read in place. */
static inline uint32_t em_rec_type(const uint8_t *rec) { return em_rd_u16(rec); }
static inline uint32_t em_rec_flags(const uint8_t *rec) { return em_rd_u16(rec + 2); }
static inline uint32_t em_rec_buf(const uint8_t *rec, int f) { return em_rd_u16(rec + 4 + 2 * f); }
static inline uint32_t em_rec_d(const uint8_t *rec, int k) { return em_rd_u16(rec + 16 + 2 * k); }
static inline uint32_t em_rec_t(const uint8_t *rec, int k) { return em_rd_u16(rec + 24 + 2 * k); }

/* The model kernel of op record `rec` in a graph's tables (fields already checked); -1 for an input stage's op. */
static inline int em_graph_op_model_kernel(const uint8_t *buffers, const uint8_t *tensors, const uint8_t *rec) {
    const uint32_t type = em_rec_type(rec), in0 = em_rec_buf(rec, EM_F_IN0), out = em_rec_buf(rec, EM_F_OUT);
    const uint32_t t0 = em_rec_t(rec, 0);
    const uint32_t in_dt = in0 == EM_GRAPH_NONE ? 0u : buffers[(size_t)EM_GRAPH_BUFFER_ENTRY_SIZE * in0];
    const uint32_t out_dt = out == EM_GRAPH_NONE ? 0u : buffers[(size_t)EM_GRAPH_BUFFER_ENTRY_SIZE * out];
    const uint32_t w_dt = (type == EM_OP_FC || type == EM_OP_CONV1D) && t0 != EM_GRAPH_NONE
                          ? tensors[(size_t)EM_GRAPH_TENSOR_ENTRY_SIZE * t0 + 2] : 0u;
    return em_graph_kernel(type, em_rec_flags(rec), in_dt, out_dt, w_dt);
}
/* The kernel of op record `rec`, input stages' ops included (the parser's EM_GRAPH_KERNELS check, the stage
 * dispatch). */
static inline int em_graph_op_kernel(const uint8_t *buffers, const uint8_t *tensors, const uint8_t *rec) {
    const uint32_t type = em_rec_type(rec);
    if (type == EM_OP_SENSOR || type == EM_OP_LOGMEL) return em_graph_kernel_any(type, 0, 0, 0, 0);
    /* A LEGENDRE LMU needs kernel LMU_LEGENDRE (a ZOH-only build links none of it), but the step runs it from the
     * LMU case: a case of its own in the dispatch switch cost every model step ~100 instructions on the M4 */
    if (type == EM_OP_LMU && (em_rec_flags(rec) & EM_GRAPH_OPF_LEGENDRE)) return EM_K_LMU_LEGENDRE;
    return em_graph_op_model_kernel(buffers, tensors, rec);
}

/* Run op record `rec` of a parsed (or bound) graph with its buffer fields at addr[field] (NULL where the field is
 * NONE): the one dispatch that the streaming step (graph.c) and the patch schedule (graph_patch.c) share. */
em_status_t em_graph_run_op(const em_graph_t *g, const uint8_t *rec, uint8_t *const addr[EM_F_COUNT]);

#endif /* EM_GRAPH_INTERNAL_H */
