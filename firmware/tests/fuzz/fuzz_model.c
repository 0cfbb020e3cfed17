/* libFuzzer harness over the graph runtime (built by `make fuzz` with clang,
 * -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all): every blob goes through em_graph_parse and
 * em_graph_bind; one the parser accepts then through em_graph_init + em_graph_reset + em_graph_step (or the patch
 * schedule), facing the contracts below.
 *
 * Input layout (all of it optional: a short input just stops early):
 *   byte 0      flags
 *                 bit 0     after copying the blob, recompute its CRC-32 (bytes 12..15 = crc of [64, total_size))
 *                           so mutations get past the checksum and reach the tables, dims and parameters
 *                 bits 1-2  arena mode (need = em_graph_arena_size):
 *                                       0 = exactly need bytes
 *                                       1 = need - 1 bytes                     (em_graph_init must say EM_ERR_ARENA)
 *                                       2 = misaligned base (+1, or +2 if bit 3), need + 8 bytes
 *                                                                              (em_graph_init must say EM_ERR_ARENA)
 *                                       3 = the whole 64 KiB buffer (the runtime must still use only need bytes
 *                                           of it)
 *                 bit 3     misalignment 2 instead of 1 (mode 2 only)
 *                 bit 4     patch mode: the bytes after the blob start with a patch plan, u16
 *                           length M (clamped) then M bytes (em_graph_patch_parse); with bit 0 too, the plan's
 *                           graph-CRC field is set to the blob's and its own CRC recomputed. A valid plan runs the
 *                           steps through em_graph_patch_run in blocks of 1, 2, .. P frames, in an exact arena with
 *                           guards, and every output must equal em_graph_step's (streaming, its own arena)
 *                 bits 5-7  unused
 *   bytes 1..4  blob length L, little endian, clamped to the bytes that remain
 *   L bytes     the model blob (copied into its own 16-byte aligned heap buffer of exactly L bytes, so ASan sees
 *               any read past it and the parser's alignment check sees an aligned base)
 *   the rest    int8 input steps of n_in bytes each (an input stage, docs/graph.md "Input stages": int16 little
 *               endian samples, 2 n_in bytes a step, through em_graph_stage_step); at most FUZZ_MAX_STEPS are run
 *               (no complete step: one step
 *               of zeros). em_graph_reset once after half of them, then step 0's input is replayed and must give
 *               step 0's output again (reset restores the initial state), then the remaining steps run.
 *
 * Contract checks (abort() on violation, so libFuzzer records a crash):
 *   - every returned status is one of the em_status_t values, and em_status_str gives a non-empty string for it
 *   - a failed em_graph_parse or em_graph_bind leaves *g untouched; a blob whose version field is not 2 (the
 *     retired first format included) is never accepted by either
 *   - a successful parse: 0 < em_graph_arena_size == the header's arena_size, n_in/n_out equal the header's, and
 *     em_graph_bind accepts the same blob and fills an identical em_graph_t (bind checks a subset of parse's
 *     checks). Graphs needing more than the 64 KiB buffer (a graph may declare any arena_size) are only checked
 *     for EM_ERR_ARENA on a smaller arena
 *   - em_graph_init: EM_OK in modes 0/3, EM_ERR_ARENA in modes 1/2 (and then em_graph_step says EM_ERR_STATE and
 *     the arena buffer is untouched); em_graph_step and em_graph_reset return EM_OK after a successful init
 *   - no writes outside the arena: the arena lives in a static 64 KiB buffer behind a 64-byte front guard; a
 *     64-byte guard of 0xA5 sits right after the arena's used end (arena + need). Both guards are
 *     compared after every step; everything past the used end is also ASan-poisoned while the runtime runs, so
 *     even a read there is reported at the faulting instruction
 *   - em_graph_step writes only out[0 .. n_out) (out is an exact heap buffer) and reads only in[0 .. n_in)
 */
#define _POSIX_C_SOURCE 200112L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgemem.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif
#ifdef FUZZ_ASAN
void __asan_poison_memory_region(void const volatile *addr, size_t size);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#define POISON(p, n) __asan_poison_memory_region((p), (n))
#define UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define FUZZ_MAX_STEPS 64
#define ARENA_BYTES 65536u
#define GUARD_BYTES 64u
#define GUARD_BYTE 0xA5u
#define ARENA_FILL 0x5Au

/* front guard | 64 KiB arena buffer. The union makes the base 8-byte aligned (ASan granule), so is arena. */
static union {
    uint64_t align;
    uint8_t b[GUARD_BYTES + ARENA_BYTES];
} g_mem;
static uint8_t *const g_arena = g_mem.b + GUARD_BYTES;

#define FUZZ_ASSERT(c)                                                                       \
    do {                                                                                     \
        if (!(c)) {                                                                          \
            fprintf(stderr, "fuzz_model: contract violated at line %d: %s\n", __LINE__, #c); \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

static em_status_t checked(em_status_t st) {
    FUZZ_ASSERT(st <= EM_OK && st >= EM_ERR_VALUE); /* EM_ERR_VALUE is the last code */
    const char *s = em_status_str(st);
    FUZZ_ASSERT(s != NULL && s[0] != '\0');
    return st;
}

static uint32_t rd_u16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd_u32(const uint8_t *p) { return rd_u16(p) | rd_u16(p + 2) << 16; }

/* Table-driven CRC-32 (zlib.crc32): the harness's own copy, independent of src/crc32.c. */
static uint32_t crc32_tab(const uint8_t *p, size_t n) {
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

static int all_equal(const uint8_t *p, size_t n, uint8_t v) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != v) return 0;
    return 1;
}

/* Both guards intact: the front guard and GUARD_BYTES right after the used end (when the buffer has room). */
static void check_guards(size_t used_end) {
    UNPOISON(g_mem.b, GUARD_BYTES);
    FUZZ_ASSERT(all_equal(g_mem.b, GUARD_BYTES, GUARD_BYTE));
    POISON(g_mem.b, GUARD_BYTES);
    if (used_end < ARENA_BYTES) {
        size_t n = ARENA_BYTES - used_end < GUARD_BYTES ? ARENA_BYTES - used_end : GUARD_BYTES;
        UNPOISON(g_arena + used_end, n);
        FUZZ_ASSERT(all_equal(g_arena + used_end, n, GUARD_BYTE));
        POISON(g_arena + used_end, n);
    }
}

typedef struct {
    const em_graph_t *g;
    em_graph_ctx_t gctx;
    int stage;       /* an input stage (int16 samples in, int8 out: em_graph_stage_step) */
    size_t in_el, out_el; /* bytes per input / output element */
} rt_t;

static em_status_t rt_init(rt_t *rt, void *arena, size_t size) { return em_graph_init(&rt->gctx, rt->g, arena, size); }
static em_status_t rt_reset(rt_t *rt) { return em_graph_reset(&rt->gctx); }
/* One step from n_in * in_el input bytes (int16 little endian for a stage) into n_out * out_el output bytes. The
 * stage's samples go through an exact heap buffer, so ASan sees any read past n_in. */
static em_status_t rt_step(rt_t *rt, const uint8_t *in, void *out) {
    if (!rt->stage) return em_graph_step(&rt->gctx, (const int8_t *)in, (int16_t *)out);
    const size_t n = rt->g->n_in;
    int16_t *x = malloc(n * sizeof *x);
    FUZZ_ASSERT(x);
    for (size_t i = 0; i < n; i++) x[i] = (int16_t)(uint16_t)(in[2 * i] | (in[2 * i + 1] << 8));
    const em_status_t st = em_graph_stage_step(&rt->gctx, x, (int8_t *)out);
    free(x);
    return st;
}

static void run_model(rt_t *rt, unsigned flags, const uint8_t *steps, size_t steps_len) {
    const size_t need = em_graph_arena_size(rt->g);
    FUZZ_ASSERT(need > 0);
    if (need + GUARD_BYTES + 10 > ARENA_BYTES) {
        /* a graph declaring more arena than the harness runs with: init must refuse anything shorter (the whole
         * buffer where even that is shorter, else need - 1 bytes: a need within the guards' size of the buffer's
         * end fits the buffer, and init rightly accepts it) */
        FUZZ_ASSERT(checked(rt_init(rt, g_arena, need - 1 < ARENA_BYTES ? need - 1 : ARENA_BYTES)) == EM_ERR_ARENA);
        return;
    }
    const unsigned mode = (flags >> 1) & 3u;
    uint8_t *arena = g_arena;
    size_t arena_size = need, used_end = need;
    if (mode == 1) {
        arena_size = need - 1;
    } else if (mode == 2) {
        arena = g_arena + ((flags & 8u) ? 2 : 1);
        arena_size = need + 8;
        used_end = need + 8 + 2; /* nothing may be written at all: the whole prefix is compared below */
    } else if (mode == 3) {
        arena_size = ARENA_BYTES;
    }
    /* fill: front guard and the guard after the used end with 0xA5, the arena with 0x5A; poison all but it */
    memset(g_mem.b, GUARD_BYTE, GUARD_BYTES);
    memset(g_arena, ARENA_FILL, need + 8 + 2);
    memset(g_arena + used_end, GUARD_BYTE, GUARD_BYTES);
    POISON(g_mem.b, GUARD_BYTES);
    POISON(g_arena + used_end, ARENA_BYTES - used_end);

    em_status_t st = checked(rt_init(rt, arena, arena_size));
    const size_t n_in = rt->g->n_in * rt->in_el, n_out = rt->g->n_out * rt->out_el; /* bytes per step */
    uint8_t *in = malloc(n_in), *out = malloc(n_out), *out0 = malloc(n_out);
    FUZZ_ASSERT(in && out && out0);
    memset(in, 0, n_in);
    if (mode == 1 || mode == 2) {
        FUZZ_ASSERT(st == EM_ERR_ARENA);
        FUZZ_ASSERT(checked(rt_step(rt, in, out)) == EM_ERR_STATE);
        FUZZ_ASSERT(checked(rt_reset(rt)) == EM_ERR_STATE);
        FUZZ_ASSERT(all_equal(g_arena, used_end, ARENA_FILL)); /* a refused arena is not touched */
        check_guards(used_end);
    } else {
        FUZZ_ASSERT(st == EM_OK);
        /* the other step function is refused before it reads or writes anything (1-element buffers: ASan) */
        int8_t other_in8[1] = {0}, other_out8[1];
        int16_t other_in16[1] = {0}, other_out16[1];
        if (rt->stage) FUZZ_ASSERT(checked(em_graph_step(&rt->gctx, other_in8, other_out16)) == EM_ERR_BUFFER);
        else FUZZ_ASSERT(checked(em_graph_stage_step(&rt->gctx, other_in16, other_out8)) == EM_ERR_BUFFER);
        check_guards(used_end);
        size_t n_steps = steps_len / n_in;
        if (n_steps > FUZZ_MAX_STEPS) n_steps = FUZZ_MAX_STEPS;
        const size_t total = n_steps ? n_steps : 1, half = total / 2;
        for (size_t t = 0; t < total; t++) {
            if (n_steps) memcpy(in, steps + t * n_in, n_in);
            if (t == half && t > 0) {
                FUZZ_ASSERT(checked(rt_reset(rt)) == EM_OK);
                check_guards(used_end);
                uint8_t *in0 = malloc(n_in);
                FUZZ_ASSERT(in0);
                memcpy(in0, steps, n_in); /* t > 0 means there are real steps */
                FUZZ_ASSERT(checked(rt_step(rt, in0, out)) == EM_OK);
                FUZZ_ASSERT(memcmp(out, out0, n_out) == 0); /* reset == fresh init */
                check_guards(used_end);
                free(in0);
                FUZZ_ASSERT(checked(rt_reset(rt)) == EM_OK);
            }
            FUZZ_ASSERT(checked(rt_step(rt, in, out)) == EM_OK);
            check_guards(used_end);
            if (t == 0) memcpy(out0, out, n_out);
        }
    }
    free(in);
    free(out);
    free(out0);
    UNPOISON(g_mem.b, sizeof g_mem.b);
}

/* Patch mode: the plan against the parsed graph, then patch outputs == streaming outputs, guards intact. */
static void run_patch(const em_graph_t *g, unsigned flags, const uint8_t *blob, const uint8_t *data, size_t len) {
    if (len < 2) return;
    size_t m = rd_u16(data);
    if (m > len - 2) m = len - 2;
    const uint8_t *steps = data + 2 + m;
    const size_t steps_len = len - 2 - m;
    uint8_t *plan = malloc(m ? m : 1);
    FUZZ_ASSERT(plan);
    memcpy(plan, data + 2, m);
    if ((flags & 1u) && m >= 20) {
        memcpy(plan + 16, blob + 12, 4);
        uint32_t total = rd_u32(plan + 8);
        if (total >= EM_PATCH_HEADER_SIZE && total <= m) {
            uint32_t crc = crc32_tab(plan + EM_PATCH_HEADER_SIZE, total - EM_PATCH_HEADER_SIZE);
            for (int k = 0; k < 4; k++) plan[12 + k] = (uint8_t)(crc >> (8 * k));
        }
    }
    em_graph_patch_t p, untouched;
    memset(&p, 0xC3, sizeof p);
    memcpy(&untouched, &p, sizeof p);
    em_status_t st = checked(em_graph_patch_parse(&p, g, plan, m));
    if (st != EM_OK) {
        FUZZ_ASSERT(memcmp(&p, &untouched, sizeof p) == 0);
        free(plan);
        return;
    }
    const size_t need = em_graph_patch_arena_size(&p), sneed = em_graph_arena_size(g);
    FUZZ_ASSERT(need == rd_u32(plan + 28) && need % 4 == 0);
    em_graph_patch_ctx_t pc;
    if (need + GUARD_BYTES > ARENA_BYTES) {
        FUZZ_ASSERT(checked(em_graph_patch_init(&pc, &p, g_arena, ARENA_BYTES)) == EM_ERR_ARENA);
        free(plan);
        return;
    }
    if (sneed > ARENA_BYTES) { /* the streaming reference needs an arena this harness does not give (a mutated
                                * graph may declare gigabytes); the patch plan itself was checked above */
        free(plan);
        return;
    }
    void *smem = NULL;
    FUZZ_ASSERT(posix_memalign(&smem, 16, sneed ? sneed : 4) == 0 && smem);
    em_graph_ctx_t sc;
    FUZZ_ASSERT(checked(em_graph_init(&sc, g, smem, sneed)) == EM_OK);
    memset(g_mem.b, GUARD_BYTE, GUARD_BYTES);
    memset(g_arena, ARENA_FILL, need);
    memset(g_arena + need, GUARD_BYTE, GUARD_BYTES);
    POISON(g_mem.b, GUARD_BYTES);
    POISON(g_arena + need, ARENA_BYTES - need);
    FUZZ_ASSERT(checked(em_graph_patch_init(&pc, &p, g_arena, need)) == EM_OK);
    const size_t n_in = g->n_in, n_out = g->n_out, frames = p.patch_frames;
    size_t n_steps = steps_len / n_in;
    if (n_steps > FUZZ_MAX_STEPS) n_steps = FUZZ_MAX_STEPS;
    int8_t *in = malloc(frames * n_in);
    int16_t *out = malloc(frames * n_out * sizeof *out), *ref = malloc(n_out * sizeof *ref);
    FUZZ_ASSERT(in && out && ref);
    for (size_t t = 0, blk = 1; t < n_steps; t += blk, blk = blk % frames + 1) {
        if (blk > n_steps - t) blk = n_steps - t;
        memcpy(in, steps + t * n_in, blk * n_in);
        FUZZ_ASSERT(checked(em_graph_patch_run(&pc, in, (int)blk, out)) == EM_OK);
        check_guards(need);
        for (size_t f = 0; f < blk; f++) {
            FUZZ_ASSERT(checked(em_graph_step(&sc, in + f * n_in, ref)) == EM_OK);
            FUZZ_ASSERT(memcmp(ref, out + f * n_out, n_out * sizeof *ref) == 0);
        }
    }
    free(in);
    free(out);
    free(ref);
    free(smem);
    free(plan);
    UNPOISON(g_mem.b, sizeof g_mem.b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 5) return 0;
    const unsigned flags = data[0];
    size_t len = rd_u32(data + 1);
    if (len > size - 5) len = size - 5;
    const uint8_t *steps = data + 5 + len;
    const size_t steps_len = size - 5 - len;

    void *mem = NULL;
    FUZZ_ASSERT(posix_memalign(&mem, 16, len ? len : 1) == 0 && mem);
    uint8_t *blob = mem;
    memcpy(blob, data + 5, len);
    if ((flags & 1u) && len >= 16) {
        uint32_t total = rd_u32(blob + 8);
        if (total >= EM_HEADER_SIZE && total <= len) {
            uint32_t crc = crc32_tab(blob + EM_HEADER_SIZE, total - EM_HEADER_SIZE);
            for (int k = 0; k < 4; k++) blob[12 + k] = (uint8_t)(crc >> (8 * k));
        }
    }

    em_graph_t g, untouched, gb;
    memset(&g, 0xC3, sizeof g);
    memcpy(&untouched, &g, sizeof g);
    memcpy(&gb, &g, sizeof g);
    const em_status_t st = checked(em_graph_parse(&g, blob, len));
    const em_status_t bst = checked(em_graph_bind(&gb, blob, len));
    if (len >= 6 && rd_u16(blob + 4) != EM_GRAPH_VERSION) FUZZ_ASSERT(st != EM_OK && bst != EM_OK);
    if (bst != EM_OK) FUZZ_ASSERT(memcmp(&gb, &untouched, sizeof gb) == 0);
    if (st != EM_OK) {
        FUZZ_ASSERT(memcmp(&g, &untouched, sizeof g) == 0);
    } else {
        FUZZ_ASSERT(len >= EM_HEADER_SIZE);
        FUZZ_ASSERT(em_graph_arena_size(&g) == rd_u32(blob + 32));
        FUZZ_ASSERT(g.n_in == rd_u16(blob + 18) && g.n_out == rd_u16(blob + 20));
        FUZZ_ASSERT(bst == EM_OK && memcmp(&g, &gb, sizeof g) == 0); /* bind accepts what parse accepts, alike */
        rt_t rt;
        memset(&rt, 0, sizeof rt);
        rt.g = &g;
        rt.stage = em_graph_is_input_stage(&g) == 1;
        rt.in_el = rt.stage ? 2u : 1u;
        rt.out_el = rt.stage ? 1u : 2u;
        if (flags & 16u) run_patch(&g, flags, blob, steps, steps_len);
        else run_model(&rt, flags, steps, steps_len);
    }
    free(blob);
    return 0;
}
