/* edgemem graph runtime: model blob version 2, any streaming model as a list of integer ops over buffers.
 *
 * Format, op semantics and the parse order (each check with its status) are in docs/graph.md; this runtime
 * follows it exactly. C99, freestanding: no malloc, no globals that hold state. The graph points into the blob
 * (no copy: the blob must outlive it); all state and scratch live in the caller's arena, at the offsets the
 * exporter chose (header arena_size bytes).
 *
 * Two ways to get an em_graph_t, then the same init/step:
 *   em_graph_parse(&g, blob, size)   a blob loaded at run time (file, radio, another flash slot): every check of
 *                                    docs/graph.md, so no blob can make the runtime read or write out of bounds
 *                                    (src/graph_blob.c);
 *   em_graph_bind(&g, blob, size)    the const blob the exporter wrote into model.c and the firmware compiled in:
 *                                    header identity, sizes and CRC-32 only (what it trusts and why: below), so a
 *                                    firmware that only binds links no parser (src/graph_bind.c).
 *
 *   em_graph_t g;  em_graph_ctx_t ctx;
 *   em_graph_bind(&g, em_model_blob, EM_MODEL_BLOB_SIZE);       // or em_graph_parse for a loaded blob
 *   em_graph_init(&ctx, &g, arena, em_graph_arena_size(&g));    // arena 4-byte aligned; zeroes the state
 *   for (each time step) em_graph_step(&ctx, in_s8 [n_in], out_s16 [n_out]);
 */
#ifndef EM_GRAPH_H
#define EM_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "em_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EM_MAGIC 0x424D4D45u /* "EMMB" read as a little-endian u32 */
#define EM_GRAPH_VERSION 2u
#define EM_HEADER_SIZE 64u
#define EM_MAX_DIM 1024u /* largest n_in, n_out and op dimension */
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
#define EM_GRAPH_OPF_ACC 1u            /* FC, CONV1D, ADD, ONOFF: out = sat16(out + sat16(r)), else sat16(r) */
#define EM_GRAPH_OPF_CUBA 2u           /* LIF: current-based synapse (state1 = syn) */
#define EM_GRAPH_OPF_EVENTS 8u         /* FC: event-driven (s8 input, scratch = s16 [d_in] index list) */
#define EM_GRAPH_OPF_LEGENDRE 16u      /* LMU: A has the Legendre structure (checked at parse): O(order) a row */

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
    EM_K_SENSOR = 17,
    EM_K_LOGMEL = 18,
    EM_K_LMU_LEGENDRE = 19, /* an LMU op flagged LEGENDRE (O(order) a row): a ZOH-only build links none of it */
    EM_K_COUNT = 20
} em_graph_kernel_t;
#define EM_GRAPH_KERNEL_BIT(k) (1u << (k))
#ifndef EM_GRAPH_KERNELS
#define EM_GRAPH_KERNELS ((1u << EM_K_COUNT) - 1u)
#endif

/* Element types of buffers (S8, S16, S32) and tensors (also S4 and S2: packed FC / CONV1D weights, docs/graph.md
 * "Packed weights"). */
typedef enum { EM_DTYPE_S8 = 1, EM_DTYPE_S16 = 2, EM_DTYPE_S32 = 3, EM_DTYPE_S4 = 4, EM_DTYPE_S2 = 5 } em_dtype_t;

typedef enum {
    EM_OP_FC = 1,
    EM_OP_CONV1D = 2,
    EM_OP_ACT = 3,
    EM_OP_LIF = 4,
    EM_OP_LEAKY = 5,
    EM_OP_LMU = 6,
    EM_OP_ADD = 7,
    EM_OP_ONOFF = 8,
    EM_OP_SPIKE = 9, /* out = mem > thr: a LIF's spikes recomputed from its membrane */
    EM_OP_SENSOR = 10, /* input stage: int16 sensor counts [D][C] -> the model's int8 input [C] */
    EM_OP_LOGMEL = 11  /* input stage: int16 PCM [hop] -> int8 log-mel features [n_mels] */
} em_op_type_t;
#define EM_OP_LAST EM_OP_LOGMEL

/* A graph blob's header fields and its three tables, read in place. Filled by em_graph_parse or em_graph_bind. */
typedef struct {
    const uint8_t *blob;    /* the whole blob (tensor offsets are from here) */
    const uint8_t *buffers; /* buffer table, n_buffers x 12 bytes */
    const uint8_t *ops;     /* op table, n_ops x 32 bytes */
    const uint8_t *tensors; /* tensor table, n_tensors x 12 bytes */
    uint32_t total_size, arena_size;
    uint16_t n_in, n_out, n_buffers, n_ops, n_tensors, in_buffer, out_buffer;
    uint32_t valid; /* set by a successful parse or bind */
} em_graph_t;

/* Runtime context: the graph and the caller's arena. */
typedef struct {
    const em_graph_t *graph;
    uint8_t *arena;
    uint32_t ready; /* set by em_graph_init */
} em_graph_ctx_t;

/* Validate a blob (4-byte aligned) in the order of docs/graph.md and point `g` into it. On failure *g is left
 * untouched. An older blob format gives EM_ERR_VERSION (unless its size check fails first). */
em_status_t em_graph_parse(em_graph_t *g, const uint8_t *blob, size_t size);
/* Point `g` into a compiled-in blob: the const array of the exporter's model.c (`edgemem export --to c`).
 * Checks, in this order: g and blob not NULL (EM_ERR_NULL); size >= 64 (EM_ERR_TRUNCATED); blob 4-byte aligned
 * (EM_ERR_ALIGN); magic "EMMB" (EM_ERR_MAGIC); version 2 and header_size 64 (EM_ERR_VERSION); total_size in
 * [64, size] (EM_ERR_TRUNCATED); CRC-32 of bytes [64, total_size) (EM_ERR_CRC). On failure *g is left untouched.
 * Trusted, not checked: everything else em_graph_parse checks (kind, header dims, the buffer, op and tensor
 * tables, tensor extents and alignment, parameter ranges). Why: the exporter writes model.c only for a blob that
 * edgemem's Python parser (parse_graph_blob: the same checks as em_graph_parse, in the same order) accepted, and
 * a matching CRC says these are those bytes, unchanged on their way into flash. The alignment check covers the
 * one thing the exporter cannot promise: where the compiler put the array. A blob from anywhere else (a file, a
 * radio, a flash slot written at run time) must go through em_graph_parse: a bound blob the exporter did not
 * write can make em_graph_step read and write outside the blob and the arena. Still checked at run time: an op
 * whose kernel this build left out (EM_GRAPH_KERNELS) makes em_graph_step return EM_ERR_OP, and every kernel
 * checks its own arguments (em_kernels.h). */
em_status_t em_graph_bind(em_graph_t *g, const uint8_t *blob, size_t size);
/* 1 if g is an input stage (int16 samples in, int8 out: em_graph_stage_step), 0 if a model (em_graph_step), -1 if
 * g is NULL or neither parsed nor bound. */
int em_graph_is_input_stage(const em_graph_t *g);
/* Bytes of arena the graph needs (the header's arena_size); 0 if g is NULL or neither parsed nor bound. */
size_t em_graph_arena_size(const em_graph_t *g);
/* Bind `arena` (4-byte aligned, >= em_graph_arena_size bytes, else EM_ERR_ARENA) and zero every state buffer.
 * ctx keeps pointers to g and arena (and g into the blob): all three must outlive ctx. EM_ERR_STATE if g is not
 * from a successful em_graph_parse or em_graph_bind. */
em_status_t em_graph_init(em_graph_ctx_t *ctx, const em_graph_t *g, void *arena, size_t arena_size);
/* Zero every state buffer (start of a new, independent sequence). */
em_status_t em_graph_reset(em_graph_ctx_t *ctx);
/* One time step: in [n_in] int8 into in_buffer, every op in list order, out_buffer [n_out] int16 to out.
 * EM_ERR_BUFFER for an input stage (its input is int16: em_graph_stage_step). */
em_status_t em_graph_step(em_graph_ctx_t *ctx, const int8_t *in, int16_t *out);
/* One step of an input stage (docs/graph.md "Input stages": a graph whose in_buffer is int16 and out_buffer int8,
 * e.g. SENSOR or LOGMEL): raw samples in [n_in] int16, the model's int8 input out [n_out], which em_graph_step of
 * the model graph then takes. EM_ERR_BUFFER for a model graph (int8 in: em_graph_step). */
em_status_t em_graph_stage_step(em_graph_ctx_t *ctx, const int16_t *in, int8_t *out);
/* Float sensor values (physical units) -> int16 counts, as edgemem.graph.sensor.counts_from_float:
 *   y = x * inv_lsb[c] (one IEEE single multiply), counts = sat16(round half away from zero (y))
 * x [samples][channels] float, inv_lsb [channels] (model.h EM_MODEL_SENSOR_INV_LSB), counts [samples][channels].
 * EM_ERR_VALUE if any x is NaN or infinite (checked before anything is written); EM_ERR_DIMS for samples or
 * channels < 1. */
em_status_t em_sensor_counts_f32(const float *x, int samples, int channels, const float *inv_lsb, int16_t *counts);


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
