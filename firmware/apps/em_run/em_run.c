/* em_run MODEL.bin INPUT.bin OUTPUT.bin STEPS_PER_RESET [PATCH.bin]
 * Streams INPUT (raw int8 [N][n_in]) through the model and writes OUTPUT (int16 little endian [N][n_out]). An
 * input stage (docs/graph.md "Input stages") runs the other way round: INPUT int16 little endian samples
 * [N][n_in], OUTPUT the model's int8 input [N][n_out].
 * The context is reset before step 0 and every STEPS_PER_RESET steps (0: only before step 0).
 * Prints "steps=N" (plus "instructions_per_step=X" where the platform counts them); errors: one line on
 * stderr, exit status 2. Same source for the host and for Cortex-M4 under QEMU semihosting.
 * MODEL.bin is a graph blob (docs/graph.md), loaded at run time and so checked by em_graph_parse; a blob of the
 * retired first format gets a line saying to re-export it. With PATCH.bin (a graph's patch plan, `edgemem plan
 * --patch-out`) the frames go through em_graph_patch_run in blocks of up to P frames (a reset also ends a block),
 * and the run prints the arena that schedule asked for as arena_bytes=A.
 * Files: a MODEL.bin longer than the blob's declared total_size is refused (bytes after it mean a damaged or wrong
 * file, as the Python parser says; em_graph_parse itself accepts a larger buffer, e.g. a flash slot). INPUT must
 * be a non-empty regular file whose size is a multiple of n_in, read to its end exactly (an empty file, /dev/zero or
 * another unsized stream is an error, never "steps=0"). OUTPUT is written as OUTPUT.tmp and renamed over OUTPUT
 * only after the last step; on any error OUTPUT.tmp is removed and an existing OUTPUT is left as it was. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgemem.h"
#include "em_run_platform.h"

#ifndef EM_RUN_MODEL_MAX
#define EM_RUN_MODEL_MAX (1024u * 1024u) /* largest blob accepted */
#endif
/* A graph declares its own arena_size, checked against this before init. 256 KiB fits QEMU mps2-an386's 4 MB RAM
 * next to the 1 MB blob buffer. */
#ifndef EM_RUN_ARENA_BYTES
#define EM_RUN_ARENA_BYTES (256u * 1024u)
#endif
/* Chunk buffers and the OUTPUT.tmp path: smaller on a small-RAM core (the Cortex-M0 build passes -D overrides). */
#ifndef EM_RUN_CHUNK_STEPS
#define EM_RUN_CHUNK_STEPS 4096u
#endif
#ifndef EM_RUN_IN_BUF
#define EM_RUN_IN_BUF 16384u   /* bytes of input per chunk */
#endif
#ifndef EM_RUN_OUT_BUF
#define EM_RUN_OUT_BUF 16384u  /* int16 logits per chunk */
#endif
#ifndef EM_RUN_PATH_MAX
#define EM_RUN_PATH_MAX 1024u
#endif

/* Static so a large blob does not live on a small MCU stack; uint32_t for the alignment the parser needs. */
static uint32_t g_model_buf[EM_RUN_MODEL_MAX / 4u + 1u];
static uint32_t g_plan_buf[(EM_PATCH_HEADER_SIZE + EM_PATCH_ENTRY_SIZE * EM_GRAPH_MAX_BUFFERS) / 4u + 1u];
static uint32_t g_arena[EM_RUN_ARENA_BYTES / 4u];
static uint8_t g_in[EM_RUN_IN_BUF];
static int16_t g_out[EM_RUN_OUT_BUF];
static uint8_t g_out_bytes[EM_RUN_OUT_BUF * 2u];
static char g_tmp_path[EM_RUN_PATH_MAX];

static int fail(const char *what, const char *detail) {
    fprintf(stderr, "em_run: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    return 2;
}

/* Unsigned decimal, no sign, no trailing junk. */
static int parse_u32(const char *s, uint32_t *v) {
    uint64_t x = 0;
    if (!s || !*s) return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        x = x * 10u + (uint64_t)(*s - '0');
        if (x > 0xFFFFFFFFu) return -1;
    }
    *v = (uint32_t)x;
    return 0;
}

/* newlib-nano's printf has no %llu: format a uint64 by hand into buf (>= 21 bytes). */
static const char *u64_str(uint64_t v, char *buf) {
    char *p = buf + 20;
    *p = '\0';
    do {
        *--p = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    return p;
}

/* Whole file into buf; -1 on I/O error, -2 if larger than cap. */
static long read_file(const char *path, uint8_t *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t n = fread(buf, 1, cap + 1u, f); /* cap + 1 to notice a file that is too large */
    int err = ferror(f);
    fclose(f);
    if (err) return -1;
    return n > cap ? -2 : (long)n;
}

int main(int argc, char **argv) {
    if (em_platform_init(&argc, &argv) != 0) return fail("platform init failed", NULL);
    if (argc != 5 && argc != 6) return fail("usage", "em_run MODEL.bin INPUT.bin OUTPUT.bin STEPS_PER_RESET [PATCH.bin]");
    uint32_t steps_per_reset;
    if (parse_u32(argv[4], &steps_per_reset) != 0) return fail("bad STEPS_PER_RESET", argv[4]);

    long model_size = read_file(argv[1], (uint8_t *)g_model_buf, EM_RUN_MODEL_MAX);
    if (model_size == -1) return fail("cannot read model", argv[1]);
    if (model_size == -2) return fail("model larger than EM_RUN_MODEL_MAX", argv[1]);
    const uint8_t *blob = (const uint8_t *)g_model_buf;
    /* the retired first format: magic "EMMB" and version field 1 */
    if (model_size >= 6 && blob[0] == 'E' && blob[1] == 'M' && blob[2] == 'M' && blob[3] == 'B' && blob[4] == 1 &&
        blob[5] == 0)
        return fail("model blob version 1 is no longer supported: re-export it with `edgemem export CHECKPOINT --to c`",
                    NULL);
    em_graph_t g;
    em_graph_ctx_t gctx;
    em_status_t st = em_graph_parse(&g, blob, (size_t)model_size);
    /* Bytes after the declared total_size: refused where the Python parser refuses them (TRAILING: after the size,
     * magic and header version checks, before the CRC); em_graph_parse itself ignores them. */
    const int header_version_ok = model_size >= 8 && blob[4] == 2 && blob[5] == 0 && blob[6] == 64 && blob[7] == 0;
    if (st != EM_ERR_TRUNCATED && st != EM_ERR_MAGIC && (st != EM_ERR_VERSION || header_version_ok)) {
        /* not TRUNCATED: model_size >= 64 and total_size <= model_size */
        const uint32_t total = (uint32_t)blob[8] | (uint32_t)blob[9] << 8 | (uint32_t)blob[10] << 16 |
                               (uint32_t)blob[11] << 24;
        if ((unsigned long)total < (unsigned long)model_size) {
            char buf[24];
            fprintf(stderr, "em_run: bad model blob: the file has %s bytes after its declared size %lu\n",
                    u64_str((uint64_t)model_size - total, buf), (unsigned long)total);
            return 2;
        }
    }
    if (st != EM_OK) return fail("bad model blob", em_status_str(st));
    if (em_graph_arena_size(&g) > sizeof g_arena) return fail("model needs more arena than em_run has", NULL);
    st = em_graph_init(&gctx, &g, g_arena, sizeof g_arena);
    if (st != EM_OK) return fail("em_graph_init failed", em_status_str(st));
    const uint32_t n_in = g.n_in, n_out = g.n_out;
    const int stage = em_graph_is_input_stage(&g) == 1;
    const uint32_t in_el = stage ? 2u : 1u, out_el = stage ? 1u : 2u; /* bytes per input / output element */
    /* an input stage's samples are decoded into g_out, which it does not use for its int8 results (those go
     * straight into g_out_bytes): no extra buffer on a small-RAM core */
    if (stage && n_in > EM_RUN_OUT_BUF) return fail("input stage wider than EM_RUN_OUT_BUF samples", NULL);
    /* a chunk holds at least one step (the M0 microbit build has small buffers: without this, chunk 0 never ends) */
    if (n_in * in_el > EM_RUN_IN_BUF || n_out > EM_RUN_OUT_BUF)
        return fail("one step is larger than em_run's buffers (EM_RUN_IN_BUF bytes in, EM_RUN_OUT_BUF logits out)", NULL);

    em_graph_patch_t plan;
    em_graph_patch_ctx_t pctx;
    const int patched = argc == 6;
    uint32_t block = 1;
    if (patched) {
        long plan_size = read_file(argv[5], (uint8_t *)g_plan_buf, sizeof g_plan_buf - 4u);
        if (plan_size == -1) return fail("cannot read patch plan", argv[5]);
        if (plan_size == -2) return fail("patch plan larger than any graph's", argv[5]);
        st = em_graph_patch_parse(&plan, &g, (const uint8_t *)g_plan_buf, (size_t)plan_size);
        if (st != EM_OK) return fail("bad patch plan", em_status_str(st));
        if (em_graph_patch_arena_size(&plan) > sizeof g_arena) return fail("plan needs more arena than em_run has", NULL);
        st = em_graph_patch_init(&pctx, &plan, g_arena, sizeof g_arena);
        if (st != EM_OK) return fail("em_graph_patch_init failed", em_status_str(st));
        block = plan.patch_frames;
    }

    FILE *fin = fopen(argv[2], "rb");
    if (!fin) return fail("cannot read input", argv[2]);
    long in_size = -1;
    if (fseek(fin, 0, SEEK_END) == 0) in_size = ftell(fin);
    if (in_size < 0 || fseek(fin, 0, SEEK_SET) != 0) {
        fclose(fin);
        return fail("cannot size input", argv[2]);
    }
    if (in_size == 0) {
        fclose(fin);
        return fail("input is empty or not a regular file (its size reads as 0)", argv[2]);
    }
    if ((unsigned long)in_size % (n_in * in_el) != 0) {
        fclose(fin);
        return fail(stage ? "input size is not a multiple of n_in int16 samples" : "input size is not a multiple of n_in",
                    argv[2]);
    }
    const uint32_t n_steps = (uint32_t)((unsigned long)in_size / (n_in * in_el));

    const size_t out_len = strlen(argv[3]);
    if (out_len + 5u > sizeof g_tmp_path) {
        fclose(fin);
        return fail("output path too long", argv[3]);
    }
    memcpy(g_tmp_path, argv[3], out_len);
    memcpy(g_tmp_path + out_len, ".tmp", 5u);
    FILE *fout = fopen(g_tmp_path, "wb");
    if (!fout) {
        fclose(fin);
        return fail("cannot write output", g_tmp_path);
    }

    /* chunk: as many steps as both buffers hold, at most EM_RUN_CHUNK_STEPS (n_in, n_out <= 1024: >= 16) */
    uint32_t chunk = EM_RUN_CHUNK_STEPS;
    if (chunk > EM_RUN_IN_BUF / (n_in * in_el)) chunk = EM_RUN_IN_BUF / (n_in * in_el);
    if (chunk > EM_RUN_OUT_BUF / n_out) chunk = EM_RUN_OUT_BUF / n_out;

    uint64_t ticks = 0;
    const char *err = NULL;
    for (uint32_t t0 = 0; t0 < n_steps && !err; t0 += chunk) {
        uint32_t n = n_steps - t0 < chunk ? n_steps - t0 : chunk;
        if (fread(g_in, n_in * in_el, n, fin) != n) {
            err = "short read on input";
            break;
        }
        for (uint32_t k = 0; k < n;) {
            uint32_t t = t0 + k;
            const int8_t *x = (const int8_t *)g_in + (size_t)k * n_in;
            int16_t *y = g_out + (size_t)k * n_out;
            if (stage) { /* little endian int16 samples, whatever the host */
                const uint8_t *b = g_in + (size_t)k * n_in * 2u;
                for (uint32_t i = 0; i < n_in; i++) g_out[i] = (int16_t)(uint16_t)(b[2u * i] | (b[2u * i + 1u] << 8));
            }
            st = EM_OK;
            const int at_reset = t == 0 || (steps_per_reset && t % steps_per_reset == 0);
            if (at_reset) st = patched ? em_graph_patch_reset(&pctx) : em_graph_reset(&gctx);
            if (st != EM_OK) {
                err = em_status_str(st);
                break;
            }
            /* frames in this call: 1 when streaming; with a plan, up to P, never across a reset or the chunk */
            uint32_t m = n - k < block ? n - k : block;
            if (steps_per_reset) {
                const uint32_t to_reset = steps_per_reset - t % steps_per_reset;
                if (m > to_reset) m = to_reset;
            }
            uint32_t c0 = em_cycle_begin();
            st = patched ? em_graph_patch_run(&pctx, x, (int)m, y)
                 : stage ? em_graph_stage_step(&gctx, g_out, (int8_t *)(void *)(g_out_bytes + (size_t)k * n_out))
                         : em_graph_step(&gctx, x, y);
            ticks += em_cycle_end(c0);
            if (st != EM_OK) {
                err = em_status_str(st);
                break;
            }
            k += m;
        }
        if (err) break;
        /* little endian regardless of the host (an input stage's int8 results are already in g_out_bytes) */
        for (uint32_t i = 0; !stage && i < n * n_out; i++) {
            uint16_t v = (uint16_t)g_out[i];
            g_out_bytes[2u * i] = (uint8_t)(v & 0xFFu);
            g_out_bytes[2u * i + 1u] = (uint8_t)(v >> 8);
        }
        if (fwrite(g_out_bytes, out_el * n_out, n, fout) != n) err = "short write on output";
    }
    /* the size said n_steps: a stream that still has data (a device, a file still growing) is not that file */
    if (!err && fgetc(fin) != EOF) err = "input has more data than its size said (not a regular file?)";
    fclose(fin);
    if (fclose(fout) != 0 && !err) err = "cannot close output";
    if (!err && em_platform_rename(g_tmp_path, argv[3]) != 0) err = "cannot rename OUTPUT.tmp to OUTPUT";
    if (err) {
        remove(g_tmp_path); /* nothing half-written stays behind; an existing OUTPUT is untouched */
        return fail(err, NULL);
    }

    if (patched) printf("arena_bytes=%lu\n", (unsigned long)em_graph_patch_arena_size(&plan));
    char buf[24];
    uint32_t num, den;
    if (em_platform_instr_ratio(&num, &den)) {
        /* instructions_per_step = ticks * num / den / N in tenths, rounded half up (one division: no double floor) */
        uint64_t q = (uint64_t)den * n_steps;
        uint64_t tenths = n_steps ? (ticks * num * 10u + q / 2u) / q : 0;
        printf("steps=%lu instructions_per_step=%s.%u\n", (unsigned long)n_steps, u64_str(tenths / 10u, buf),
               (unsigned)(tenths % 10u));
    } else {
        printf("steps=%lu\n", (unsigned long)n_steps);
    }
    return 0;
}
