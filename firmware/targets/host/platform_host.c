/* em_run platform hooks for the host: plain stdio, argv as given, no instruction counting. */
#include <stdio.h>

#include "em_run_platform.h"

int em_platform_init(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return 0;
}
uint32_t em_cycle_begin(void) { return 0; }
uint32_t em_cycle_end(uint32_t begin) {
    (void)begin;
    return 0;
}
int em_platform_instr_ratio(uint32_t *num, uint32_t *den) {
    (void)num;
    (void)den;
    return 0;
}
int em_platform_rename(const char *from, const char *to) { return rename(from, to) == 0 ? 0 : -1; }
