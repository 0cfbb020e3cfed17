/* CRC-32 of the blob payload (internal; shared by the version-1 and version-2 parsers). */
#ifndef EM_CRC32_H
#define EM_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* IEEE 802.3 (reflected poly 0xEDB88320, init/xorout 0xFFFFFFFF) = zlib.crc32. */
uint32_t em_crc32(const uint8_t *p, size_t n);

#endif /* EM_CRC32_H */
