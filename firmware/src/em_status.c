/* Names of the status codes (include/em_status.h). In its own file so that a firmware that never prints a status
 * links none of these strings. */
#include "em_status.h"

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
    case EM_ERR_VALUE: return "input value not a number or infinite";
    }
    return "unknown status";
}
