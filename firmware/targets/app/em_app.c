/* One-model application glue, for hosts that cannot hand the runtime C structs: the browser (WebAssembly,
 * edgemem/demo/web, edgemem/demo/kws_web) and Python's ctypes (edgemem/demo/runtime.py). Beside the model it can
 * hold one input stage (docs/graph.md "Input stages": int16 samples in, the model's int8 input out), in a second
 * blob buffer and arena of its own, so raw audio goes stage -> model in the same memory (em_app_stage_*). The runtime itself keeps no state in globals;
 * this glue owns the memory, as a firmware's main() owns its arena: static buffers the caller writes the model blob
 * and the step input into and reads the logits from, and one context. The blob is a graph (docs/graph.md) handed
 * over at run time, so em_graph_parse checks all of it; a blob of the retired first format gets EM_ERR_VERSION.
 *
 * For wasm32 it is built with clang -ffreestanding -nostdlib (firmware/Makefile `wasm`): no libc, so the two
 * functions clang may emit calls to are defined here as byte loops (-ffreestanding keeps them from being turned
 * back into calls to themselves). The host shared library (`shared`) takes them from libc. */
#include <stddef.h>
#include <stdint.h>

#include "edgemem.h"

#ifdef __wasm__
void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memset(void *dst, int c, size_t n);

void *memcpy(void *restrict dst, const void *restrict src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--) *d++ = *s++;
    return dst;
}

void *memset(void *dst, int c, size_t n) {
    unsigned char *d = dst;
    while (n--) *d++ = (unsigned char)c;
    return dst;
}
#endif

#define EM_APP_BLOB_MAX (256u * 1024u)
#define EM_APP_ARENA_MAX (64u * 1024u)
#define EM_APP_IO_MAX 1024u
#define EM_APP_STAGE_BLOB_MAX (16u * 1024u)
#define EM_APP_STAGE_ARENA_MAX (16u * 1024u)

static uint32_t blob_buf[EM_APP_BLOB_MAX / 4u]; /* uint32_t: the parsers need 4-byte alignment */
static uint32_t arena_buf[EM_APP_ARENA_MAX / 4u];
static int8_t in_buf[EM_APP_IO_MAX];
static int16_t out_buf[EM_APP_IO_MAX];
static struct {
    int ready;
    em_graph_t g;
    em_graph_ctx_t ctx;
} rt;

static uint32_t stage_blob_buf[EM_APP_STAGE_BLOB_MAX / 4u];
static uint32_t stage_arena_buf[EM_APP_STAGE_ARENA_MAX / 4u];
static int16_t stage_in_buf[EM_APP_IO_MAX];
static int8_t stage_out_buf[EM_APP_IO_MAX];
static struct {
    int ready;
    em_graph_t g;
    em_graph_ctx_t ctx;
} stage;

uint8_t *em_app_blob(void) { return (uint8_t *)blob_buf; }
uint32_t em_app_blob_cap(void) { return EM_APP_BLOB_MAX; }
int8_t *em_app_in(void) { return in_buf; }
int16_t *em_app_out(void) { return out_buf; }

/* Parse the blob_len bytes at em_app_blob() and make a zeroed context: 0 or an em_status_t. */
int em_app_open(uint32_t blob_len) {
    rt.ready = 0;
    if (blob_len > EM_APP_BLOB_MAX) return EM_ERR_TRUNCATED;
    em_status_t st = em_graph_parse(&rt.g, (const uint8_t *)blob_buf, blob_len);
    if (st != EM_OK) return st;
    if (rt.g.n_in > EM_APP_IO_MAX || rt.g.n_out > EM_APP_IO_MAX) return EM_ERR_DIMS;
    st = em_graph_init(&rt.ctx, &rt.g, arena_buf, sizeof arena_buf);
    rt.ready = st == EM_OK;
    return st;
}

int em_app_n_in(void) { return rt.ready ? (int)rt.g.n_in : 0; }
int em_app_n_out(void) { return rt.ready ? (int)rt.g.n_out : 0; }
uint32_t em_app_arena_bytes(void) { return rt.ready ? (uint32_t)em_graph_arena_size(&rt.g) : 0u; }

/* One step: em_app_in() [n_in] int8 -> em_app_out() [n_out] int16. */
int em_app_step(void) {
    if (!rt.ready) return EM_ERR_STATE;
    return em_graph_step(&rt.ctx, in_buf, out_buf);
}

int em_app_reset(void) {
    if (!rt.ready) return EM_ERR_STATE;
    return em_graph_reset(&rt.ctx);
}

/* ---- the input stage ---- */
uint8_t *em_app_stage_blob(void) { return (uint8_t *)stage_blob_buf; }
uint32_t em_app_stage_blob_cap(void) { return EM_APP_STAGE_BLOB_MAX; }
int16_t *em_app_stage_in(void) { return stage_in_buf; }
int8_t *em_app_stage_out(void) { return stage_out_buf; }

/* Parse the blob_len bytes at em_app_stage_blob() as an input stage and make a zeroed context: 0 or an
 * em_status_t; a model graph (int8 in) is EM_ERR_BUFFER, as em_graph_stage_step would answer. */
int em_app_stage_open(uint32_t blob_len) {
    stage.ready = 0;
    if (blob_len > EM_APP_STAGE_BLOB_MAX) return EM_ERR_TRUNCATED;
    em_status_t st = em_graph_parse(&stage.g, (const uint8_t *)stage_blob_buf, blob_len);
    if (st != EM_OK) return st;
    if (em_graph_is_input_stage(&stage.g) != 1) return EM_ERR_BUFFER;
    if (stage.g.n_in > EM_APP_IO_MAX || stage.g.n_out > EM_APP_IO_MAX) return EM_ERR_DIMS;
    st = em_graph_init(&stage.ctx, &stage.g, stage_arena_buf, sizeof stage_arena_buf);
    stage.ready = st == EM_OK;
    return st;
}

int em_app_stage_n_in(void) { return stage.ready ? (int)stage.g.n_in : 0; }
int em_app_stage_n_out(void) { return stage.ready ? (int)stage.g.n_out : 0; }
uint32_t em_app_stage_arena_bytes(void) { return stage.ready ? (uint32_t)em_graph_arena_size(&stage.g) : 0u; }

/* One stage step: em_app_stage_in() [n_in] int16 samples -> em_app_stage_out() [n_out] int8 (the model's input). */
int em_app_stage_step(void) {
    if (!stage.ready) return EM_ERR_STATE;
    return em_graph_stage_step(&stage.ctx, stage_in_buf, stage_out_buf);
}

int em_app_stage_reset(void) {
    if (!stage.ready) return EM_ERR_STATE;
    return em_graph_reset(&stage.ctx);
}
