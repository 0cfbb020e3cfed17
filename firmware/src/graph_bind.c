/* em_graph_bind: a compiled-in graph blob (the exporter's model.c) without the parser. What it checks, what it
 * trusts and why: include/em_graph.h. In its own file so a firmware that only binds links neither graph_blob.c's
 * checks nor anything they pull in (64-bit division for packed tensor sizes, the overlap walk). */
#include "em_graph.h"
#include "em_crc32.h"
#include "em_graph_internal.h"

em_status_t em_graph_bind(em_graph_t *g, const uint8_t *blob, size_t size) {
    if (!g || !blob) return EM_ERR_NULL;
    if (size < EM_HEADER_SIZE) return EM_ERR_TRUNCATED;
    /* tensors are read in place as int16/int32: their offsets are aligned in the blob, so the base must be */
    if ((uintptr_t)blob % 4u != 0) return EM_ERR_ALIGN;
    if (em_rd_u32(blob) != EM_MAGIC) return EM_ERR_MAGIC;
    if (em_rd_u16(blob + 4) != EM_GRAPH_VERSION || em_rd_u16(blob + 6) != EM_HEADER_SIZE) return EM_ERR_VERSION;
    const uint32_t total = em_rd_u32(blob + 8);
    if (total < EM_HEADER_SIZE || (size_t)total > size) return EM_ERR_TRUNCATED;
    if (em_crc32(blob + EM_HEADER_SIZE, total - EM_HEADER_SIZE) != em_rd_u32(blob + 12)) return EM_ERR_CRC;
    em_graph_set(g, blob);
    return EM_OK;
}
