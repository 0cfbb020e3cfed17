/* kernel_bench: Cortex-M4 instructions per call of each public kernel (em_kernels.h) at the shipped models' shapes,
 * QEMU mps2-an386 under -icount (platform_m4.c's SysTick: instructions = ticks * 40 / 64). `make kernel-bench`
 * builds it; edgemem/bench.py runs it and parses its lines:
 *   kernel=NAME shape=SHAPE macs=M instructions=I
 * I is one call's instructions (argument checks, requantization and stores included, as CMSIS-NN's per-layer
 * figures include them): REPS calls timed in a loop minus the same loop around nothing, divided by REPS. The
 * weights and inputs come from a fixed LCG, so every run prints the same numbers. Arguments: the event-driven FC's
 * input spike rate in permille (default 100), which bench.py takes from its own measurement on the spiking models;
 * optionally a kernel name, to run that kernel's rows only. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "em_kernels.h"
#include "em_run_platform.h"

#define REPS 4
#define MAX_W (128 * 144) /* the largest weight matrix below: [128][128] s8 or [48][144] s8 */
#define MAX_N 1024

/* the benchmark's data, not kernel state: big arrays off the 16 KB-ish stack */
static int8_t g_w8[MAX_W];
static uint8_t g_wp[MAX_W];
static int16_t g_a16[MAX_W];
static int8_t g_in8[MAX_N], g_ring[MAX_N];
static int16_t g_in16[MAX_N], g_m[MAX_N], g_scratch[MAX_N];
static int32_t g_bias[MAX_N], g_mult[MAX_N], g_b[MAX_N], g_out[MAX_N];
static int8_t g_shift[MAX_N];

static uint32_t lcg(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static void fill(uint32_t seed) {
    uint32_t s = seed;
    for (int i = 0; i < MAX_W; i++) {
        g_w8[i] = (int8_t)(int32_t)((lcg(&s) & 0xFFu) - 128u);
        g_wp[i] = (uint8_t)lcg(&s);
        g_a16[i] = (int16_t)((int32_t)(lcg(&s) & 0xFFFu) - 2048); /* A in Q(a_shift) of an LMU: small entries */
    }
    for (int i = 0; i < MAX_N; i++) {
        g_in8[i] = (int8_t)(int32_t)((lcg(&s) & 0xFFu) - 128u);
        g_ring[i] = (int8_t)(int32_t)((lcg(&s) & 0xFFu) - 128u);
        g_in16[i] = (int16_t)((int32_t)(lcg(&s) & 0xFFFFu) - 32768);
        g_m[i] = (int16_t)((int32_t)(lcg(&s) & 0x3FFFu) - 8192);
        g_bias[i] = (int32_t)(lcg(&s) & 0xFFFFu) - 32768;
        g_mult[i] = (int32_t)(0x40000000u + (lcg(&s) & 0x3FFFFFFFu)); /* [2^30, 2^31): as the exporter writes */
        g_shift[i] = (int8_t)(20 + (int)(lcg(&s) % 8u));
        g_b[i] = (int32_t)(lcg(&s) & 0xFFFFu) - 32768;
    }
}

typedef struct {
    const char *kernel;
    int a, b, c;  /* shape: FC out, in; CONV1D c_out, c_in, k; LMU n_u, order */
    int spikes;   /* events: nonzero inputs */
} bench_case_t;

static int is(const char *a, const char *b) { return strcmp(a, b) == 0; }

static em_status_t call(const bench_case_t *k) {
    const char *n = k->kernel;
    if (is(n, "fc_s8")) return em_fc_s8_mode(g_in8, g_w8, g_bias, g_mult, g_shift, k->b, k->a, EM_OUT_ASSIGN, g_out);
    if (is(n, "fc_s16")) return em_fc_s16(g_in16, g_w8, g_bias, g_mult, g_shift, k->b, k->a, EM_OUT_ASSIGN, g_out);
    if (is(n, "fc_s8_p4") || is(n, "fc_s8_p2"))
        return em_fc_s8_packed(g_in8, g_wp, n[7] - '0', g_bias, g_mult, g_shift, k->b, k->a, EM_OUT_ASSIGN, g_out);
    if (is(n, "fc_s16_p4") || is(n, "fc_s16_p2"))
        return em_fc_s16_packed(g_in16, g_wp, n[8] - '0', g_bias, g_mult, g_shift, k->b, k->a, EM_OUT_ASSIGN,
                                g_out);
    if (is(n, "fc_events_p4") || is(n, "fc_events_p2"))
        return em_fc_s8_packed_events(g_in8, g_wp, n[11] - '0', g_bias, g_mult, g_shift, k->b, k->a, EM_OUT_ASSIGN,
                                      g_scratch, g_out);
    if (is(n, "fc_events"))
        return em_fc_s8_events(g_in8, g_w8, g_bias, g_mult, g_shift, k->b, k->a, EM_OUT_ASSIGN, g_scratch, g_out);
    if (is(n, "conv1d_s8")) {
        int32_t head = 0; /* the ring's position does not change the work */
        return em_conv1d_causal_s8(g_in8, g_ring, &head, g_w8, g_bias, g_mult, g_shift, k->b, k->a, k->c,
                                   EM_OUT_ASSIGN, g_out);
    }
    if (is(n, "conv1d_p4") || is(n, "conv1d_p2")) {
        int32_t head = 0;
        return em_conv1d_causal_packed(g_in8, g_ring, &head, g_wp, n[8] - '0', g_bias, g_mult, g_shift, k->b, k->a,
                                       k->c, EM_OUT_ASSIGN, g_out);
    }
    if (is(n, "lmu_s8_s16")) return em_lmu_s8_s16(g_m, g_in8, g_a16, 14, g_b, 4, k->a, k->b, g_scratch);
    return EM_ERR_PARAM;
}

/* ticks of REPS calls of k (or of nothing: the loop's own cost) */
static uint32_t time_reps(const bench_case_t *k, int empty, em_status_t *st) {
    em_status_t s = EM_OK;
    const uint32_t t0 = em_cycle_begin();
    for (int r = 0; r < REPS; r++) {
        if (!empty) s |= call(k);
        __asm volatile("" ::: "memory"); /* keeps the empty loop a loop */
    }
    const uint32_t t = em_cycle_end(t0);
    *st = s;
    return t;
}

int main(int argc, char **argv) {
    em_platform_init(&argc, &argv);
    const int permille = argc > 1 ? atoi(argv[1]) : 100;
    uint32_t num = 0, den = 1;
    if (!em_platform_instr_ratio(&num, &den)) return 1;
    /* Shapes [out, in] (CONV1D [c_out, c_in, k], LMU [n_u, order]) of export/NAME/model.bin: kws_* 48x144 (the
     * conv's window as an FC), 96x48, 48x96, 48x48, 48x32x3 / 48x48x3 convs, 8x16 LMU; psmnist_lmu 128x128 (int16
     * input), 1x128 LMU; har_l2mu 64x48, 48x48, 4x8 LMU; har_elm 32x16. */
    const bench_case_t cases[] = {
        {"fc_s8", 32, 32, 0, 0},      {"fc_s8", 48, 48, 0, 0},      {"fc_s8", 64, 48, 0, 0},
        {"fc_s8", 96, 48, 0, 0},      {"fc_s8", 48, 96, 0, 0},      {"fc_s8", 48, 144, 0, 0},
        {"fc_s8", 128, 128, 0, 0},    {"fc_s16", 32, 32, 0, 0},     {"fc_s16", 48, 128, 0, 0},
        {"fc_s16", 128, 128, 0, 0},   {"fc_s8_p4", 32, 32, 0, 0},   {"fc_s8_p4", 96, 48, 0, 0},
        {"fc_s8_p4", 128, 128, 0, 0}, {"fc_s8_p2", 32, 32, 0, 0},   {"fc_s8_p2", 96, 48, 0, 0},
        {"fc_s8_p2", 128, 128, 0, 0}, {"fc_s16_p4", 48, 128, 0, 0}, {"fc_s16_p4", 128, 128, 0, 0},
        {"fc_s16_p2", 48, 128, 0, 0}, {"conv1d_s8", 48, 32, 3, 0},  {"conv1d_s8", 48, 48, 3, 0},
        {"conv1d_p4", 48, 32, 3, 0},  {"conv1d_p4", 48, 48, 3, 0},  {"fc_s8_p2", 48, 48, 0, 0},
        {"lmu_s8_s16", 8, 16, 0, 0},  {"lmu_s8_s16", 1, 128, 0, 0}, {"fc_events", 48, 48, 0, 0},
        {"fc_events", 96, 48, 0, 0},  {"fc_events_p4", 48, 48, 0, 0}, {"fc_events_p2", 64, 48, 0, 0},
    };
    const uint32_t seed = 12345u;
    const char *only = argc > 2 ? argv[2] : NULL; /* one kernel's rows only (e.g. under an instruction trace) */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bench_case_t k = cases[i];
        if (only && !is(k.kernel, only)) continue;
        fill(seed);
        long macs = (long)k.a * k.b;
        if (is(k.kernel, "conv1d_s8") || is(k.kernel, "conv1d_p4") || is(k.kernel, "conv1d_p2")) macs *= k.c;
        if (is(k.kernel, "lmu_s8_s16")) macs = (long)k.a * k.b * k.b; /* A m per channel: order x order */
        if (strncmp(k.kernel, "fc_events", 9) == 0) {
            /* spikes (0/1) at evenly spread places: round(in * rate) of them */
            k.spikes = (k.b * permille + 500) / 1000;
            for (int j = 0; j < k.b; j++) g_in8[j] = 0;
            for (int s = 0; s < k.spikes; s++) g_in8[(int)((long)s * k.b / (k.spikes ? k.spikes : 1))] = 1;
        }
        em_status_t st;
        (void)time_reps(&k, 0, &st); /* once untimed: the same path as the timed calls */
        const uint32_t t = time_reps(&k, 0, &st);
        em_status_t st0;
        const uint32_t t_empty = time_reps(&k, 1, &st0);
        if (st != EM_OK) {
            printf("kernel=%s error=%d\n", k.kernel, (int)st);
            return 1;
        }
        /* tenths of an instruction, in integers: nano newlib's printf has no %f */
        const unsigned long tenths =
            (unsigned long)(((uint64_t)(t - t_empty) * num * 10u + (uint64_t)den * REPS / 2u) / ((uint64_t)den * REPS));
        char shape[32];
        if (k.c > 0)
            snprintf(shape, sizeof shape, "%dx%dx%d", k.a, k.b, k.c);
        else
            snprintf(shape, sizeof shape, "%dx%d", k.a, k.b);
        printf("kernel=%s shape=%s macs=%ld instructions=%lu.%lu spikes=%d\n", k.kernel, shape, macs, tenths / 10u,
               tenths % 10u, k.spikes);
    }
    return 0;
}
