/* edgemem C runtime: one streaming step of a quantized L2MU (spiking LMU) at a time.
 *
 * C99, freestanding: no malloc, no globals that hold state. All state lives in a caller-provided arena.
 * Integer rules (the same ones edgemem/quant/intops.py implements, bit for bit):
 *   requant(acc, M, s)  = sat32((int64)acc * M + 2^(s-1)) >> s)      M in [2^30, 2^31), s in [1, 62]
 *                         (TFLite's "single rounding": round half up, arithmetic shift)
 *   rshift_round(x, s)  = (x + 2^(s-1)) >> s                          arithmetic shift, s >= 1
 *   satN(x)             = clamp(x, -2^(N-1), 2^(N-1)-1)
 * See docs/architecture.md for the per-step order of operations.
 */
#ifndef EDGEMEM_H
#define EDGEMEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes: every function returns one; each failure has its own ---- */
typedef enum {
    EM_OK = 0,
    EM_ERR_NULL = -1,          /* a required pointer is NULL */
    EM_ERR_TRUNCATED = -2,     /* blob shorter than its header or its declared total size */
    EM_ERR_MAGIC = -3,         /* blob does not start with "EMMB" */
    EM_ERR_VERSION = -4,       /* unsupported format version */
    EM_ERR_CRC = -5,           /* CRC-32 of the payload does not match */
    EM_ERR_KIND = -6,          /* unknown model kind */
    EM_ERR_DIMS = -7,          /* a dimension is zero or above its limit */
    EM_ERR_TENSOR = -8,        /* a required tensor is missing, duplicated, or has the wrong dtype/count */
    EM_ERR_BOUNDS = -9,        /* a tensor lies (partly) outside the blob */
    EM_ERR_ALIGN = -10,        /* a tensor offset is not aligned to its element size */
    EM_ERR_ARENA = -11,        /* arena too small (or misaligned) for this model */
    EM_ERR_PARAM = -12,        /* a quantization parameter is out of range (shift, multiplier, beta, ...) */
    EM_ERR_STATE = -13,        /* context used before em_init succeeded */
    /* graph blobs (version 2, include/em_graph.h and docs/graph.md) */
    EM_ERR_OP = -14,           /* unknown op type, or an op's flags/fields are not those its type defines */
    EM_ERR_ORDER = -15,        /* an op reads a scratch buffer no earlier op of the step wrote (or out is never written) */
    EM_ERR_BUFFER = -16,       /* buffer table entry malformed or overlapping, or a buffer does not match its op */
    EM_ERR_PLAN = -17          /* patch schedule plan malformed, unsafe, or made for another graph */
} em_status_t;

/* ---- model blob format, version 1 (little endian) ----
 * offset size field
 *   0     4  magic "EMMB"
 *   4     2  version (= 1)
 *   6     2  header_size (= 64)
 *   8     4  total_size: bytes of the whole blob
 *  12     4  crc32: CRC-32 (IEEE 802.3, as zlib.crc32) of bytes [header_size, total_size)
 *  16     2  kind (1 = L2MU)
 *  18     2  flags: bit k set = population k uses CuBa (snn.Synaptic) neurons, else LIF (snn.Leaky)
 *  20     2  n_in     (input channels)
 *  22     2  n_u      (encoder neurons = LMU input channels)
 *  24     2  order    (LMU memory order d)
 *  26     2  n_h      (hidden neurons)
 *  28     2  n_out    (classes)
 *  30     2  a_shift  (fixed-point fraction bits of the LMU A matrix)
 *  32     2  n_tensors
 *  34    30  reserved, zero
 *  64  12*n  tensor table: {u16 id, u8 dtype, u8 reserved, u32 offset (from blob start), u32 count (elements)}
 *  ...       tensor data, each offset aligned to its element size
 * n_m (memory neurons) = 2 * n_u * order: the population sees +m and -m (on/off cells).
 */
#define EM_MAGIC 0x424D4D45u /* "EMMB" read as little-endian u32 */
#define EM_FORMAT_VERSION 1u
#define EM_HEADER_SIZE 64u
#define EM_TENSOR_ENTRY_SIZE 12u
#define EM_KIND_L2MU 1u
#define EM_MAX_DIM 1024u

/* S4 and S2 (packed, docs/graph.md "Packed weights") exist only in graph blobs, for FC and CONV1D weights. */
typedef enum { EM_DTYPE_S8 = 1, EM_DTYPE_S16 = 2, EM_DTYPE_S32 = 3, EM_DTYPE_S4 = 4, EM_DTYPE_S2 = 5 } em_dtype_t;

/* Fully connected layers of the L2MU, in step order. in_dim/out_dim per layer:
 * ENC_X n_u x n_in, ENC_H n_u x n_h, ENC_M n_u x n_m, HID_X n_h x n_in, HID_H n_h x n_h, HID_M n_h x n_m, OUT n_out x n_h */
typedef enum { EM_FC_ENC_X, EM_FC_ENC_H, EM_FC_ENC_M, EM_FC_HID_X, EM_FC_HID_H, EM_FC_HID_M, EM_FC_OUT, EM_FC_COUNT } em_fc_id_t;
typedef enum { EM_POP_ENC, EM_POP_MEM, EM_POP_HID, EM_POP_COUNT } em_pop_id_t;

/* Tensor ids in the blob: fc f has W = 4f (s8 [out][in]), BIAS = 4f+1 (s32 [out]), MULT = 4f+2 (s32 [out]),
 * SHIFT = 4f+3 (s8 [out]); population p has BETA = 28+3p, ALPHA = 29+3p, THR = 30+3p (s16 [n] each);
 * LMU A = 37 (s16 [order][order]), LMU B = 38 (s32 [order]). All 39 are required. */
#define EM_TENSOR_FC(f, k) (4 * (f) + (k))
#define EM_TENSOR_POP(p, k) (28 + 3 * (p) + (k))
#define EM_TENSOR_LMU_A 37
#define EM_TENSOR_LMU_B 38
#define EM_TENSOR_COUNT 39

typedef struct {
    const int8_t *w;     /* [out_dim][in_dim] int8, per-output-channel scale */
    const int32_t *bias; /* [out_dim] int32 at scale s_in * s_w[o] */
    const int32_t *mult; /* [out_dim] requant multiplier in [2^30, 2^31) */
    const int8_t *shift; /* [out_dim] requant right shift in [1, 62] */
    uint16_t out_dim, in_dim;
} em_fc_t;

typedef struct {
    const int16_t *beta;  /* [n] membrane decay, Q15 in [0, 32767] */
    const int16_t *alpha; /* [n] synaptic decay, Q15 in [0, 32767] (ignored for LIF) */
    const int16_t *thr;   /* [n] threshold in membrane units (learned; may be <= 0: such a cell fires at rest) */
    uint16_t n;
    uint8_t cuba;         /* 1: current-based synapse (syn state), 0: LIF */
} em_pop_t;

typedef struct {
    uint16_t kind, n_in, n_u, order, n_m, n_h, n_out, a_shift;
    em_fc_t fc[EM_FC_COUNT];
    em_pop_t pop[EM_POP_COUNT];
    const int16_t *lmu_a; /* [order][order] Q(a_shift) */
    const int32_t *lmu_b; /* [order] in memory units, added when the encoder neuron spikes */
} em_model_t;

/* Runtime context: pointers into the caller's arena. */
typedef struct {
    const em_model_t *model;
    int16_t *mem[EM_POP_COUNT]; /* membrane per population, [n] */
    int16_t *syn[EM_POP_COUNT]; /* synaptic current per population, [n] (CuBa only, else NULL) */
    int16_t *lmu_m;             /* LMU memory [n_u][order] */
    int16_t *lmu_scratch;       /* [order] */
    int32_t *cur;               /* [max(n_u, n_m, n_h, n_out)] currents */
    int8_t *spk_h_prev, *spk_m_prev, *spk_u, *spk_m, *spk_h; /* spike vectors */
    uint32_t ready;             /* set by em_init */
} em_ctx_t;

/* Validate a blob and point `model` into it (no copy: the blob must outlive the model). */
em_status_t em_model_parse(em_model_t *model, const uint8_t *blob, size_t size);
/* Check a descriptor (dims, parameter ranges); em_init calls it. */
em_status_t em_model_check(const em_model_t *model);
/* Bytes of arena em_init needs for this model (state + scratch); 0 if the model is invalid.
 * Exporters computing EM_MODEL_ARENA_BYTES use the same sum, each term rounded up to a multiple of 4 (r4):
 *   r4(4*max(n_u, n_m, n_h, n_out))                        currents, int32
 * + r4(2*n_u) + r4(2*n_m) + r4(2*n_h)                      membranes, int16
 * + r4(2*n_p) for each CuBa population p                   synaptic currents, int16
 * + r4(2*n_u*order) + r4(2*order)                          LMU memory and its scratch, int16
 * + r4(n_h) + r4(n_m) + r4(n_u) + r4(n_m) + r4(n_h)        spikes h_prev, m_prev, u, m, h, int8 */
size_t em_arena_size(const em_model_t *model);
/* Lay the context out in `arena` (4-byte aligned, >= em_arena_size) and reset the state. */
em_status_t em_init(em_ctx_t *ctx, const em_model_t *model, void *arena, size_t arena_size);
/* Zero all state (start of a new, independent sequence). */
em_status_t em_reset(em_ctx_t *ctx);
/* One time step: in [n_in] int8 (input scale from the model card), out [n_out] int16 logits. */
em_status_t em_step(em_ctx_t *ctx, const int8_t *in, int16_t *out);
/* Human-readable name of a status code. */
const char *em_status_str(em_status_t status);

#ifdef __cplusplus
}
#endif
#endif /* EDGEMEM_H */
