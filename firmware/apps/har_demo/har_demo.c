/* har_demo DATA.bin: activity recognition on a stream of sensor windows with the compiled-in model.
 *
 * The model comes from the export folder the build points at (model.h / model.c; Makefile HAR_DIR): the graph blob
 * the exporter wrote, bound once at start-up (em_graph_bind: header, sizes and CRC; no parser).
 * DATA.bin (little endian, written by edgemem/demo/har_firmware.py):
 *   header, 24 bytes: "EMHD", u16 version (1), u16 n_in, u16 steps per window T, u16 n_classes, u32 n_windows,
 *                     u16 sensor rate (Hz), u16 downsample (sensor samples per step), u32 reserved (0)
 *   per window:       u8 true label, u8 reserved, u16 recording, u32 stream sample at the window's end,
 *                     T x n_in int8 steps (already normalized and quantized with the model's input scale)
 * Each window is classified as `edgemem verify` does: state reset, T steps, argmax of the logits summed over the
 * window (of the last step's where model.h says EM_MODEL_READOUT_LAST). A line is printed whenever the predicted
 * activity changes, then the accuracy and, where the platform counts them (Cortex-M4 under QEMU -icount), the
 * instructions per window (reset + steps + readout) and per em_graph_step (the figure em_run and verify report).
 * Any error: one line on stderr, exit status 2. No malloc: every buffer is static and sized at build time. */
#include <stddef.h>
#include <stdint.h>

#include "edgemem.h"
#include "har_demo_platform.h"
#include "model.h"

#if !defined(EM_MODEL_FORMAT) || EM_MODEL_FORMAT != 2
#error "model.h is not a graph export (EM_MODEL_FORMAT 2): re-export it with `edgemem export CHECKPOINT --to c`"
#endif

#ifndef HD_MODEL_NAME
#define HD_MODEL_NAME "model"
#endif
/* Longest window accepted: the window buffer is HD_MAX_STEPS * n_in bytes of RAM. */
#ifndef HD_MAX_STEPS
#define HD_MAX_STEPS 256u
#endif

#define HD_MAGIC "EMHD"
#define HD_VERSION 1u
#define HD_HEADER_SIZE 24u
#define HD_RECORD_HEADER 8u
#define HD_LINE 160u

#ifdef EM_MODEL_CLASS_NAMES
static const char *const k_class_names[EM_MODEL_N_OUT] = EM_MODEL_CLASS_NAMES;
#endif

static uint32_t g_arena[(EM_MODEL_ARENA_BYTES + 3u) / 4u]; /* exactly the model's state + scratch */
static int8_t g_window[HD_MAX_STEPS * EM_MODEL_N_IN];
static int16_t g_logits[EM_MODEL_N_OUT];
static int32_t g_sum[EM_MODEL_N_OUT];

/* ---- the compiled-in model ---- */
static em_graph_t g_graph;
static em_graph_ctx_t g_ctx;
static em_status_t model_init(void) {
    em_status_t st = em_graph_bind(&g_graph, em_model_blob, EM_MODEL_BLOB_SIZE);
    if (st != EM_OK) return st;
    /* the header's sizes are what the buffers above were made for; a blob saying otherwise is not this model */
    if (g_graph.n_in != EM_MODEL_N_IN || g_graph.n_out != EM_MODEL_N_OUT) return EM_ERR_DIMS;
    return em_graph_init(&g_ctx, &g_graph, g_arena, sizeof g_arena);
}
static em_status_t model_reset(void) { return em_graph_reset(&g_ctx); }
static em_status_t model_step(const int8_t *in, int16_t *out) { return em_graph_step(&g_ctx, in, out); }

/* ---- line building without printf (newlib-nano's has no 64-bit integers, and stdio would need a heap) ---- */
typedef struct {
    char buf[HD_LINE];
    size_t n;
} line_t;

static void put_s(line_t *l, const char *s) {
    while (*s && l->n < HD_LINE - 1u) l->buf[l->n++] = *s++;
    l->buf[l->n] = '\0';
}

static void put_u(line_t *l, uint64_t v) {
    char tmp[21];
    size_t k = 0;
    do {
        tmp[k++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v);
    while (k && l->n < HD_LINE - 1u) l->buf[l->n++] = tmp[--k];
    l->buf[l->n] = '\0';
}

/* v / 10^decimals with exactly `decimals` digits after the point */
static void put_fixed(line_t *l, uint64_t v, unsigned decimals) {
    uint64_t p = 1;
    for (unsigned i = 0; i < decimals; i++) p *= 10u;
    put_u(l, v / p);
    put_s(l, ".");
    uint64_t frac = v % p;
    for (uint64_t d = p / 10u; d > 0; d /= 10u) {
        char c[2] = {(char)('0' + (int)(frac / d % 10u)), '\0'};
        put_s(l, c);
    }
}

static void put_class(line_t *l, unsigned c) {
#ifdef EM_MODEL_CLASS_NAMES
    put_s(l, k_class_names[c]);
#else
    put_s(l, "class");
    put_u(l, c);
#endif
}

/* round(num / den) half up, for den > 0 */
static uint64_t div_round(uint64_t num, uint64_t den) { return (num + den / 2u) / den; }

static int fail(const char *what, const char *detail) {
    line_t l = {{0}, 0};
    put_s(&l, "har_demo: ");
    put_s(&l, what);
    if (detail) {
        put_s(&l, ": ");
        put_s(&l, detail);
    }
    hd_err(l.buf);
    return 2;
}

static uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd32(const uint8_t *p) { return rd16(p) | rd16(p + 2) << 16; }

/* Whole read of n bytes: 1, 0 at a clean end of file (nothing read), -1 short or I/O error. */
static int read_exact(int h, void *buf, size_t n) {
    long got = hd_read(h, buf, n);
    if (got == (long)n) return 1;
    return got == 0 ? 0 : -1;
}

static int run(int argc, char **argv) {
    if (hd_init(&argc, &argv) != 0) return fail("platform init failed", NULL);
    if (argc != 2) return fail("usage", "har_demo DATA.bin");
    em_status_t st = model_init();
    if (st != EM_OK) return fail("model init failed", em_status_str(st));

    const int h = hd_open(argv[1]);
    if (h < 0) return fail("cannot open data file", argv[1]);
    uint8_t hdr[HD_HEADER_SIZE];
    const char *err = NULL;
    if (read_exact(h, hdr, sizeof hdr) != 1) err = "data file shorter than its header";
    else if (hdr[0] != HD_MAGIC[0] || hdr[1] != HD_MAGIC[1] || hdr[2] != HD_MAGIC[2] || hdr[3] != HD_MAGIC[3])
        err = "not a har_demo data file (bad magic)";
    else if (rd16(hdr + 4) != HD_VERSION) err = "unsupported data file version";
    else if (rd16(hdr + 6) != EM_MODEL_N_IN) err = "data n_in differs from the model's";
    else if (rd16(hdr + 8) == 0 || rd16(hdr + 8) > HD_MAX_STEPS) err = "window length is 0 or above HD_MAX_STEPS";
    else if (rd16(hdr + 10) != EM_MODEL_N_OUT) err = "data class count differs from the model's";
    else if (rd32(hdr + 12) == 0) err = "data file holds no windows";
    else if (rd16(hdr + 16) == 0 || rd16(hdr + 18) == 0) err = "sensor rate and downsample must be > 0";
    if (err) {
        hd_close(h);
        return fail(err, argv[1]);
    }
    const uint32_t steps = rd16(hdr + 8), n_windows = rd32(hdr + 12), rate = rd16(hdr + 16);
    /* the size up front, so a short or padded file is one error line before any output */
    const uint64_t want = HD_HEADER_SIZE + (uint64_t)n_windows * (HD_RECORD_HEADER + (uint64_t)steps * EM_MODEL_N_IN);
    const long size = hd_size(h);
    if (size < 0 || (uint64_t)size != want) {
        hd_close(h);
        return fail(size < 0 ? "cannot size data file" : "data file size does not match its header", argv[1]);
    }

    line_t l = {{0}, 0};
    put_s(&l, "har_demo: " HD_MODEL_NAME ", ");
    put_u(&l, n_windows);
    put_s(&l, " windows x ");
    put_u(&l, steps);
    put_s(&l, " steps x ");
    put_u(&l, EM_MODEL_N_IN);
    put_s(&l, " channels, ");
    put_u(&l, rate);
    put_s(&l, " Hz sensor / ");
    put_u(&l, rd16(hdr + 18));
    put_s(&l, " per step");
    hd_out(l.buf);

    uint64_t step_ticks = 0, window_ticks = 0;
    uint32_t correct = 0;
    int prev = -1;
    for (uint32_t w = 0; w < n_windows && !err; w++) {
        uint8_t rec[HD_RECORD_HEADER];
        if (read_exact(h, rec, sizeof rec) != 1 || read_exact(h, g_window, (size_t)steps * EM_MODEL_N_IN) != 1) {
            err = "data file truncated (fewer windows than its header says)";
            break;
        }
        const unsigned label = rec[0];
        if (label >= EM_MODEL_N_OUT) {
            err = "a window's label is not a class of the model";
            break;
        }
        /* reset, steps and readout each timed on their own: a whole window may outlast SysTick's 24 bits */
        uint32_t c0 = hd_ticks_begin();
        st = model_reset();
        window_ticks += hd_ticks_end(c0);
        for (unsigned o = 0; o < EM_MODEL_N_OUT; o++) g_sum[o] = 0;
        for (uint32_t t = 0; t < steps && st == EM_OK; t++) {
            c0 = hd_ticks_begin();
            st = model_step(g_window + (size_t)t * EM_MODEL_N_IN, g_logits);
            step_ticks += hd_ticks_end(c0);
#if defined(EM_MODEL_READOUT_LAST)
            for (unsigned o = 0; o < EM_MODEL_N_OUT; o++) g_sum[o] = g_logits[o];
#else
            for (unsigned o = 0; o < EM_MODEL_N_OUT; o++) g_sum[o] += g_logits[o]; /* T * 32767 < 2^31 */
#endif
            window_ticks += hd_ticks_end(c0);
        }
        if (st != EM_OK) {
            err = em_status_str(st);
            break;
        }
        c0 = hd_ticks_begin();
        unsigned pred = 0; /* first maximum wins, as numpy's argmax */
        for (unsigned o = 1; o < EM_MODEL_N_OUT; o++)
            if (g_sum[o] > g_sum[pred]) pred = o;
        window_ticks += hd_ticks_end(c0);
        correct += pred == label;

        if ((int)pred != prev) {
            l.n = 0;
            put_s(&l, "t=");
            put_fixed(&l, div_round((uint64_t)rd32(rec + 4) * 100u, rate), 2); /* seconds, 2 decimals */
            put_s(&l, "s window ");
            put_u(&l, w);
            put_s(&l, " rec ");
            put_u(&l, rd16(rec + 2));
            put_s(&l, ": ");
            if (prev < 0) put_s(&l, "-");
            else put_class(&l, (unsigned)prev);
            put_s(&l, " -> ");
            put_class(&l, pred);
            put_s(&l, " (true ");
            put_class(&l, label);
            put_s(&l, pred == label ? ", ok)" : ", wrong)");
            hd_out(l.buf);
            prev = (int)pred;
        }
    }
    if (!err) {
        uint8_t extra;
        if (hd_read(h, &extra, 1) != 0) err = "data file has bytes after its last window";
    }
    hd_close(h);
    if (err) return fail(err, argv[1]);

    l.n = 0;
    put_s(&l, "windows=");
    put_u(&l, n_windows);
    put_s(&l, " correct=");
    put_u(&l, correct);
    put_s(&l, " accuracy=");
    put_fixed(&l, div_round((uint64_t)correct * 10000u, n_windows), 4);
    hd_out(l.buf);

    uint32_t num, den;
    l.n = 0;
    if (hd_instr_ratio(&num, &den)) {
        /* tenths, one rounded division each (em_run's rule, so the per-step figure is comparable) */
        put_s(&l, "instructions_per_window=");
        put_fixed(&l, div_round(window_ticks * num * 10u, (uint64_t)den * n_windows), 1);
        put_s(&l, " instructions_per_step=");
        put_fixed(&l, div_round(step_ticks * num * 10u, (uint64_t)den * n_windows * steps), 1);
    } else {
        put_s(&l, "instructions: not counted on this platform");
    }
    hd_out(l.buf);
    return 0;
}

int main(int argc, char **argv) { return hd_exit(run(argc, argv)); }
