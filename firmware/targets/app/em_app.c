/* One-model application glue, for hosts that cannot hand the runtime C structs: the browser (WebAssembly,
 * edgemem/demo/web) and Python's ctypes (edgemem/demo/runtime.py). The runtime itself keeps no state in globals;
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

static uint32_t blob_buf[EM_APP_BLOB_MAX / 4u]; /* uint32_t: the parsers need 4-byte alignment */
static uint32_t arena_buf[EM_APP_ARENA_MAX / 4u];
static int8_t in_buf[EM_APP_IO_MAX];
static int16_t out_buf[EM_APP_IO_MAX];
static struct {
    int ready;
    em_graph_t g;
    em_graph_ctx_t ctx;
} rt;

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
