/* CRC-32 of a blob payload (internal; em_graph_parse, em_graph_bind and the patch plan parser). */
#ifndef EM_CRC32_H
#define EM_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* IEEE 802.3 (reflected poly 0xEDB88320, init/xorout 0xFFFFFFFF) = zlib.crc32. */
uint32_t em_crc32(const uint8_t *p, size_t n);

#endif /* EM_CRC32_H */
