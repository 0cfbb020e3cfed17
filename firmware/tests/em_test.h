/* Minimal test harness: RUN(fn) runs one test case; CHECK* record failures with file:line and keep going. */
#ifndef EM_TEST_H
#define EM_TEST_H

#include <stdint.h>
#include <stdio.h>

void em_test_fail(const char *file, int line, const char *expr, long long a, long long b);
void em_test_run(const char *name, void (*fn)(void));
extern const char *em_test_fixture_dir; /* tests/fixtures/tiny_graph, or argv[1] */

#define RUN(fn) em_test_run(#fn, fn)
#define CHECK(c)                                                    \
    do {                                                            \
        if (!(c)) em_test_fail(__FILE__, __LINE__, #c, 0, 0);       \
    } while (0)
#define CHECK_EQ(a, b)                                                                         \
    do {                                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                                    \
        if (a_ != b_) em_test_fail(__FILE__, __LINE__, #a " == " #b, a_, b_);                  \
    } while (0)

/* Deterministic PRNG (xorshift32) so failures reproduce. */
uint32_t t_rand(void);
void t_seed(uint32_t s);
int32_t t_range(int32_t lo, int32_t hi); /* uniform in [lo, hi] */

/* ---- blob bytes (test_blob_util.c) ---- */
void tb_fix_crc(uint8_t *blob); /* recompute the CRC after an edit (bytes 12..15 = crc of [64, total_size)) */
void tb_w16(uint8_t *p, uint32_t v);
void tb_w32(uint8_t *p, uint32_t v);
uint32_t tb_r32(const uint8_t *p);
uint32_t tb_crc32(const uint8_t *p, size_t n); /* independent table-driven CRC-32 */
long em_test_read_fixture(const char *name, void *buf, size_t cap); /* file of em_test_fixture_dir */

/* ---- graph blob builder (test_graph_util.c), written from docs/graph.md (not from graph_blob.c) ---- */
#define GB_NONE 0xFFFFu
#define GB_MAX_BUFFERS 64
#define GB_MAX_OPS 64
#define GB_MAX_TENSORS 128
#define GB_POOL 32768 /* tensor values, all tensors together */
enum { GB_S8 = 1, GB_S16 = 2, GB_S32 = 3 };
enum { GB_FC = 1, GB_CONV1D = 2, GB_ACT = 3, GB_LIF = 4, GB_LEAKY = 5, GB_LMU = 6, GB_ADD = 7, GB_ONOFF = 8,
       GB_SPIKE = 9 };
typedef struct {
    uint16_t type, flags, in0, in1, out, state0, state1, scratch, d[4], t[4];
} gb_op_t;
typedef struct {
    uint16_t n_in, n_out, in_buffer, out_buffer;
    int n_buffers, n_ops, n_tensors, pool_used;
    struct {
        uint8_t dtype, state;
        uint32_t count;
    } buf[GB_MAX_BUFFERS];
    gb_op_t op[GB_MAX_OPS];
    struct {
        uint8_t dtype;
        uint32_t count, at; /* values pool[at .. at + count) */
    } ten[GB_MAX_TENSORS];
    int32_t pool[GB_POOL];
} gb_t;
void gb_init(gb_t *b, int n_in, int n_out); /* adds buffer 0 = input s8 [n_in]; out_buffer set by the caller */
int gb_buffer(gb_t *b, int dtype, uint32_t count, int state);
int gb_tensor(gb_t *b, int dtype, const int32_t *values, uint32_t count); /* values NULL: zeros */
int32_t *gb_values(gb_t *b, int tensor);                                   /* to fill or edit before gb_build */
gb_op_t gb_op(int type, int flags); /* all buffer and tensor fields NONE, d all 0 */
int gb_add(gb_t *b, const gb_op_t *op);
/* Valid blob layout: header, tables, tensors 4-byte aligned, buffers packed in index order, CRC. Returns the size
 * (0 if cap is too small). arena_size = end of the last buffer, rounded up to 4. */
size_t gb_build(const gb_t *b, uint8_t *blob, size_t cap);
uint8_t *gb_buffer_entry(uint8_t *blob, int i); /* 12-byte entries */
uint8_t *gb_op_record(uint8_t *blob, int i);    /* 32-byte records */
uint8_t *gb_tensor_entry(uint8_t *blob, int i);
uint8_t *gb_tensor_data(uint8_t *blob, int i);

/* ---- literal integer rules of docs/graph.md (test_graph_util.c), for the graph and kernel tests ---- */
int64_t gref_sat(int64_t x, int bits);
int64_t gref_rsr(int64_t x, int s); /* rshift_round; s = 0: x */
int32_t gref_requant(int64_t acc, int32_t mult, int shift); /* requant(acc) = sat32(rsr(sat32(acc) * M, s)) */
void gref_store(int32_t *out, int64_t r, int acc);            /* sat16(r), or out = sat16(out + sat16(r)) */

void suite_kernels(void);
void suite_runtime(void);
void suite_guard(void);
void suite_graph_kernels(void);
void suite_graph(void);
void suite_graph_patch(void);
void suite_dot(void);

#endif /* EM_TEST_H */
