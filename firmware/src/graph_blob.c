/* Graph blob (version 2) parser: every check of docs/graph.md "Parse order", in that order, so each defect maps to
 * one status and the Python parser (edgemem/graph/blob.py) rejects the same blobs. Nothing is read outside
 * [blob, blob + total_size); all size arithmetic is in uint32 on values whose bounds are stated, or in uint64. */
#include "em_graph.h"
#include "em_crc32.h"
#include "em_graph_internal.h"

#define HDR 64u

/* One buffer table entry. */
typedef struct {
    uint32_t dtype, flags, pad, count, offset;
} buf_t;

static void rd_buf(const uint8_t *table, uint32_t i, buf_t *b) {
    const uint8_t *e = table + (size_t)EM_GRAPH_BUFFER_ENTRY_SIZE * i;
    b->dtype = e[0];
    b->flags = e[1];
    b->pad = em_rd_u16(e + 2);
    b->count = em_rd_u32(e + 4);
    b->offset = em_rd_u32(e + 8);
}

static int dtype_ok(uint32_t dt) { return dt >= EM_DTYPE_S8 && dt <= EM_DTYPE_S32; }
/* Tensors may also be packed (S4, S2); buffers may not. */
static int tensor_dtype_ok(uint32_t dt) { return dt >= EM_DTYPE_S8 && dt <= EM_DTYPE_S2; }

/* What an op expects of one of its buffers (valid once type, flags and dims are). */
typedef struct {
    uint8_t field;  /* EM_F_* */
    uint8_t dtypes; /* bit (1 << dtype) set for each allowed dtype */
    uint8_t state;  /* 0 either, 1 must be a state buffer, 2 must not */
    uint8_t reads;  /* read before written by this op (written-before-read applies if not state) */
    uint32_t count;
} buf_spec_t;

typedef struct {
    buf_spec_t buf[4];
    int n_buf;
    uint8_t t_dtype[4]; /* 0: tensor field unused */
    uint32_t t_count[4];
} op_spec_t;

#define DT(x) (uint8_t)(1u << (x))

static uint32_t act_func(uint32_t flags) { return (flags >> 1) & 3u; }

/* What each op type of docs/graph.md "Ops" allows and uses, before its flags and dims add to it. */
typedef struct {
    uint8_t flags;   /* the flag bits the type defines */
    uint8_t fields;  /* bit EM_F_k: a buffer field every op of the type uses */
    uint8_t tensors; /* bit k: a tensor field tk every op of the type uses */
    uint8_t dims;    /* d0 .. d(dims - 1) are used, the rest must be 0 */
} op_info_t;
#define FB(k) (uint8_t)(1u << EM_F_##k)
static const op_info_t k_op_info[EM_OP_LAST + 1] = {
    [EM_OP_FC] = {EM_GRAPH_OPF_ACC | EM_GRAPH_OPF_EVENTS, FB(IN0) | FB(OUT), 0xF, 2}, /* EVENTS: + scratch */
    [EM_OP_CONV1D] = {EM_GRAPH_OPF_ACC, FB(IN0) | FB(OUT), 0xF, 3},         /* k != 1: + state0, state1 */
    [EM_OP_ACT] = {6u, FB(IN0) | FB(OUT), 0x0, 1},                          /* func in bits 1-2; LUT: + t0 */
    [EM_OP_LIF] = {EM_GRAPH_OPF_CUBA, FB(IN0) | FB(OUT) | FB(STATE0), 0x5, 1}, /* CuBa: + state1, t1 */
    [EM_OP_LEAKY] = {0, FB(IN0) | FB(OUT), 0x1, 1},
    [EM_OP_LMU] = {EM_GRAPH_OPF_LEGENDRE, FB(IN0) | FB(STATE0) | FB(SCRATCH), 0x3, 4},
    [EM_OP_ADD] = {EM_GRAPH_OPF_ACC, FB(IN0) | FB(OUT), 0x3, 1},
    [EM_OP_ONOFF] = {EM_GRAPH_OPF_ACC, FB(IN0) | FB(OUT), 0x0, 1},
    [EM_OP_SPIKE] = {0, FB(IN0) | FB(OUT), 0x1, 1},
    [EM_OP_SENSOR] = {0, FB(IN0) | FB(OUT), 0x7, 2},
    [EM_OP_LOGMEL] = {0, FB(IN0) | FB(OUT) | FB(SCRATCH), 0xF, 4}, /* win > hop: + state0 (the history) */
};
#define EM_T_ANY 0xFFFFFFFFu /* a tensor count the dims do not fix (LOGMEL t2): checked with the parameters */

/* Bit EM_F_k set for each buffer field the op uses; CONV1D's ring and head follow the raw d2 = k. */
static unsigned used_fields(const em_op_rec_t *op) {
    unsigned m = k_op_info[op->type].fields;
    if (op->type == EM_OP_CONV1D && op->d[2] != 1) m |= FB(STATE0) | FB(STATE1);
    if (op->type == EM_OP_FC && (op->flags & EM_GRAPH_OPF_EVENTS)) m |= FB(SCRATCH);
    if (op->type == EM_OP_LIF && (op->flags & EM_GRAPH_OPF_CUBA)) m |= FB(STATE1);
    if (op->type == EM_OP_LOGMEL && op->d[0] > op->d[1]) m |= FB(STATE0);
    return m;
}

/* Bit k set for each tensor field tk the op uses. */
static unsigned used_tensors(const em_op_rec_t *op) {
    unsigned m = k_op_info[op->type].tensors;
    if (op->type == EM_OP_ACT && act_func(op->flags) == 2u) m |= 1u;
    if (op->type == EM_OP_LIF && (op->flags & EM_GRAPH_OPF_CUBA)) m |= 2u;
    return m;
}

/* Dims in order d0..d3: unused ones 0 (OP), used ones in range (DIMS; LMU's shifts are PARAM). */
static em_status_t check_dims(const em_op_rec_t *op) {
    const int used = k_op_info[op->type].dims;
    for (int i = 0; i < 4; i++) {
        uint32_t v = op->d[i], lo = 1, hi = EM_MAX_DIM;
        em_status_t bad = EM_ERR_DIMS;
        if (i >= used) {
            if (v != 0) return EM_ERR_OP;
            continue;
        }
        if (op->type == EM_OP_CONV1D && i == 2) hi = EM_GRAPH_MAX_KERNEL;
        if (op->type == EM_OP_LMU && i >= 2) {
            lo = i == 2 ? 1u : 0u;
            hi = 30;
            bad = EM_ERR_PARAM;
        }
        if (v < lo || v > hi) return bad;
    }
    if (op->type == EM_OP_LMU && (uint32_t)op->d[0] * op->d[1] > EM_GRAPH_MAX_LMU_CELLS) return EM_ERR_DIMS;
    if (op->type == EM_OP_LOGMEL) { /* win, hop, n_fft, n_mels */
        const uint32_t win = op->d[0], hop = op->d[1], n_fft = op->d[2];
        if (n_fft < 64u || (n_fft & (n_fft - 1u)) || hop > win || win > n_fft || op->d[3] > 256u) return EM_ERR_DIMS;
    }
    return EM_OK;
}

static void add_buf(op_spec_t *s, int field, uint8_t dtypes, uint32_t count, int state, int reads) {
    buf_spec_t *b = &s->buf[s->n_buf++];
    b->field = (uint8_t)field;
    b->dtypes = dtypes;
    b->count = count;
    b->state = (uint8_t)state;
    b->reads = (uint8_t)reads;
}

static void set_tensor(op_spec_t *s, int k, uint32_t dtype, uint32_t count) {
    s->t_dtype[k] = (uint8_t)dtype;
    s->t_count[k] = count;
}

/* The table of docs/graph.md for an op whose type, flags and dims are valid (dims <= 1024, k <= 16: every count
 * below fits uint32). Buffers in field order. */
static void op_spec(const em_op_rec_t *op, op_spec_t *s) {
    const uint32_t n = op->d[0], acc = op->flags & EM_GRAPH_OPF_ACC;
    s->n_buf = 0;
    for (int k = 0; k < 4; k++) set_tensor(s, k, 0, 0);
    switch (op->type) {
    case EM_OP_FC:
    case EM_OP_CONV1D: {
        const uint32_t d_out = op->d[1], k = op->type == EM_OP_CONV1D ? op->d[2] : 1u;
        const int events = op->type == EM_OP_FC && (op->flags & EM_GRAPH_OPF_EVENTS);
        const uint8_t in_dt = op->type == EM_OP_FC && !events ? (DT(EM_DTYPE_S8) | DT(EM_DTYPE_S16)) : DT(EM_DTYPE_S8);
        add_buf(s, EM_F_IN0, in_dt, n, 0, 1);
        add_buf(s, EM_F_OUT, DT(EM_DTYPE_S32), d_out, 0, (int)acc);
        if (events) add_buf(s, EM_F_SCRATCH, DT(EM_DTYPE_S16), n, 2, 0); /* the index list */
        if (k > 1) {
            add_buf(s, EM_F_STATE0, DT(EM_DTYPE_S8), (k - 1) * n, 1, 1);
            add_buf(s, EM_F_STATE1, DT(EM_DTYPE_S32), 1, 1, 1);
        }
        set_tensor(s, 0, EM_DTYPE_S8, d_out * k * n);
        set_tensor(s, 1, EM_DTYPE_S32, d_out);
        set_tensor(s, 2, EM_DTYPE_S32, d_out);
        set_tensor(s, 3, EM_DTYPE_S8, d_out);
        break;
    }
    case EM_OP_ACT: {
        const int lut = act_func(op->flags) == 2u;
        add_buf(s, EM_F_IN0, DT(EM_DTYPE_S32), n, 0, 1);
        add_buf(s, EM_F_OUT, lut ? DT(EM_DTYPE_S8) : (DT(EM_DTYPE_S8) | DT(EM_DTYPE_S16)), n, 0, 0);
        if (lut) set_tensor(s, 0, EM_DTYPE_S8, 256);
        break;
    }
    case EM_OP_LIF: {
        const int cuba = (op->flags & EM_GRAPH_OPF_CUBA) != 0;
        add_buf(s, EM_F_IN0, DT(EM_DTYPE_S32), n, 0, 1);
        add_buf(s, EM_F_OUT, DT(EM_DTYPE_S8), n, 0, 0);
        add_buf(s, EM_F_STATE0, DT(EM_DTYPE_S16), n, 1, 1);
        if (cuba) add_buf(s, EM_F_STATE1, DT(EM_DTYPE_S16), n, 1, 1);
        set_tensor(s, 0, EM_DTYPE_S16, n);
        if (cuba) set_tensor(s, 1, EM_DTYPE_S16, n);
        set_tensor(s, 2, EM_DTYPE_S16, n);
        break;
    }
    case EM_OP_LEAKY:
        add_buf(s, EM_F_IN0, DT(EM_DTYPE_S32), n, 0, 1);
        add_buf(s, EM_F_OUT, DT(EM_DTYPE_S16), n, 1, 1); /* the trace: state, read and written */
        set_tensor(s, 0, EM_DTYPE_S16, n);
        break;
    case EM_OP_LMU: {
        const uint32_t order = op->d[1];
        add_buf(s, EM_F_IN0, DT(EM_DTYPE_S8), n, 0, 1);
        add_buf(s, EM_F_STATE0, DT(EM_DTYPE_S16), n * order, 1, 1);
        add_buf(s, EM_F_SCRATCH, DT(EM_DTYPE_S16), order, 2, 0);
        set_tensor(s, 0, EM_DTYPE_S16, order * order);
        set_tensor(s, 1, EM_DTYPE_S32, order);
        break;
    }
    case EM_OP_ADD:
        add_buf(s, EM_F_IN0, DT(EM_DTYPE_S8) | DT(EM_DTYPE_S16), n, 0, 1);
        add_buf(s, EM_F_OUT, DT(EM_DTYPE_S32), n, 0, (int)acc);
        set_tensor(s, 0, EM_DTYPE_S32, 1);
        set_tensor(s, 1, EM_DTYPE_S8, 1);
        break;
    case EM_OP_LOGMEL: { /* d = (win, hop, n_fft, n_mels) */
        const uint32_t win = op->d[0], hop = op->d[1], n_fft = op->d[2], n_mels = op->d[3];
        add_buf(s, EM_F_IN0, DT(EM_DTYPE_S16), hop, 2, 1);
        add_buf(s, EM_F_OUT, DT(EM_DTYPE_S8), n_mels, 0, 0);
        add_buf(s, EM_F_SCRATCH, DT(EM_DTYPE_S32), n_fft + 2u, 2, 0);
        if (win > hop) add_buf(s, EM_F_STATE0, DT(EM_DTYPE_S16), win - hop, 1, 1);
        set_tensor(s, 0, EM_DTYPE_S16, win);
        set_tensor(s, 1, EM_DTYPE_S32, n_fft / 2u + 66u);
        set_tensor(s, 2, EM_DTYPE_S16, EM_T_ANY);
        set_tensor(s, 3, EM_DTYPE_S32, 3u * n_mels + 3u);
        break;
    }
    case EM_OP_SENSOR: { /* d = (C, D): counts [D][C] s16 in (not state), int8 [C] out */
        const uint32_t dec = op->d[1];
        add_buf(s, EM_F_IN0, DT(EM_DTYPE_S16), n * dec, 2, 1);
        add_buf(s, EM_F_OUT, DT(EM_DTYPE_S8), n, 0, 0);
        set_tensor(s, 0, EM_DTYPE_S32, n);
        set_tensor(s, 1, EM_DTYPE_S32, n);
        set_tensor(s, 2, EM_DTYPE_S8, n);
        break;
    }
    case EM_OP_SPIKE: /* in0: typically a LIF membrane, read before the LIF (last step's value) */
        add_buf(s, EM_F_IN0, DT(EM_DTYPE_S16), n, 0, 1);
        add_buf(s, EM_F_OUT, DT(EM_DTYPE_S8), n, 0, 0);
        set_tensor(s, 0, EM_DTYPE_S16, n);
        break;
    default: /* EM_OP_ONOFF */
        add_buf(s, EM_F_IN0, DT(EM_DTYPE_S16), n, 0, 1);
        add_buf(s, EM_F_OUT, DT(EM_DTYPE_S32), 2u * n, 0, (int)acc);
        break;
    }
}

typedef struct {
    const uint8_t *buffers, *tensors;
    uint32_t n_buffers, n_tensors;
    uint32_t written[EM_GRAPH_MAX_BUFFERS / 32u]; /* bit b: buffer b written earlier in the step */
} walk_t;

static int is_written(const walk_t *w, uint32_t b) { return (w->written[b / 32u] >> (b % 32u)) & 1u; }
static void mark_written(walk_t *w, uint32_t b) { w->written[b / 32u] |= 1u << (b % 32u); }

/* Step 5 for one op: type, fields, dims, buffers, tensors, written-before-read (then its writes are marked). */
static em_status_t check_op(walk_t *w, const em_op_rec_t *op) {
    if (op->type < EM_OP_FC || op->type > EM_OP_LAST) return EM_ERR_OP;
    if ((op->flags & ~(uint32_t)k_op_info[op->type].flags) || (op->type == EM_OP_ACT && act_func(op->flags) == 3u))
        return EM_ERR_OP;
    const unsigned uf = used_fields(op), ut = used_tensors(op);
    for (int k = 0; k < EM_F_COUNT; k++) {
        if (!((uf >> k) & 1u)) {
            if (op->buf[k] != EM_GRAPH_NONE) return EM_ERR_OP;
        } else if (op->buf[k] >= w->n_buffers) {
            return EM_ERR_OP;
        }
    }
    for (int k = 0; k < EM_F_COUNT; k++)
        for (int l = k + 1; l < EM_F_COUNT; l++)
            if (((uf >> k) & (uf >> l) & 1u) && op->buf[k] == op->buf[l]) return EM_ERR_OP;
    for (int k = 0; k < 4; k++) {
        if (!((ut >> k) & 1u)) {
            if (op->t[k] != EM_GRAPH_NONE) return EM_ERR_OP;
        } else if (op->t[k] >= w->n_tensors) {
            return EM_ERR_OP;
        }
    }
    em_status_t st = check_dims(op);
    if (st != EM_OK) return st;

    op_spec_t s;
    op_spec(op, &s);
    for (int i = 0; i < s.n_buf; i++) {
        const buf_spec_t *bs = &s.buf[i];
        buf_t b;
        rd_buf(w->buffers, op->buf[bs->field], &b);
        /* the buffer table passed step 4: dtype is 1..3 */
        if (!((bs->dtypes >> b.dtype) & 1u) || b.count != bs->count) return EM_ERR_BUFFER;
        const int state = (b.flags & EM_GRAPH_BUF_STATE) != 0;
        if ((bs->state == 1 && !state) || (bs->state == 2 && state)) return EM_ERR_BUFFER;
    }
    for (int k = 0; k < 4; k++) {
        if (!s.t_dtype[k]) continue;
        const uint8_t *e = w->tensors + (size_t)EM_GRAPH_TENSOR_ENTRY_SIZE * op->t[k];
        /* FC and CONV1D weights (t0) may be packed S4 / S2 instead of S8 */
        const int packed_w = k == 0 && (op->type == EM_OP_FC || op->type == EM_OP_CONV1D) && em_graph_packed(e[2]);
        if ((e[2] != s.t_dtype[k] && !packed_w) || (s.t_count[k] != EM_T_ANY && em_rd_u32(e + 8) != s.t_count[k]))
            return EM_ERR_TENSOR;
        /* every output row starts on a byte: d_in (FC) or k * c_in (CONV1D) weights fill whole bytes */
        const uint32_t row = (uint32_t)op->d[0] * (op->type == EM_OP_CONV1D ? op->d[2] : 1u);
        if (packed_w && row % em_graph_per_byte(e[2]) != 0) return EM_ERR_TENSOR;
    }
    for (int i = 0; i < s.n_buf; i++) {
        const uint32_t b = op->buf[s.buf[i].field];
        if (s.buf[i].reads && !is_written(w, b) &&
            !(w->buffers[(size_t)EM_GRAPH_BUFFER_ENTRY_SIZE * b + 1] & EM_GRAPH_BUF_STATE))
            return EM_ERR_ORDER;
    }
    for (int i = 0; i < s.n_buf; i++)
        if (s.buf[i].field != EM_F_IN0) mark_written(w, op->buf[s.buf[i].field]);
    return EM_OK;
}

/* Buffers a and b (entries passed step 4: extents inside the arena, no wrap) share an arena byte. */
static int arena_overlap(const uint8_t *table, uint32_t a, uint32_t b) {
    buf_t x, y;
    rd_buf(table, a, &x);
    rd_buf(table, b, &y);
    const uint32_t x_end = x.offset + x.count * em_graph_elsize(x.dtype);
    const uint32_t y_end = y.offset + y.count * em_graph_elsize(y.dtype);
    return x.offset < y_end && y.offset < x_end;
}

static int is_state(const uint8_t *table, uint32_t b) {
    return (table[(size_t)EM_GRAPH_BUFFER_ENTRY_SIZE * b + 1] & EM_GRAPH_BUF_STATE) != 0;
}

static int in_set(const uint32_t *s, uint32_t b) { return (s[b / 32u] >> (b % 32u)) & 1u; }
static void add_set(uint32_t *s, uint32_t b) { s[b / 32u] |= 1u << (b % 32u); }

/* Buffer field k of op record i, raw (after step 5: a buffer index or NONE). */
static uint32_t op_buf(const uint8_t *ops, uint32_t i, int k) {
    return em_rd_u16(ops + (size_t)EM_GRAPH_OP_SIZE * i + 4u + 2u * (uint32_t)k);
}

/* After step 5, the arena rule of docs/graph.md "Placement": a state buffer overlaps no buffer; two scratch buffers
 * overlap only if their live ranges (first op naming it .. last op naming it; in_buffer from the step start,
 * out_buffer to the step end) are disjoint. Python keeps each buffer's range in a list; here, without scratch
 * memory, each pair whose ranges meet is caught at the later one's first op t, where both are live: `born` holds
 * the buffers named by ops 0..t (and in_buffer), `later` those named by ops t..n_op-1 (and out_buffer). Rebuilding
 * `later` for every t reads n_op^2 / 2 op records (33k for 256 ops), once per load. */
static em_status_t check_overlaps(const uint8_t *buffers, const uint8_t *ops, uint32_t n_b, uint32_t n_op,
                                  uint32_t in_b, uint32_t out_b) {
    for (uint32_t a = 0; a < n_b; a++)
        for (uint32_t b = a + 1; b < n_b; b++)
            if ((is_state(buffers, a) || is_state(buffers, b)) && arena_overlap(buffers, a, b)) return EM_ERR_BUFFER;
    uint32_t born[EM_GRAPH_MAX_BUFFERS / 32u] = {0}, later[EM_GRAPH_MAX_BUFFERS / 32u];
    add_set(born, in_b);
    for (uint32_t t = 0; t < n_op; t++) {
        uint32_t fresh[EM_F_COUNT];
        int n_fresh = 0;
        for (int k = 0; k < EM_F_COUNT; k++) {
            const uint32_t b = op_buf(ops, t, k);
            if (b == EM_GRAPH_NONE || in_set(born, b)) continue;
            add_set(born, b);
            fresh[n_fresh++] = b;
        }
        if (n_fresh == 0) continue;
        for (uint32_t i = 0; i < EM_GRAPH_MAX_BUFFERS / 32u; i++) later[i] = 0;
        add_set(later, out_b);
        for (uint32_t u = t; u < n_op; u++)
            for (int k = 0; k < EM_F_COUNT; k++) {
                const uint32_t b = op_buf(ops, u, k);
                if (b != EM_GRAPH_NONE) add_set(later, b);
            }
        for (int f = 0; f < n_fresh; f++) {
            const uint32_t b = fresh[f];
            if (is_state(buffers, b)) continue; /* checked above */
            for (uint32_t a = 0; a < n_b; a++)
                if (a != b && in_set(born, a) && in_set(later, a) && !is_state(buffers, a) &&
                    arena_overlap(buffers, a, b))
                    return EM_ERR_BUFFER;
        }
    }
    return EM_OK;
}

/* Step 4: the buffer table on its own, then the input and output buffers (overlaps need the op table: they
 * are checked after step 5). */
static em_status_t check_buffers(const uint8_t *table, uint32_t n_b, uint32_t arena_size, uint32_t in_b,
                                 uint32_t out_b, uint32_t n_in, uint32_t n_out) {
    for (uint32_t i = 0; i < n_b; i++) {
        buf_t b;
        rd_buf(table, i, &b);
        if (!dtype_ok(b.dtype) || (b.flags & ~EM_GRAPH_BUF_STATE) || b.pad != 0 || b.count < 1 || b.offset % 4u != 0)
            return EM_ERR_BUFFER;
        if ((uint64_t)b.offset + (uint64_t)b.count * em_graph_elsize(b.dtype) > arena_size) return EM_ERR_BUFFER;
    }
    buf_t bi, bo;
    rd_buf(table, in_b, &bi);
    rd_buf(table, out_b, &bo);
    /* a model: int8 in, int16 logits out; an input stage: int16 samples in, the model's int8 input out */
    const int stage = bi.dtype == EM_DTYPE_S16;
    if ((bi.dtype != EM_DTYPE_S8 && !stage) || bi.count != n_in) return EM_ERR_BUFFER;
    if (bo.dtype != (stage ? EM_DTYPE_S8 : EM_DTYPE_S16) || bo.count != n_out) return EM_ERR_BUFFER;
    if (bi.flags & EM_GRAPH_BUF_STATE) return EM_ERR_BUFFER;
    return EM_OK;
}

static int32_t rd_s32(const uint8_t *p) { return (int32_t)em_rd_u32(p); }
static int16_t rd_s16(const uint8_t *p) { return (int16_t)em_rd_u16(p); }

/* LOGMEL's tables (edgemem/graph/check.py _check_logmel, the same rules in the same order): twiddles in
 * [-2^30, 2^30] with cos^2 + sin^2 <= 2^60 + 2^32 (each twiddle a rotation, rounded), the log2 table in [0, 2^26]
 * and nondecreasing; every band inside bins 0 .. n_fft/2 with weights >= 0, the bands filling t2 exactly; per band
 * mult >= 2^30, shift in [1, 62], |offset| <= 2^27; zero point in int8; eps in [2^32, 2^56). These keep every
 * intermediate of em_k_logmel inside its type and every table index in range, whatever the blob holds. */
static em_status_t check_logmel(const uint8_t *blob, const uint8_t *tensors, const em_op_rec_t *op) {
#define TENT(k) (tensors + (size_t)EM_GRAPH_TENSOR_ENTRY_SIZE * op->t[k])
    const uint32_t m = op->d[2] / 2u, n_mels = op->d[3];
    const uint8_t *t1 = blob + em_rd_u32(TENT(1) + 4), *fb = blob + em_rd_u32(TENT(2) + 4);
    const uint8_t *bq = blob + em_rd_u32(TENT(3) + 4);
    const uint32_t fb_count = em_rd_u32(TENT(2) + 8);
#undef TENT
    if ((int32_t)em_rd_u32(t1) != (1 << 30) || em_rd_u32(t1 + 4u * (m / 2u)) != 0u) return EM_ERR_PARAM; /* exact units */
    for (uint32_t k = 0; k <= m; k++) { /* |c| <= 2^30 and |cos - j sin| <= 1 + 2^-28: the FFT stays norm-bounded */
        const int64_t c = (int32_t)em_rd_u32(t1 + 4u * k), s = (int32_t)em_rd_u32(t1 + 4u * (k <= m / 2u ? m / 2u - k : k - m / 2u));
        if (c > (1 << 30) || c < -(1 << 30) || s > (1 << 30) || s < -(1 << 30)) return EM_ERR_PARAM;
        if ((uint64_t)(c * c) + (uint64_t)(s * s) > ((uint64_t)1 << 60) + ((uint64_t)1 << 32)) return EM_ERR_PARAM;
    }
    for (uint32_t i = 0; i <= 64u; i++) {
        const int32_t l = (int32_t)em_rd_u32(t1 + 4u * (m + 1u + i));
        if (l < 0 || l > (1 << 26) || (i > 0 && l < (int32_t)em_rd_u32(t1 + 4u * (m + i)))) return EM_ERR_PARAM;
    }
    uint32_t pos = 0;
    for (uint32_t b = 0; b < n_mels; b++) {
        if (pos + 2u > fb_count) return EM_ERR_PARAM;
        const int32_t lo = (int16_t)em_rd_u16(fb + 2u * pos), cnt = (int16_t)em_rd_u16(fb + 2u * pos + 2u);
        if (lo < 0 || cnt < 0 || (uint32_t)(lo + cnt) > m + 1u || pos + 2u + (uint32_t)cnt > fb_count) return EM_ERR_PARAM;
        for (int32_t i = 0; i < cnt; i++)
            if ((int16_t)em_rd_u16(fb + 2u * (pos + 2u + (uint32_t)i)) < 0) return EM_ERR_PARAM;
        pos += 2u + (uint32_t)cnt;
    }
    if (pos != fb_count) return EM_ERR_PARAM;
    for (uint32_t b = 0; b < n_mels; b++) {
        const int32_t off = (int32_t)em_rd_u32(bq + 12u * b), mult = (int32_t)em_rd_u32(bq + 12u * b + 4u);
        const int32_t sh = (int32_t)em_rd_u32(bq + 12u * b + 8u);
        if (mult < (1 << 30) || sh < 1 || sh > 62 || off > (1 << 27) || off < -(1 << 27)) return EM_ERR_PARAM;
    }
    const int32_t zp = (int32_t)em_rd_u32(bq + 12u * n_mels);
    const uint32_t eps_lo = em_rd_u32(bq + 12u * n_mels + 4u), eps_hi = em_rd_u32(bq + 12u * n_mels + 8u);
    (void)eps_lo; /* eps in [2^32, 2^56): a loud frame's eps term, eps >> (up to 32), is still >= 1 */
    if (zp < -128 || zp > 127 || eps_hi >= (1u << 24) || eps_hi == 0u) return EM_ERR_PARAM;
    return EM_OK;
}

/* LEGENDRE flag (docs/graph.md): A [order][order] (little-endian s16) is a diagonal plus, in row i, r_i times the
 * continuous Legendre A's sign pattern s_ij = -1 (j > i), (-1)^(i-j+1) (j < i), with r_i = -a[i][i+1] (a[i][i-1] on
 * the last row), a_shift >= 2 and every |B[i]| < 2^22: what the kernel's O(order) pass assumes (em_k_lmu_legendre).
 * Every entry is read (order^2 reads, once at parse), so a blob whose flag lies is refused. */
static int lmu_legendre_ok(const uint8_t *a, const uint8_t *b, uint32_t order, uint32_t a_shift) {
    if (a_shift < 2u) return 0;
    for (uint32_t i = 0; i < order; i++) {
        const int32_t bi = rd_s32(b + 4u * i);
        if (bi >= (1 << 22) || bi <= -(1 << 22)) return 0;
        if (order < 2u) continue;
        const uint8_t *row = a + 2u * order * i;
        const int32_t r = i + 1u < order ? -(int32_t)rd_s16(row + 2u * (i + 1u)) : (int32_t)rd_s16(row + 2u * (i - 1u));
        int32_t s = 1; /* s_ij for j = i - 1, i - 2, ...: +1, -1, ... */
        for (uint32_t j = i; j-- > 0u; s = -s)
            if ((int32_t)rd_s16(row + 2u * j) != s * r) return 0;
        for (uint32_t j = i + 1u; j < order; j++)
            if ((int32_t)rd_s16(row + 2u * j) != -r) return 0;
    }
    return 1;
}

/* Step 8 for one op (its tensors have the dtypes and counts of its spec, and lie inside the blob). */
static em_status_t check_params(const uint8_t *blob, const uint8_t *tensors, const em_op_rec_t *op) {
#define TDATA(k) (blob + em_rd_u32(tensors + (size_t)EM_GRAPH_TENSOR_ENTRY_SIZE * op->t[k] + 4))
    switch (op->type) {
    case EM_OP_FC:
    case EM_OP_CONV1D:
    case EM_OP_ADD:
    case EM_OP_SENSOR: {
        const int km = op->type == EM_OP_ADD ? 0 : op->type == EM_OP_SENSOR ? 1 : 2;
        const uint32_t n = op->type == EM_OP_ADD ? 1u : op->type == EM_OP_SENSOR ? op->d[0] : op->d[1];
        const uint8_t *mult = TDATA(km), *shift = TDATA(km + 1);
        for (uint32_t o = 0; o < n; o++) {
            const int32_t sh = (int8_t)shift[o];
            if (rd_s32(mult + 4u * o) < (int32_t)0x40000000 || sh < 1 || sh > 62) return EM_ERR_PARAM;
        }
        return EM_OK;
    }
    case EM_OP_LIF:
    case EM_OP_LEAKY: {
        const uint32_t n = op->d[0];
        const uint8_t *beta = TDATA(0);
        for (uint32_t i = 0; i < n; i++)
            if (rd_s16(beta + 2u * i) < 0) return EM_ERR_PARAM;
        if (op->type == EM_OP_LIF && (op->flags & EM_GRAPH_OPF_CUBA)) {
            const uint8_t *alpha = TDATA(1);
            for (uint32_t i = 0; i < n; i++)
                if (rd_s16(alpha + 2u * i) < 0) return EM_ERR_PARAM;
        }
        return EM_OK;
    }
    case EM_OP_LOGMEL: return check_logmel(blob, tensors, op);
    case EM_OP_LMU: /* shifts were checked with the dims; a LEGENDRE flag must tell the truth about A */
        return (op->flags & EM_GRAPH_OPF_LEGENDRE) && !lmu_legendre_ok(TDATA(0), TDATA(1), op->d[1], op->d[2]) ? EM_ERR_PARAM
                                                                                                   : EM_OK;
    default: return EM_OK; /* ACT, ONOFF, SPIKE (any thr) */
    }
#undef TDATA
}

em_status_t em_graph_parse(em_graph_t *g, const uint8_t *blob, size_t size) {
    if (!g || !blob) return EM_ERR_NULL;
    /* 1. size */
    if (size < HDR) return EM_ERR_TRUNCATED;
    const uint32_t total = em_rd_u32(blob + 8);
    const uint32_t n_b = em_rd_u16(blob + 22), n_op = em_rd_u16(blob + 24), n_t = em_rd_u16(blob + 26);
    /* each count <= 65535: 64 + 56 * 65535 fits uint32 */
    const uint32_t ops_at = HDR + EM_GRAPH_BUFFER_ENTRY_SIZE * n_b;
    const uint32_t tensors_at = ops_at + EM_GRAPH_OP_SIZE * n_op;
    const uint32_t tables_end = tensors_at + EM_GRAPH_TENSOR_ENTRY_SIZE * n_t;
    if ((size_t)total > size || total < tables_end) return EM_ERR_TRUNCATED;
    /* 2. identity and integrity */
    if (em_rd_u32(blob) != EM_MAGIC) return EM_ERR_MAGIC;
    if (em_rd_u16(blob + 4) != EM_GRAPH_VERSION || em_rd_u16(blob + 6) != HDR) return EM_ERR_VERSION;
    if (em_crc32(blob + HDR, total - HDR) != em_rd_u32(blob + 12)) return EM_ERR_CRC;
    if (em_rd_u16(blob + 16) != EM_KIND_GRAPH) return EM_ERR_KIND;
    /* 3. header */
    const uint32_t n_in = em_rd_u16(blob + 18), n_out = em_rd_u16(blob + 20);
    const uint32_t in_b = em_rd_u16(blob + 28), out_b = em_rd_u16(blob + 30), arena_size = em_rd_u32(blob + 32);
    if (n_in < 1 || n_in > EM_MAX_DIM || n_out < 1 || n_out > EM_MAX_DIM) return EM_ERR_DIMS;
    if (n_b > EM_GRAPH_MAX_BUFFERS || n_op > EM_GRAPH_MAX_OPS || n_t > EM_GRAPH_MAX_TENSORS) return EM_ERR_DIMS;
    if (in_b >= n_b || out_b >= n_b) return EM_ERR_BUFFER;
    for (uint32_t i = 36; i < HDR; i++)
        if (blob[i] != 0) return EM_ERR_VERSION;
    /* 4. buffer table */
    const uint8_t *buffers = blob + HDR, *ops = blob + ops_at, *tensors = blob + tensors_at;
    em_status_t st = check_buffers(buffers, n_b, arena_size, in_b, out_b, n_in, n_out);
    if (st != EM_OK) return st;
    /* 5. op table, op by op */
    walk_t w;
    w.buffers = buffers;
    w.tensors = tensors;
    w.n_buffers = n_b;
    w.n_tensors = n_t;
    for (uint32_t i = 0; i < EM_GRAPH_MAX_BUFFERS / 32u; i++) w.written[i] = 0;
    mark_written(&w, in_b);
    for (uint32_t i = 0; i < n_op; i++) {
        em_op_rec_t op;
        em_graph_read_op(ops, i, &op);
        st = check_op(&w, &op);
        if (st != EM_OK) return st;
    }
    if (!is_written(&w, out_b) && !(buffers[(size_t)EM_GRAPH_BUFFER_ENTRY_SIZE * out_b + 1] & EM_GRAPH_BUF_STATE))
        return EM_ERR_ORDER;
    st = check_overlaps(buffers, ops, n_b, n_op, in_b, out_b);
    if (st != EM_OK) return st;
    /* 6. tensor table and extents (64-bit: offset + bytes cannot wrap) */
    for (uint32_t i = 0; i < n_t; i++) {
        const uint8_t *e = tensors + (size_t)EM_GRAPH_TENSOR_ENTRY_SIZE * i;
        if (em_rd_u16(e) != i || !tensor_dtype_ok(e[2]) || e[3] != 0) return EM_ERR_TENSOR;
        const uint32_t count = em_rd_u32(e + 8);
        const uint64_t off = em_rd_u32(e + 4), bytes = em_graph_tensor_bytes(e[2], count);
        if (off < tables_end || off >= total || off + bytes > total) return EM_ERR_BOUNDS;
        /* a packed tensor's last byte: the bits past its last element are zero (one encoding per tensor) */
        const uint32_t used = (count % em_graph_per_byte(e[2])) * (8u / em_graph_per_byte(e[2]));
        if (used != 0 && (blob[off + bytes - 1u] >> used) != 0) return EM_ERR_TENSOR;
    }
    /* 7. alignment of the actual address (covers a misaligned blob buffer too) */
    for (uint32_t i = 0; i < n_t; i++) {
        const uint8_t *e = tensors + (size_t)EM_GRAPH_TENSOR_ENTRY_SIZE * i;
        if ((uintptr_t)(blob + em_rd_u32(e + 4)) % em_graph_tensor_align(e[2]) != 0) return EM_ERR_ALIGN;
    }
    /* 8. parameter ranges */
    for (uint32_t i = 0; i < n_op; i++) {
        em_op_rec_t op;
        em_graph_read_op(ops, i, &op);
        st = check_params(blob, tensors, &op);
        if (st != EM_OK) return st;
    }
    /* 9. every op's kernel is in this build (EM_GRAPH_KERNELS, a firmware's op resolver) */
    for (uint32_t i = 0; i < n_op; i++)
        if (!em_graph_kernel_built(em_graph_op_kernel(buffers, tensors, ops + (size_t)EM_GRAPH_OP_SIZE * i)))
            return EM_ERR_OP;

    em_graph_set(g, blob);
    return EM_OK;
}
