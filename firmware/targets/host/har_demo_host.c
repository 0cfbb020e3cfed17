/* har_demo platform hooks for the host: stdio files and console, no instruction counting. */
#include <stdio.h>

#include "har_demo_platform.h"

#define HD_HOST_FILES 4
static FILE *g_files[HD_HOST_FILES];

int hd_init(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return 0;
}

int hd_open(const char *path) {
    for (int i = 0; i < HD_HOST_FILES; i++) {
        if (g_files[i]) continue;
        g_files[i] = fopen(path, "rb");
        return g_files[i] ? i : -1;
    }
    return -1;
}

long hd_read(int handle, void *buf, size_t n) {
    FILE *f = g_files[handle];
    size_t got = fread(buf, 1, n, f);
    return ferror(f) ? -1 : (long)got;
}

long hd_size(int handle) {
    FILE *f = g_files[handle];
    long pos = ftell(f), size = -1;
    if (pos >= 0 && fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (pos < 0 || fseek(f, pos, SEEK_SET) != 0) return -1;
    return size;
}

void hd_close(int handle) {
    fclose(g_files[handle]);
    g_files[handle] = NULL;
}

void hd_out(const char *line) {
    fputs(line, stdout);
    fputc('\n', stdout);
}

void hd_err(const char *line) {
    fflush(stdout); /* keep the order of the two streams when both go to one terminal */
    fputs(line, stderr);
    fputc('\n', stderr);
}

int hd_exit(int rc) { return rc; }

uint32_t hd_ticks_begin(void) { return 0; }
uint32_t hd_ticks_end(uint32_t begin) {
    (void)begin;
    return 0;
}
int hd_instr_ratio(uint32_t *num, uint32_t *den) {
    (void)num;
    (void)den;
    return 0;
}
