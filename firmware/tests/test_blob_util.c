/* Builds valid model blobs for the tests, written from the format in edgemem.h (not from blob.c). */
#include <string.h>

#include "em_test.h"
#include "edgemem.h"

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

/* Table-driven, unlike the bitwise one in blob.c, so the two cross-check each other. */
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

void tb_fix_crc(uint8_t *blob) { tb_w32(blob + 12, tb_crc32(blob + 64, tb_r32(blob + 8) - 64)); }

uint8_t *tb_entry(uint8_t *blob, int id) {
    uint32_t n = (uint32_t)blob[32] | (uint32_t)blob[33] << 8;
    for (uint32_t t = 0; t < n; t++) {
        uint8_t *e = blob + 64 + 12 * t;
        if (((uint32_t)e[0] | (uint32_t)e[1] << 8) == (uint32_t)id) return e;
    }
    return NULL;
}

uint8_t *tb_data(uint8_t *blob, int id) { return blob + tb_r32(tb_entry(blob, id) + 4); }

static void spec(const tb_dims_t *d, int id, int *dtype, uint32_t *count) {
    uint32_t n_m = 2u * d->n_u * d->order;
    uint32_t fc[7][2] = {{d->n_u, d->n_in}, {d->n_u, d->n_h}, {d->n_u, n_m}, {d->n_h, d->n_in},
                         {d->n_h, d->n_h},  {d->n_h, n_m},   {d->n_out, d->n_h}};
    uint32_t pop[3] = {d->n_u, n_m, d->n_h};
    if (id < 28) {
        int k = id % 4;
        *dtype = (k == 0 || k == 3) ? EM_DTYPE_S8 : EM_DTYPE_S32;
        *count = k == 0 ? fc[id / 4][0] * fc[id / 4][1] : fc[id / 4][0];
    } else if (id < 37) {
        *dtype = EM_DTYPE_S16;
        *count = pop[(id - 28) / 3];
    } else if (id == 37) {
        *dtype = EM_DTYPE_S16;
        *count = (uint32_t)d->order * d->order;
    } else {
        *dtype = EM_DTYPE_S32;
        *count = d->order;
    }
}

/* A plausible value for element i of tensor id (ranges like a real export). */
static int32_t value(const tb_dims_t *d, int id, uint32_t i) {
    if (id < 28) {
        int k = id % 4, f = id / 4;
        int x_input = f == EM_FC_ENC_X || f == EM_FC_HID_X;
        if (k == 0) return t_range(-127, 127);
        if (k == 1) return t_range(-3000, 3000);
        if (k == 2) return t_range(1 << 30, INT32_MAX);
        return x_input ? t_range(29, 32) : t_range(23, 26);
    }
    if (id < 37) {
        int k = (id - 28) % 3;
        return k == 0 ? t_range(26000, 32000) : k == 1 ? t_range(20000, 30000) : t_range(300, 2500);
    }
    if (id == 37) {
        uint32_t r = i / d->order, c = i % d->order;
        return (r == c ? (int32_t)(0.92 * (1 << d->a_shift)) : 0) + (int32_t)((int64_t)t_range(-2500, 2500) * (1 << d->a_shift) / 16384);
    }
    return t_range(-4000, 4000);
}

size_t tb_build(uint8_t *blob, size_t cap, const tb_dims_t *d, uint32_t seed) {
    t_seed(seed);
    memset(blob, 0, cap);
    uint32_t pos = 64 + 12 * EM_TENSOR_COUNT;
    for (int t = 0; t < EM_TENSOR_COUNT; t++) {
        int id = EM_TENSOR_COUNT - 1 - t; /* reverse order: the parser must not rely on table order */
        int dt;
        uint32_t count;
        spec(d, id, &dt, &count);
        uint32_t es = dt == EM_DTYPE_S8 ? 1 : dt == EM_DTYPE_S16 ? 2 : 4;
        pos = (pos + es - 1) / es * es;
        if (pos + count * es > cap) return 0;
        uint8_t *e = blob + 64 + 12 * t;
        tb_w16(e, (uint32_t)id);
        e[2] = (uint8_t)dt;
        tb_w32(e + 4, pos);
        tb_w32(e + 8, count);
        for (uint32_t i = 0; i < count; i++) {
            uint32_t v = (uint32_t)value(d, id, i);
            if (es == 1) blob[pos + i] = (uint8_t)v;
            else if (es == 2) tb_w16(blob + pos + 2 * i, v);
            else tb_w32(blob + pos + 4 * i, v);
        }
        pos += count * es;
    }
    memcpy(blob, "EMMB", 4);
    tb_w16(blob + 4, 1);
    tb_w16(blob + 6, 64);
    tb_w32(blob + 8, pos);
    tb_w16(blob + 16, EM_KIND_L2MU);
    tb_w16(blob + 18, d->flags);
    tb_w16(blob + 20, d->n_in);
    tb_w16(blob + 22, d->n_u);
    tb_w16(blob + 24, d->order);
    tb_w16(blob + 26, d->n_h);
    tb_w16(blob + 28, d->n_out);
    tb_w16(blob + 30, d->a_shift);
    tb_w16(blob + 32, EM_TENSOR_COUNT);
    tb_fix_crc(blob);
    return pos;
}

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
