/* Model blob parser: validates a version-1 blob (layout in edgemem.h) and points an em_model_t into it.
 * Checks run in a fixed order so each defect maps to one status; nothing is read outside [blob, blob+size). */
#include "edgemem.h"
#include "em_crc32.h"

/* Little-endian field readers: byte-wise, so the blob needs no alignment for the header. */
static uint32_t rd_u16(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
static uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Expected dtype and element count of tensor `id` for the given dims. */
static void tensor_spec(uint32_t id, const uint32_t fc_dims[EM_FC_COUNT][2], const uint32_t pop_n[EM_POP_COUNT],
                        uint32_t order, uint32_t *dtype, uint32_t *count) {
    if (id < 28) {
        uint32_t f = id / 4, k = id % 4, out = fc_dims[f][0], in = fc_dims[f][1];
        static const uint8_t fc_dt[4] = {EM_DTYPE_S8, EM_DTYPE_S32, EM_DTYPE_S32, EM_DTYPE_S8};
        *dtype = fc_dt[k];
        *count = k == 0 ? out * in : out; /* dims <= 1024: no overflow */
    } else if (id < 37) {
        *dtype = EM_DTYPE_S16;
        *count = pop_n[(id - 28) / 3];
    } else if (id == EM_TENSOR_LMU_A) {
        *dtype = EM_DTYPE_S16;
        *count = order * order;
    } else {
        *dtype = EM_DTYPE_S32;
        *count = order;
    }
}

static uint32_t dtype_size(uint32_t dtype) { return dtype == EM_DTYPE_S8 ? 1u : dtype == EM_DTYPE_S16 ? 2u : 4u; }

static int dim_ok(uint32_t d) { return d >= 1 && d <= EM_MAX_DIM; }

em_status_t em_model_parse(em_model_t *model, const uint8_t *blob, size_t size) {
    if (!model || !blob) return EM_ERR_NULL;
    if (size < EM_HEADER_SIZE) return EM_ERR_TRUNCATED;
    uint32_t total = rd_u32(blob + 8), n_tensors = rd_u16(blob + 32);
    /* n_tensors <= 65535: 64 + 12 * n fits uint32 */
    if ((size_t)total > size || total < EM_HEADER_SIZE + EM_TENSOR_ENTRY_SIZE * n_tensors) return EM_ERR_TRUNCATED;
    if (rd_u32(blob) != EM_MAGIC) return EM_ERR_MAGIC;
    /* version 1 fixes the header size; any other header size is another format */
    if (rd_u16(blob + 4) != EM_FORMAT_VERSION || rd_u16(blob + 6) != EM_HEADER_SIZE) return EM_ERR_VERSION;
    if (em_crc32(blob + EM_HEADER_SIZE, total - EM_HEADER_SIZE) != rd_u32(blob + 12)) return EM_ERR_CRC;
    if (rd_u16(blob + 16) != EM_KIND_L2MU) return EM_ERR_KIND;

    uint32_t flags = rd_u16(blob + 18), n_in = rd_u16(blob + 20), n_u = rd_u16(blob + 22), order = rd_u16(blob + 24);
    uint32_t n_h = rd_u16(blob + 26), n_out = rd_u16(blob + 28), a_shift = rd_u16(blob + 30);
    if (!dim_ok(n_in) || !dim_ok(n_u) || !dim_ok(order) || !dim_ok(n_h) || !dim_ok(n_out)) return EM_ERR_DIMS;
    uint32_t n_m = 2u * n_u * order; /* <= 2 * 1024 * 1024: fits */
    if (n_m > EM_MAX_DIM) return EM_ERR_DIMS;

    /* [out_dim, in_dim] per fc, in em_fc_id_t order (see edgemem.h) */
    const uint32_t fc_dims[EM_FC_COUNT][2] = {{n_u, n_in}, {n_u, n_h}, {n_u, n_m}, {n_h, n_in},
                                              {n_h, n_h},  {n_h, n_m}, {n_out, n_h}};
    const uint32_t pop_n[EM_POP_COUNT] = {n_u, n_m, n_h};

    /* Pass 1: ids, dtypes and counts (table lies inside [0, total) by the truncation check). */
    if (n_tensors != EM_TENSOR_COUNT) return EM_ERR_TENSOR;
    const uint8_t *table = blob + EM_HEADER_SIZE;
    uint64_t seen = 0; /* bit id set once id was met */
    for (uint32_t t = 0; t < n_tensors; t++) {
        const uint8_t *e = table + EM_TENSOR_ENTRY_SIZE * t;
        uint32_t id = rd_u16(e), dtype = e[2], count = rd_u32(e + 8), want_dt, want_n;
        if (id >= EM_TENSOR_COUNT || (seen >> id) & 1u) return EM_ERR_TENSOR;
        seen |= (uint64_t)1 << id;
        tensor_spec(id, fc_dims, pop_n, order, &want_dt, &want_n);
        if (dtype != want_dt || count != want_n) return EM_ERR_TENSOR;
    }
    /* Pass 2: extents inside the data area [table end, total), in 64-bit so offset + bytes cannot wrap. */
    uint64_t data_start = EM_HEADER_SIZE + (uint64_t)EM_TENSOR_ENTRY_SIZE * n_tensors;
    for (uint32_t t = 0; t < n_tensors; t++) {
        const uint8_t *e = table + EM_TENSOR_ENTRY_SIZE * t;
        uint64_t off = rd_u32(e + 4), bytes = (uint64_t)rd_u32(e + 8) * dtype_size(e[2]);
        if (off < data_start || off >= total || off + bytes > total) return EM_ERR_BOUNDS;
    }
    /* Pass 3: alignment of the actual address (covers a misaligned blob buffer too), then record pointers. */
    const void *ptr[EM_TENSOR_COUNT] = {0};
    for (uint32_t t = 0; t < n_tensors; t++) {
        const uint8_t *e = table + EM_TENSOR_ENTRY_SIZE * t;
        const uint8_t *p = blob + rd_u32(e + 4);
        if ((uintptr_t)p % dtype_size(e[2]) != 0) return EM_ERR_ALIGN;
        ptr[rd_u16(e)] = p;
    }

    em_model_t m;
    m.kind = EM_KIND_L2MU;
    m.n_in = (uint16_t)n_in;
    m.n_u = (uint16_t)n_u;
    m.order = (uint16_t)order;
    m.n_m = (uint16_t)n_m;
    m.n_h = (uint16_t)n_h;
    m.n_out = (uint16_t)n_out;
    m.a_shift = (uint16_t)a_shift;
    for (int f = 0; f < EM_FC_COUNT; f++) {
        m.fc[f].w = (const int8_t *)ptr[EM_TENSOR_FC(f, 0)];
        m.fc[f].bias = (const int32_t *)ptr[EM_TENSOR_FC(f, 1)];
        m.fc[f].mult = (const int32_t *)ptr[EM_TENSOR_FC(f, 2)];
        m.fc[f].shift = (const int8_t *)ptr[EM_TENSOR_FC(f, 3)];
        m.fc[f].out_dim = (uint16_t)fc_dims[f][0];
        m.fc[f].in_dim = (uint16_t)fc_dims[f][1];
    }
    for (int p = 0; p < EM_POP_COUNT; p++) {
        m.pop[p].beta = (const int16_t *)ptr[EM_TENSOR_POP(p, 0)];
        m.pop[p].alpha = (const int16_t *)ptr[EM_TENSOR_POP(p, 1)];
        m.pop[p].thr = (const int16_t *)ptr[EM_TENSOR_POP(p, 2)];
        m.pop[p].n = (uint16_t)pop_n[p];
        m.pop[p].cuba = (uint8_t)((flags >> p) & 1u);
    }
    m.lmu_a = (const int16_t *)ptr[EM_TENSOR_LMU_A];
    m.lmu_b = (const int32_t *)ptr[EM_TENSOR_LMU_B];

    /* Parameter ranges: only hand the model out if em_init would accept it. */
    em_status_t st = em_model_check(&m);
    if (st != EM_OK) return st;
    *model = m;
    return EM_OK;
}
