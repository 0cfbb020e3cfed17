/* Minimal test harness: RUN(fn) runs one test case; CHECK* record failures with file:line and keep going. */
#ifndef EM_TEST_H
#define EM_TEST_H

#include <stdint.h>
#include <stdio.h>

void em_test_fail(const char *file, int line, const char *expr, long long a, long long b);
void em_test_run(const char *name, void (*fn)(void));
extern const char *em_test_fixture_dir; /* tests/fixtures/tiny_model, or argv[1] */

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

/* ---- test blob builder (test_blob_util.c) ---- */
typedef struct {
    uint16_t n_in, n_u, order, n_h, n_out, a_shift, flags;
} tb_dims_t;
#define TB_CAP 65536u
/* Builds a valid v1 blob (table in reverse id order, data aligned) into blob (4-byte aligned); returns size. */
size_t tb_build(uint8_t *blob, size_t cap, const tb_dims_t *d, uint32_t seed);
uint8_t *tb_entry(uint8_t *blob, int id);  /* 12-byte table entry of tensor id */
uint8_t *tb_data(uint8_t *blob, int id);   /* first byte of tensor id's data */
void tb_fix_crc(uint8_t *blob);            /* recompute the CRC after an edit */
void tb_w16(uint8_t *p, uint32_t v);
void tb_w32(uint8_t *p, uint32_t v);
uint32_t tb_r32(const uint8_t *p);
uint32_t tb_crc32(const uint8_t *p, size_t n); /* independent table-driven CRC-32 */
long em_test_read_fixture(const char *name, void *buf, size_t cap); /* file of em_test_fixture_dir */

void suite_kernels(void);
void suite_blob(void);
void suite_runtime(void);
void suite_guard(void);

#endif /* EM_TEST_H */
