/* What har_demo needs from its target: file input, console output, exit, and a tick counter. Two implementations:
 * targets/host/har_demo_host.c (stdio) and targets/cortex_m4/har_demo_semihost.c (raw ARM semihosting calls,
 * no newlib stdio, so the image links without malloc and fits a heap-less watch-chip layout). */
#ifndef HAR_DEMO_PLATFORM_H
#define HAR_DEMO_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

/* Called first in main; may replace argc/argv (semihosting command line). 0 on success. */
int hd_init(int *argc, char ***argv);
/* Open a file for binary reading: a handle >= 0, or -1. */
int hd_open(const char *path);
/* Read up to n bytes: the count read (< n only at the end of the file), or -1 on an I/O error. */
long hd_read(int handle, void *buf, size_t n);
/* Size in bytes of an open file, or -1. */
long hd_size(int handle);
void hd_close(int handle);
/* One line (the text without its newline) on the console's stdout / stderr. */
void hd_out(const char *line);
void hd_err(const char *line);
/* Ends the program with status rc where the target can (semihosting exit); the host returns rc from main. */
int hd_exit(int rc);
/* Tick stamp and the ticks elapsed since it (0 where the platform does not count). */
uint32_t hd_ticks_begin(void);
uint32_t hd_ticks_end(uint32_t begin);
/* Instructions per tick as num/den; 0 where the platform does not count instructions. */
int hd_instr_ratio(uint32_t *num, uint32_t *den);

#endif /* HAR_DEMO_PLATFORM_H */
