/* Graph blob builder and the literal integer rules for the graph tests, written from docs/graph.md (not from
 * graph_blob.c or the kernels, so the tests cross-check them). */
#include <string.h>

#include "em_test.h"

void gb_init(gb_t *b, int n_in, int n_out) {
    memset(b, 0, sizeof *b);
    b->n_in = (uint16_t)n_in;
    b->n_out = (uint16_t)n_out;
    b->in_buffer = (uint16_t)gb_buffer(b, GB_S8, (uint32_t)n_in, 0);
    b->out_buffer = GB_NONE;
}

int gb_buffer(gb_t *b, int dtype, uint32_t count, int state) {
    if (b->n_buffers >= GB_MAX_BUFFERS) return -1;
    b->buf[b->n_buffers].dtype = (uint8_t)dtype;
    b->buf[b->n_buffers].count = count;
    b->buf[b->n_buffers].state = (uint8_t)state;
    return b->n_buffers++;
}

int gb_tensor(gb_t *b, int dtype, const int32_t *values, uint32_t count) {
    if (b->n_tensors >= GB_MAX_TENSORS || b->pool_used + (int)count > GB_POOL) return -1;
    int t = b->n_tensors++;
    b->ten[t].dtype = (uint8_t)dtype;
    b->ten[t].count = count;
    b->ten[t].at = (uint32_t)b->pool_used;
    for (uint32_t i = 0; i < count; i++) b->pool[b->pool_used + (int)i] = values ? values[i] : 0;
    b->pool_used += (int)count;
    return t;
}

int32_t *gb_values(gb_t *b, int tensor) { return b->pool + b->ten[tensor].at; }

gb_op_t gb_op(int type, int flags) {
    gb_op_t op;
    memset(&op, 0, sizeof op);
    op.type = (uint16_t)type;
    op.flags = (uint16_t)flags;
    op.in0 = op.in1 = op.out = op.state0 = op.state1 = op.scratch = GB_NONE;
    for (int k = 0; k < 4; k++) op.t[k] = GB_NONE;
    return op;
}

int gb_add(gb_t *b, const gb_op_t *op) {
    if (b->n_ops >= GB_MAX_OPS) return -1;
    b->op[b->n_ops] = *op;
    return b->n_ops++;
}

static uint32_t elsize(int dtype) { return dtype == GB_S8 ? 1u : dtype == GB_S16 ? 2u : 4u; }
static uint32_t r16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }

size_t gb_build(const gb_t *b, uint8_t *blob, size_t cap) {
    const uint32_t ops_at = 64u + 12u * (uint32_t)b->n_buffers, ten_at = ops_at + 32u * (uint32_t)b->n_ops;
    uint32_t pos = ten_at + 12u * (uint32_t)b->n_tensors;
    if (pos > cap) return 0;
    memset(blob, 0, cap);
    uint32_t arena = 0;
    for (int i = 0; i < b->n_buffers; i++) {
        uint8_t *e = blob + 64 + 12 * i;
        e[0] = b->buf[i].dtype;
        e[1] = b->buf[i].state ? 1 : 0;
        tb_w32(e + 4, b->buf[i].count);
        tb_w32(e + 8, arena);
        arena += (b->buf[i].count * elsize(b->buf[i].dtype) + 3u) & ~3u;
    }
    for (int i = 0; i < b->n_ops; i++) {
        const gb_op_t *op = &b->op[i];
        const uint16_t f[16] = {op->type, op->flags, op->in0, op->in1, op->out, op->state0, op->state1, op->scratch,
                                op->d[0], op->d[1], op->d[2], op->d[3], op->t[0], op->t[1], op->t[2], op->t[3]};
        for (int k = 0; k < 16; k++) tb_w16(blob + ops_at + 32 * i + 2 * k, f[k]);
    }
    for (int t = 0; t < b->n_tensors; t++) {
        const uint32_t es = elsize(b->ten[t].dtype), n = b->ten[t].count;
        pos = (pos + 3u) & ~3u;
        if (pos + n * es > cap) return 0;
        uint8_t *e = blob + ten_at + 12 * t;
        tb_w16(e, (uint32_t)t);
        e[2] = b->ten[t].dtype;
        tb_w32(e + 4, pos);
        tb_w32(e + 8, n);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t v = (uint32_t)b->pool[b->ten[t].at + i];
            if (es == 1) blob[pos + i] = (uint8_t)v;
            else if (es == 2) tb_w16(blob + pos + 2 * i, v);
            else tb_w32(blob + pos + 4 * i, v);
        }
        pos += n * es;
    }
    memcpy(blob, "EMMB", 4);
    tb_w16(blob + 4, 2);
    tb_w16(blob + 6, 64);
    tb_w32(blob + 8, pos);
    tb_w16(blob + 16, 2);
    tb_w16(blob + 18, b->n_in);
    tb_w16(blob + 20, b->n_out);
    tb_w16(blob + 22, (uint32_t)b->n_buffers);
    tb_w16(blob + 24, (uint32_t)b->n_ops);
    tb_w16(blob + 26, (uint32_t)b->n_tensors);
    tb_w16(blob + 28, b->in_buffer);
    tb_w16(blob + 30, b->out_buffer);
    tb_w32(blob + 32, arena);
    tb_fix_crc(blob);
    return pos;
}

uint8_t *gb_buffer_entry(uint8_t *blob, int i) { return blob + 64 + 12 * i; }
uint8_t *gb_op_record(uint8_t *blob, int i) { return blob + 64 + 12 * r16(blob + 22) + 32 * i; }
uint8_t *gb_tensor_entry(uint8_t *blob, int i) {
    return blob + 64 + 12 * r16(blob + 22) + 32 * r16(blob + 24) + 12 * i;
}
uint8_t *gb_tensor_data(uint8_t *blob, int i) { return blob + tb_r32(gb_tensor_entry(blob, i) + 4); }

/* ---- the rules, literally (host and arm gcc shift negative values arithmetically; inputs never overflow) ---- */
int64_t gref_sat(int64_t x, int bits) {
    int64_t hi = ((int64_t)1 << (bits - 1)) - 1, lo = -hi - 1;
    return x > hi ? hi : x < lo ? lo : x;
}

int64_t gref_rsr(int64_t x, int s) { return s == 0 ? x : (x + ((int64_t)1 << (s - 1))) >> s; }

int32_t gref_requant(int64_t acc, int32_t mult, int shift) {
    return (int32_t)gref_sat(gref_rsr(gref_sat(acc, 32) * mult, shift), 32);
}

void gref_store(int32_t *out, int64_t r, int acc) {
    *out = (int32_t)(acc ? gref_sat((int64_t)*out + gref_sat(r, 16), 16) : gref_sat(r, 16));
}
