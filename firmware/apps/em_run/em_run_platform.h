/* The few things em_run does differently per target (host, Cortex-M4 under QEMU), so em_run.c stays one file. */
#ifndef EM_RUN_PLATFORM_H
#define EM_RUN_PLATFORM_H

#include <stdint.h>

/* Called first in main: sets up I/O and may replace argc/argv (semihosting command line). 0 on success. */
int em_platform_init(int *argc, char ***argv);
/* Timestamp before an em_graph_step, and the ticks elapsed since it (0 where the platform does not count). */
uint32_t em_cycle_begin(void);
uint32_t em_cycle_end(uint32_t begin);
/* Instructions per tick as num/den; returns 0 where the platform does not count instructions. */
int em_platform_instr_ratio(uint32_t *num, uint32_t *den);
/* Rename a closed file over another (replacing it); 0 on success. newlib's rename() on the M4 goes through link(),
 * which semihosting lacks, so the M4 asks the host directly (SYS_RENAME). */
int em_platform_rename(const char *from, const char *to);

#endif /* EM_RUN_PLATFORM_H */
