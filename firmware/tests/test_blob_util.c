/* Byte helpers for the tests' blobs, an independent CRC-32, and fixture files. */
#include <string.h>

#include "em_test.h"

void tb_w16(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
void tb_w32(uint8_t *p, uint32_t v) {
    tb_w16(p, v & 0xFFFFu);
    tb_w16(p + 2, v >> 16);
}
uint32_t tb_r32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Table-driven, unlike the bitwise one in src/crc32.c, so the two cross-check each other. */
uint32_t tb_crc32(const uint8_t *p, size_t n) {
    static uint32_t table[256];
    if (!table[1]) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1u ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    }
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

/* Reseal a blob after an edit: CRC-32 of [64, total_size) into bytes 12..15. */
void tb_fix_crc(uint8_t *blob) { tb_w32(blob + 12, tb_crc32(blob + 64, tb_r32(blob + 8) - 64)); }

/* A file of the fixture directory into buf; its size, or -1 (reported) if it cannot be opened. */
long em_test_read_fixture(const char *name, void *buf, size_t cap) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", em_test_fixture_dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("  cannot open %s\n", path);
        return -1;
    }
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return (long)n;
}
