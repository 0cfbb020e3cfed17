/* edgemem graph runtime: model blob version 2, any streaming model as a list of integer ops over buffers.
 *
 * Format, op semantics and the parse order (each check with its status) are in docs/graph.md; this runtime
 * follows it exactly. C99, freestanding: no malloc, no globals that hold state. The graph points into the blob
 * (no copy: the blob must outlive it); all state and scratch live in the caller's arena, at the offsets the
 * exporter chose (header arena_size bytes).
 *
 *   em_graph_t g;  em_graph_ctx_t ctx;
 *   em_graph_parse(&g, blob, blob_size);                        // validates everything, once
 *   em_graph_init(&ctx, &g, arena, em_graph_arena_size(&g));    // arena 4-byte aligned; zeroes the state
 *   for (each time step) em_graph_step(&ctx, in_s8 [n_in], out_s16 [n_out]);
 */
#ifndef EM_GRAPH_H
#define EM_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "edgemem.h" /* em_status_t (EM_ERR_OP, EM_ERR_ORDER, EM_ERR_BUFFER are the graph's own), em_dtype_t */

#ifdef __cplusplus
extern "C" {
#endif

#define EM_GRAPH_VERSION 2u
#define EM_KIND_GRAPH 2u
#define EM_GRAPH_NONE 0xFFFFu          /* unused buffer or tensor field */
#define EM_GRAPH_MAX_BUFFERS 256u
#define EM_GRAPH_MAX_OPS 256u
#define EM_GRAPH_MAX_TENSORS 1024u
#define EM_GRAPH_MAX_LMU_CELLS 4096u   /* n_u * order */
#define EM_GRAPH_MAX_KERNEL 16u        /* CONV1D k */
#define EM_GRAPH_BUFFER_ENTRY_SIZE 12u /* {u8 dtype, u8 flags, u16 0, u32 count, u32 arena offset} */
#define EM_GRAPH_OP_SIZE 32u           /* 16 x u16: type, flags, in0, in1, out, state0, state1, scratch, d0..d3, t0..t3 */
#define EM_GRAPH_TENSOR_ENTRY_SIZE 12u /* {u16 id, u8 dtype, u8 0, u32 offset, u32 count} */
#define EM_GRAPH_BUF_STATE 1u          /* buffer flag: persists across steps, zeroed by reset */
#define EM_GRAPH_OPF_ACC 1u            /* FC, CONV1D, ADD, ONOFF: add into out (int32 saturation) */
#define EM_GRAPH_OPF_CUBA 2u           /* LIF: current-based synapse (state1 = syn) */
#define EM_GRAPH_OPF_EVENTS 8u         /* FC: event-driven (s8 input, scratch = s16 [d_in] index list) */

/* Kernel variants an op can run on (an op's type and its buffer/weight dtypes pick one: em_graph_kernel). A
 * firmware compiled with -DEM_GRAPH_KERNELS=<mask of EM_GRAPH_KERNEL_BIT(k)> links only those kernels, as TFLM's
 * MicroMutableOpResolver does; model.h states the mask its model needs (EM_MODEL_GRAPH_KERNELS), and the parser
 * refuses a blob needing any other (EM_ERR_OP). Default: all. */
typedef enum {
    EM_K_FC_S8 = 0,
    EM_K_FC_S16 = 1,
    EM_K_FC_S8_PACKED = 2,
    EM_K_FC_S16_PACKED = 3,
    EM_K_CONV1D_S8 = 4,
    EM_K_CONV1D_PACKED = 5,
    EM_K_ACT_S8 = 6,
    EM_K_ACT_S16 = 7,
    EM_K_LIF = 8,
    EM_K_LEAKY = 9,
    EM_K_LMU = 10,
    EM_K_ADD_S8 = 11,
    EM_K_ADD_S16 = 12,
    EM_K_ONOFF = 13,
    EM_K_SPIKE = 14,
    EM_K_FC_S8_EVENTS = 15,
    EM_K_FC_S8_PACKED_EVENTS = 16,
    EM_K_COUNT = 17
} em_graph_kernel_t;
#define EM_GRAPH_KERNEL_BIT(k) (1u << (k))
#ifndef EM_GRAPH_KERNELS
#define EM_GRAPH_KERNELS ((1u << EM_K_COUNT) - 1u)
#endif

typedef enum {
    EM_OP_FC = 1,
    EM_OP_CONV1D = 2,
    EM_OP_ACT = 3,
    EM_OP_LIF = 4,
    EM_OP_LEAKY = 5,
    EM_OP_LMU = 6,
    EM_OP_ADD = 7,
    EM_OP_ONOFF = 8,
    EM_OP_SPIKE = 9 /* out = mem > thr: a LIF's spikes recomputed from its membrane */
} em_op_type_t;

/* A validated graph blob: header fields and the three tables, read in place. Set only by em_graph_parse. */
typedef struct {
    const uint8_t *blob;    /* the whole blob (tensor offsets are from here) */
    const uint8_t *buffers; /* buffer table, n_buffers x 12 bytes */
    const uint8_t *ops;     /* op table, n_ops x 32 bytes */
    const uint8_t *tensors; /* tensor table, n_tensors x 12 bytes */
    uint32_t total_size, arena_size;
    uint16_t n_in, n_out, n_buffers, n_ops, n_tensors, in_buffer, out_buffer;
    uint32_t valid; /* EM_GRAPH_VALID after a successful parse */
} em_graph_t;

/* Runtime context: the graph and the caller's arena. */
typedef struct {
    const em_graph_t *graph;
    uint8_t *arena;
    uint32_t ready; /* set by em_graph_init */
} em_graph_ctx_t;

/* Validate a version-2 blob (blob 4-byte aligned) in the order of docs/graph.md and point `g` into it.
 * On failure *g is left untouched. A version-1 blob gives EM_ERR_VERSION. */
em_status_t em_graph_parse(em_graph_t *g, const uint8_t *blob, size_t size);
/* Bytes of arena the graph needs (the header's arena_size); 0 if g is NULL or not a parsed graph. */
size_t em_graph_arena_size(const em_graph_t *g);
/* Bind `arena` (4-byte aligned, >= em_graph_arena_size bytes, else EM_ERR_ARENA) and zero every state buffer.
 * ctx keeps pointers to g and arena (and g into the blob): all three must outlive ctx. EM_ERR_STATE if g is not
 * from a successful em_graph_parse. */
em_status_t em_graph_init(em_graph_ctx_t *ctx, const em_graph_t *g, void *arena, size_t arena_size);
/* Zero every state buffer (start of a new, independent sequence). */
em_status_t em_graph_reset(em_graph_ctx_t *ctx);
/* One time step: in [n_in] int8 into in_buffer, every op in list order, out_buffer [n_out] int16 to out. */
em_status_t em_graph_step(em_graph_ctx_t *ctx, const int8_t *in, int16_t *out);

/* ---- Patch schedule (docs/graph.md "Patch schedule"; MCUNetV2's patch-based inference over time) ----
 * The front stage (ops 0 .. stage_ops-1: CONV1D, ACT, FC, ADD, ONOFF) runs op by op over a patch of up to P frames,
 * each op also recomputing the `lead` frames before the patch that later convs need (the halo) instead of keeping
 * conv rings; the rest of the graph then runs one frame at a time. Buffer placement comes from a plan blob written
 * by `edgemem plan --patch-out` (like TFLM's offline-planned arena); the parser checks it is safe for this graph.
 *
 *   em_graph_patch_t p;  em_graph_patch_ctx_t pc;
 *   em_graph_patch_parse(&p, &g, plan_blob, plan_size);
 *   em_graph_patch_init(&pc, &p, arena, em_graph_patch_arena_size(&p));
 *   for (each block of n <= P frames) em_graph_patch_run(&pc, in_s8 [n][n_in], n, out_s16 [n][n_out]);
 * Outputs equal em_graph_step's frame for frame (same integer ops; the halo frames before the first are zero, as
 * the rings are after a reset). */
#define EM_PATCH_HEADER_SIZE 32u
#define EM_PATCH_ENTRY_SIZE 8u  /* {u32 arena offset, u16 frames, u16 lead} per graph buffer */
#define EM_PATCH_MAX_FRAMES 1024u

typedef struct {
    const em_graph_t *graph;
    const uint8_t *table; /* n_buffers x 8 bytes, in the plan blob */
    uint32_t arena_size;
    uint16_t patch_frames, stage_ops;
    uint32_t valid;
} em_graph_patch_t;

typedef struct {
    const em_graph_patch_t *plan;
    uint8_t *arena;
    uint32_t frames_seen; /* since the last reset, saturating: frames before it are the zero padding */
    uint32_t ready;
} em_graph_patch_ctx_t;

/* Validate a plan blob (4-byte aligned not required) against a parsed graph: size, magic, version, CRC, the
 * graph's CRC, dims, stage op types, then every table rule (EM_ERR_PLAN). On failure *p is left untouched. */
em_status_t em_graph_patch_parse(em_graph_patch_t *p, const em_graph_t *g, const uint8_t *blob, size_t size);
/* Arena bytes the patch schedule needs (the plan's arena_size); 0 if p is NULL or not parsed. */
size_t em_graph_patch_arena_size(const em_graph_patch_t *p);
/* Bind an arena (4-byte aligned, >= em_graph_patch_arena_size) and zero the state and the input history. */
em_status_t em_graph_patch_init(em_graph_patch_ctx_t *c, const em_graph_patch_t *p, void *arena, size_t arena_size);
em_status_t em_graph_patch_reset(em_graph_patch_ctx_t *c);
/* n frames (1 <= n <= P, else EM_ERR_DIMS): in [n][n_in] int8 -> out [n][n_out] int16. */
em_status_t em_graph_patch_run(em_graph_patch_ctx_t *c, const int8_t *in, int n, int16_t *out);

#ifdef __cplusplus
}
#endif
#endif /* EM_GRAPH_H */
