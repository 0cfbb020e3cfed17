/* edgemem status codes: every runtime and kernel function returns one, and each failure has its own code, so a
 * caller (or a test) can tell which check refused its input. docs/graph.md "Parse order" gives the check behind
 * each code for a blob. em_status_str names a code (src/em_status.c); a firmware that never prints a status does
 * not link it. */
#ifndef EM_STATUS_H
#define EM_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    EM_OK = 0,
    /* a required pointer argument is NULL */
    EM_ERR_NULL = -1,
    /* the blob is shorter than its 64-byte header, than its own total_size, or total_size cannot hold the tables
     * its header counts */
    EM_ERR_TRUNCATED = -2,
    /* the blob does not start with "EMMB" */
    EM_ERR_MAGIC = -3,
    /* the version field is not 2 (the graph format; an older blob must be re-exported), header_size is not 64, or
     * a reserved header byte is not zero (a newer writer's field) */
    EM_ERR_VERSION = -4,
    /* the CRC-32 of bytes [64, total_size) differs from the header's (the blob was damaged) */
    EM_ERR_CRC = -5,
    /* the kind field is not 2 (graph) */
    EM_ERR_KIND = -6,
    /* a dimension is zero or above its limit (n_in, n_out, an op's d, a table count, a kernel's dims) */
    EM_ERR_DIMS = -7,
    /* a tensor table entry is malformed, or a tensor's dtype or element count is not the one its op needs */
    EM_ERR_TENSOR = -8,
    /* a tensor lies (partly) outside the blob, or inside its header and tables */
    EM_ERR_BOUNDS = -9,
    /* a tensor (or the blob) is not aligned to its element size at its actual address */
    EM_ERR_ALIGN = -10,
    /* the arena is smaller than the model's arena_size, or not 4-byte aligned */
    EM_ERR_ARENA = -11,
    /* a quantization parameter is out of range (requant multiplier or shift, decay, LMU shift, ACT function) */
    EM_ERR_PARAM = -12,
    /* a context used before its init succeeded, or a graph that no parse or bind filled */
    EM_ERR_STATE = -13,
    /* an unknown op type, flags or fields an op type does not define, or an op whose kernel this build left out
     * (EM_GRAPH_KERNELS) */
    EM_ERR_OP = -14,
    /* an op reads a scratch buffer no earlier op of the step wrote, or the output buffer is never written */
    EM_ERR_ORDER = -15,
    /* a buffer table entry is malformed, two buffers overlap while both are live, or a buffer's dtype, count or
     * state flag is not the one its op needs */
    EM_ERR_BUFFER = -16,
    /* a patch schedule plan is malformed, unsafe, or made for another graph */
    EM_ERR_PLAN = -17,
    /* an input value cannot be used: a NaN or infinite sensor value (em_sensor_counts_f32) */
    EM_ERR_VALUE = -18
} em_status_t;

/* A short human-readable name of a status code ("unknown status" for a value outside the enum). */
const char *em_status_str(em_status_t status);

#ifdef __cplusplus
}
#endif
#endif /* EM_STATUS_H */
