/* CRC-32 for em_graph_parse, em_graph_bind and the patch plan parser. Bitwise: it runs once per load, so 1 KiB of
 * table is not worth its flash. */
#include "em_crc32.h"

uint32_t em_crc32(const uint8_t *p, size_t n) {
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return crc ^ 0xFFFFFFFFu;
}
