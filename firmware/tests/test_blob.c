/* em_model_parse on a valid blob and on one malformed variant per check, each with its own status. */
#include <string.h>

#include "edgemem.h"
#include "em_kernels.h"
#include "em_test.h"

static uint32_t g_buf32[TB_CAP / 4 + 4]; /* 4-byte aligned */
static uint8_t *const g_blob = (uint8_t *)g_buf32;
static uint32_t g_orig32[TB_CAP / 4];
static size_t g_size;
static const tb_dims_t g_dims = {.n_in = 4, .n_u = 3, .order = 2, .n_h = 6, .n_out = 2, .a_shift = 14, .flags = 0x3};

static void fresh(void) {
    g_size = tb_build(g_blob, TB_CAP, &g_dims, 77u);
    memcpy(g_orig32, g_buf32, sizeof g_orig32);
}

static em_status_t parse(size_t size) {
    em_model_t m;
    memset(&m, 0xA5, sizeof m);
    return em_model_parse(&m, g_blob, size);
}

static void test_parse_valid(void) {
    fresh();
    CHECK(g_size > 0);
    CHECK_EQ(tb_r32(g_blob + 12), tb_crc32(g_blob + 64, g_size - 64));
    em_model_t m;
    CHECK_EQ(em_model_parse(&m, g_blob, g_size), EM_OK);
    CHECK_EQ(em_model_parse(&m, g_blob, g_size + 100), EM_OK); /* trailing bytes after total_size are ignored */
    CHECK_EQ(m.n_in, 4);
    CHECK_EQ(m.n_u, 3);
    CHECK_EQ(m.order, 2);
    CHECK_EQ(m.n_m, 12);
    CHECK_EQ(m.n_h, 6);
    CHECK_EQ(m.n_out, 2);
    CHECK_EQ(m.a_shift, 14);
    CHECK_EQ(m.pop[EM_POP_ENC].cuba, 1);
    CHECK_EQ(m.pop[EM_POP_MEM].cuba, 1);
    CHECK_EQ(m.pop[EM_POP_HID].cuba, 0);
    CHECK_EQ(m.pop[EM_POP_MEM].n, 12);
    CHECK(m.fc[EM_FC_HID_M].w == (const int8_t *)tb_data(g_blob, EM_TENSOR_FC(EM_FC_HID_M, 0)));
    CHECK_EQ(m.fc[EM_FC_HID_M].in_dim, 12);
    CHECK_EQ(m.fc[EM_FC_HID_M].out_dim, 6);
    CHECK_EQ(m.fc[EM_FC_OUT].in_dim, 6);
    CHECK_EQ(m.fc[EM_FC_OUT].out_dim, 2);
    CHECK(m.lmu_b == (const int32_t *)tb_data(g_blob, EM_TENSOR_LMU_B));
    CHECK(m.pop[EM_POP_HID].thr == (const int16_t *)tb_data(g_blob, EM_TENSOR_POP(EM_POP_HID, 2)));
    CHECK_EQ(em_model_check(&m), EM_OK);
    CHECK_EQ(em_model_parse(NULL, g_blob, g_size), EM_ERR_NULL);
    CHECK_EQ(em_model_parse(&m, NULL, g_size), EM_ERR_NULL);
}

static void test_parse_truncated(void) {
    fresh();
    const size_t cuts[] = {0, 1, 4, 63, 64, 100, 64 + 12 * 39 - 1, 64 + 12 * 39, 700};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) CHECK_EQ(parse(cuts[k]), EM_ERR_TRUNCATED);
    CHECK_EQ(parse(g_size - 1), EM_ERR_TRUNCATED);
    /* total_size field too small for the declared table */
    tb_w32(g_blob + 8, 64 + 12 * 39 - 1);
    CHECK_EQ(parse(g_size), EM_ERR_TRUNCATED);
    fresh();
    tb_w16(g_blob + 32, 5000); /* n_tensors whose table would run past total_size */
    CHECK_EQ(parse(g_size), EM_ERR_TRUNCATED);
    fresh();
    tb_w32(g_blob + 8, 0xFFFFFFFFu);
    CHECK_EQ(parse(g_size), EM_ERR_TRUNCATED);
    fresh();
    tb_w32(g_blob + 8, 10); /* below the header itself */
    CHECK_EQ(parse(g_size), EM_ERR_TRUNCATED);
}

static void test_parse_header(void) {
    fresh();
    g_blob[0] = 'X';
    CHECK_EQ(parse(g_size), EM_ERR_MAGIC);
    fresh();
    tb_w16(g_blob + 4, 2);
    CHECK_EQ(parse(g_size), EM_ERR_VERSION);
    fresh();
    tb_w16(g_blob + 4, 0);
    CHECK_EQ(parse(g_size), EM_ERR_VERSION);
    fresh();
    tb_w16(g_blob + 6, 60);
    CHECK_EQ(parse(g_size), EM_ERR_VERSION);
    fresh();
    g_blob[g_size - 1] ^= 0x01; /* last data byte */
    CHECK_EQ(parse(g_size), EM_ERR_CRC);
    fresh();
    g_blob[64] ^= 0x80; /* first table byte */
    CHECK_EQ(parse(g_size), EM_ERR_CRC);
    fresh();
    g_blob[12] ^= 0x01;
    CHECK_EQ(parse(g_size), EM_ERR_CRC);
    fresh();
    tb_w16(g_blob + 16, 2); /* header is outside the CRC: no fix needed */
    CHECK_EQ(parse(g_size), EM_ERR_KIND);
    fresh();
    tb_w16(g_blob + 16, 0);
    CHECK_EQ(parse(g_size), EM_ERR_KIND);
}

static void test_parse_dims(void) {
    const int fields[] = {20, 22, 24, 26, 28}; /* n_in, n_u, order, n_h, n_out */
    for (int k = 0; k < 5; k++) {
        fresh();
        tb_w16(g_blob + fields[k], 0);
        CHECK_EQ(parse(g_size), EM_ERR_DIMS);
        fresh();
        tb_w16(g_blob + fields[k], EM_MAX_DIM + 1);
        CHECK_EQ(parse(g_size), EM_ERR_DIMS);
        fresh();
        tb_w16(g_blob + fields[k], 0xFFFF);
        CHECK_EQ(parse(g_size), EM_ERR_DIMS);
    }
    fresh();
    tb_w16(g_blob + 22, 64); /* n_u = 64, order = 9: each fine, n_m = 1152 too big */
    tb_w16(g_blob + 24, 9);
    CHECK_EQ(parse(g_size), EM_ERR_DIMS);
    fresh();
    tb_w16(g_blob + 22, 1024); /* n_m = 2 * 1024 * 1024 must not overflow into something small */
    tb_w16(g_blob + 24, 1024);
    CHECK_EQ(parse(g_size), EM_ERR_DIMS);
    fresh();
    tb_w16(g_blob + 26, 7); /* valid dims that disagree with the tensor counts */
    CHECK_EQ(parse(g_size), EM_ERR_TENSOR);
}

static void test_parse_tensor(void) {
    fresh();
    tb_w16(tb_entry(g_blob, 5), 6); /* id 5 becomes a second id 6: 5 missing, 6 duplicated */
    tb_fix_crc(g_blob);
    CHECK_EQ(parse(g_size), EM_ERR_TENSOR);
    fresh();
    tb_w16(tb_entry(g_blob, 38), 39); /* unknown id, 38 missing */
    tb_fix_crc(g_blob);
    CHECK_EQ(parse(g_size), EM_ERR_TENSOR);
    fresh();
    tb_w16(g_blob + 32, 38); /* last entry (id 0) dropped from the table */
    tb_fix_crc(g_blob);
    CHECK_EQ(parse(g_size), EM_ERR_TENSOR);
    fresh();
    tb_w16(g_blob + 32, 40); /* an extra entry (bytes of tensor data read as an entry) */
    tb_fix_crc(g_blob);
    CHECK_EQ(parse(g_size), EM_ERR_TENSOR);
    const int wrong_dtype[][2] = {{EM_TENSOR_FC(0, 0), EM_DTYPE_S16}, {EM_TENSOR_FC(1, 1), EM_DTYPE_S16},
                                  {EM_TENSOR_FC(2, 2), EM_DTYPE_S8},  {EM_TENSOR_FC(6, 3), EM_DTYPE_S32},
                                  {EM_TENSOR_POP(1, 0), EM_DTYPE_S32}, {EM_TENSOR_LMU_A, EM_DTYPE_S32},
                                  {EM_TENSOR_LMU_B, EM_DTYPE_S16},     {EM_TENSOR_FC(3, 0), 0},
                                  {EM_TENSOR_FC(3, 0), 200}};
    for (size_t k = 0; k < sizeof wrong_dtype / sizeof wrong_dtype[0]; k++) {
        fresh();
        tb_entry(g_blob, wrong_dtype[k][0])[2] = (uint8_t)wrong_dtype[k][1];
        tb_fix_crc(g_blob);
        CHECK_EQ(parse(g_size), EM_ERR_TENSOR);
    }
    const int ids[] = {EM_TENSOR_FC(0, 0), EM_TENSOR_FC(5, 0), EM_TENSOR_FC(6, 2), EM_TENSOR_POP(2, 2), EM_TENSOR_LMU_A};
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        uint8_t *e;
        fresh();
        e = tb_entry(g_blob, ids[k]);
        tb_w32(e + 8, tb_r32(e + 8) - 1);
        tb_fix_crc(g_blob);
        CHECK_EQ(parse(g_size), EM_ERR_TENSOR);
        fresh();
        e = tb_entry(g_blob, ids[k]);
        tb_w32(e + 8, 0xFFFFFFFFu); /* count * size would wrap in 32 bits */
        tb_fix_crc(g_blob);
        CHECK_EQ(parse(g_size), EM_ERR_TENSOR);
    }
}

static void test_parse_bounds_align(void) {
    uint8_t *e;
    const uint32_t bad_offsets[] = {0, 63, 64, 64 + 12 * 39 - 1, 0xFFFFFFFFu, 0xFFFFFFFCu, 0x80000000u};
    for (size_t k = 0; k < sizeof bad_offsets / sizeof bad_offsets[0]; k++) {
        fresh();
        tb_w32(tb_entry(g_blob, EM_TENSOR_FC(2, 1)) + 4, bad_offsets[k]); /* an s32 tensor */
        tb_fix_crc(g_blob);
        CHECK_EQ(parse(g_size), EM_ERR_BOUNDS);
    }
    fresh();
    tb_w32(tb_entry(g_blob, EM_TENSOR_LMU_B) + 4, (uint32_t)g_size); /* starts at total_size */
    tb_fix_crc(g_blob);
    CHECK_EQ(parse(g_size), EM_ERR_BOUNDS);
    fresh();
    e = tb_entry(g_blob, EM_TENSOR_FC(5, 0)); /* s8 [6][12]: starts inside, ends 1 past total_size */
    tb_w32(e + 4, (uint32_t)g_size - 6u * 12u + 1u);
    tb_fix_crc(g_blob);
    CHECK_EQ(parse(g_size), EM_ERR_BOUNDS);
    fresh();
    e = tb_entry(g_blob, EM_TENSOR_FC(5, 0)); /* ends exactly at total_size: fine (overlap is allowed) */
    tb_w32(e + 4, (uint32_t)g_size - 6u * 12u);
    tb_fix_crc(g_blob);
    CHECK_EQ(parse(g_size), EM_OK);
    /* misaligned: s32 at +2, s16 at +1 */
    fresh();
    e = tb_entry(g_blob, EM_TENSOR_FC(0, 2));
    tb_w32(e + 4, tb_r32(e + 4) + 2);
    tb_fix_crc(g_blob);
    CHECK_EQ(parse(g_size), EM_ERR_ALIGN);
    fresh();
    e = tb_entry(g_blob, EM_TENSOR_POP(0, 0));
    tb_w32(e + 4, tb_r32(e + 4) + 1);
    tb_fix_crc(g_blob);
    CHECK_EQ(parse(g_size), EM_ERR_ALIGN);
    /* a valid blob at an odd address: its s16/s32 tensors are misaligned in memory */
    fresh();
    static uint32_t shifted32[TB_CAP / 4 + 4];
    uint8_t *shifted = (uint8_t *)shifted32 + 1;
    memcpy(shifted, g_blob, g_size);
    em_model_t m;
    CHECK_EQ(em_model_parse(&m, shifted, g_size), EM_ERR_ALIGN);
}

/* Poke one tensor element (dtype from the table) and fix the CRC. */
static void poke(int id, uint32_t index, int32_t v) {
    uint8_t *e = tb_entry(g_blob, id), *p = g_blob + tb_r32(e + 4);
    if (e[2] == EM_DTYPE_S8) p[index] = (uint8_t)v;
    else if (e[2] == EM_DTYPE_S16) tb_w16(p + 2 * index, (uint32_t)v);
    else tb_w32(p + 4 * index, (uint32_t)v);
    tb_fix_crc(g_blob);
}

static void test_parse_params(void) {
    const struct {
        int id;
        uint32_t index;
        int32_t v;
    } bad[] = {
        {EM_TENSOR_FC(0, 3), 0, 0},           {EM_TENSOR_FC(3, 3), 5, 63},        {EM_TENSOR_FC(6, 3), 1, -1},
        {EM_TENSOR_FC(1, 2), 2, (1 << 30) - 1}, {EM_TENSOR_FC(4, 2), 0, INT32_MIN}, {EM_TENSOR_FC(6, 2), 1, -5},
        {EM_TENSOR_FC(6, 2), 1, 0},           {EM_TENSOR_POP(0, 0), 0, -1},       {EM_TENSOR_POP(2, 0), 5, -32768},
        {EM_TENSOR_POP(1, 1), 3, -1},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        fresh();
        poke(bad[k].id, bad[k].index, bad[k].v);
        CHECK_EQ(parse(g_size), EM_ERR_PARAM);
    }
    /* thresholds are learned freely: zero and negative ones are valid (such a cell fires at rest) */
    fresh();
    poke(EM_TENSOR_POP(1, 2), 11, 0);
    poke(EM_TENSOR_POP(2, 2), 0, -7);
    CHECK_EQ(parse(g_size), EM_OK);
    /* alpha of a LIF population is ignored (hidden is LIF here) */
    fresh();
    poke(EM_TENSOR_POP(2, 1), 0, -1);
    CHECK_EQ(parse(g_size), EM_OK);
    /* edges that are valid */
    fresh();
    poke(EM_TENSOR_FC(0, 3), 0, 1);
    poke(EM_TENSOR_FC(0, 3), 1, 62);
    poke(EM_TENSOR_FC(0, 2), 0, 1 << 30);
    poke(EM_TENSOR_FC(0, 2), 1, INT32_MAX);
    poke(EM_TENSOR_POP(0, 0), 0, 0);
    poke(EM_TENSOR_POP(0, 0), 1, 32767);
    poke(EM_TENSOR_POP(0, 2), 0, 1);
    CHECK_EQ(parse(g_size), EM_OK);
    const uint32_t a_shifts[] = {0, 31, 0xFFFF};
    for (size_t k = 0; k < 3; k++) {
        fresh();
        tb_w16(g_blob + 30, a_shifts[k]);
        CHECK_EQ(parse(g_size), EM_ERR_PARAM);
    }
    fresh();
    tb_w16(g_blob + 30, 30);
    CHECK_EQ(parse(g_size), EM_OK);
}

/* Hostile input: random edits to header, table and data, CRC fixed so they reach the deep checks. Whatever
 * parses must also run; ASan/UBSan flag any out-of-bounds access. */
static void test_parse_fuzz(void) {
    static uint32_t arena[4096];
    int ok = 0;
    for (int k = 0; k < 3000; k++) {
        fresh();
        t_seed(1000u + (uint32_t)k);
        int edits = t_range(1, 4);
        for (int j = 0; j < edits; j++) {
            uint32_t at = (uint32_t)(t_rand() % 3 == 0 ? t_range(0, 63) : t_rand() % 2 ? t_range(64, 64 + 12 * 39 - 1)
                                                                                        : t_range(0, (int32_t)g_size - 1));
            g_blob[at] = t_rand() % 2 ? (uint8_t)t_rand() : (uint8_t)(g_blob[at] ^ (1u << (t_rand() % 8)));
        }
        uint32_t total = tb_r32(g_blob + 8); /* the CRC helper trusts total_size: only when it is sane */
        if (t_rand() % 8 && total >= 64 && total <= g_size) tb_fix_crc(g_blob);
        size_t size = t_rand() % 10 ? g_size : (size_t)t_range(0, (int32_t)g_size);
        em_model_t m;
        if (em_model_parse(&m, g_blob, size) == EM_OK) {
            ok++;
            em_ctx_t ctx;
            CHECK(em_arena_size(&m) <= sizeof arena);
            CHECK_EQ(em_init(&ctx, &m, arena, sizeof arena), EM_OK);
            int8_t in[EM_MAX_DIM];
            int16_t out[EM_MAX_DIM];
            for (int i = 0; i < m.n_in; i++) in[i] = (int8_t)t_rand();
            for (int t = 0; t < 3; t++) CHECK_EQ(em_step(&ctx, in, out), EM_OK);
        }
    }
    CHECK(ok > 0); /* some edits (data values) leave a valid model */
}

void suite_blob(void) {
    RUN(test_parse_valid);
    RUN(test_parse_truncated);
    RUN(test_parse_header);
    RUN(test_parse_dims);
    RUN(test_parse_tensor);
    RUN(test_parse_bounds_align);
    RUN(test_parse_params);
    RUN(test_parse_fuzz);
}
