/* em_run platform hooks for Cortex-M4 under QEMU: semihosting I/O (newlib rdimon) and SysTick timing.
 * Under `-icount shift=6` each instruction takes 2^6 ns of virtual time and SysTick (processor clock) ticks at
 * 25 MHz, i.e. every 40 ns, so instructions = ticks * 40 / 64.
 * The other Arm cores (targets/cores/) build this file too, with their board's SysTick period as
 * -DEM_TICK_NUM=ns-per-tick-numerator -DEM_TICK_DEN=... (ticks * NUM / DEN = instructions). */
#include <stdint.h>
#include <string.h>

#include "em_run_platform.h"

extern void initialise_monitor_handles(void);

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYS_GET_CMDLINE 0x15
#define SYS_RENAME 0x0F

/* Semihosting call: BKPT 0xAB with the operation in r0 and its parameter block in r1. */
static int semihost(int op, void *arg) {
    register int r0 __asm("r0") = op;
    register void *r1 __asm("r1") = arg;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

/* Split the semihosting command line ("-semihosting-config ...,arg=a,arg=b" joins them with spaces). */
#ifndef EM_TICK_NUM
#define EM_TICK_NUM 40u
#define EM_TICK_DEN 64u
#endif
#ifndef CMDLINE_MAX
#define CMDLINE_MAX 1024
#endif
#define ARGV_MAX 16
static char g_cmdline[CMDLINE_MAX];
static char *g_argv[ARGV_MAX + 1];

static int semihost_args(char ***argv) {
    struct {
        char *buf;
        int len;
    } block = {g_cmdline, CMDLINE_MAX - 1};
    if (semihost(SYS_GET_CMDLINE, &block) != 0) return 0;
    g_cmdline[block.len >= 0 && block.len < CMDLINE_MAX ? block.len : CMDLINE_MAX - 1] = '\0';
    int argc = 0;
    for (char *p = g_cmdline; *p && argc < ARGV_MAX;) {
        while (*p == ' ') *p++ = '\0';
        if (!*p) break;
        g_argv[argc++] = p;
        while (*p && *p != ' ') p++;
    }
    g_argv[argc] = 0;
    *argv = g_argv;
    return argc;
}

int em_platform_init(int *argc, char ***argv) {
    initialise_monitor_handles();
    if (*argc == 0) *argc = semihost_args(argv);
    /* SysTick free-running on the processor clock: 24-bit down counter, no interrupt */
    SYST_CSR = 0;
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 0x5u; /* ENABLE | CLKSOURCE=processor */
    return 0;
}

uint32_t em_cycle_begin(void) { return SYST_CVR; }

/* Down-counting and 24 bits wide: (begin - now) mod 2^24 is right across one wrap; an em_graph_step is far shorter. */
uint32_t em_cycle_end(uint32_t begin) { return (begin - SYST_CVR) & 0xFFFFFFu; }

int em_platform_instr_ratio(uint32_t *num, uint32_t *den) {
    *num = EM_TICK_NUM;
    *den = EM_TICK_DEN;
    return 1;
}

/* SYS_RENAME: the host renames (and so replaces) the file; 0 on success. */
int em_platform_rename(const char *from, const char *to) {
    struct {
        const char *from;
        int from_len;
        const char *to;
        int to_len;
    } block = {from, (int)strlen(from), to, (int)strlen(to)};
    return semihost(SYS_RENAME, &block) == 0 ? 0 : -1;
}
