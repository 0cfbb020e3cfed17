/* har_demo platform hooks for Cortex-M4: raw ARM semihosting calls (no newlib stdio, whose FILE buffers come from
 * malloc) and SysTick. Under QEMU `-icount shift=6` each instruction takes 2^6 ns of virtual time and SysTick ticks
 * at 25 MHz (every 40 ns), so instructions = ticks * 40 / 64, as in platform_m4.c. On a real chip the same calls
 * need a debugger attached (BKPT 0xAB traps otherwise); the nRF52 images are linked only, to prove the fit. */
#include <stdint.h>

#include "har_demo_platform.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

/* semihosting operations (ARM "Semihosting for AArch32 and AArch64", v2) */
#define SYS_OPEN 0x01
#define SYS_CLOSE 0x02
#define SYS_WRITE 0x05
#define SYS_READ 0x06
#define SYS_FLEN 0x0C
#define SYS_GET_CMDLINE 0x15
#define SYS_EXIT_EXTENDED 0x20 /* carries the exit status on AArch32 (plain SYS_EXIT only says ok / not ok) */
#define ADP_STOPPED_APPLICATION_EXIT 0x20026
#define OPEN_RB 1              /* fopen mode "rb" */
#define OPEN_W 4               /* ":tt" opened "w" is stdout */
#define OPEN_A 8               /* ":tt" opened "a" is stderr */

static int semihost(int op, void *arg) {
    register int r0 __asm("r0") = op;
    register void *r1 __asm("r1") = arg;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static int g_stdout = -1, g_stderr = -1;

static uint32_t str_len(const char *s) {
    uint32_t n = 0;
    while (s[n]) n++;
    return n;
}

static int sh_open(const char *path, uint32_t mode) {
    uint32_t block[3] = {(uint32_t)(uintptr_t)path, mode, str_len(path)};
    return semihost(SYS_OPEN, block);
}

static void sh_write(int handle, const char *s, uint32_t n) {
    if (handle < 0) return;
    uint32_t block[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)s, n};
    (void)semihost(SYS_WRITE, block);
}

/* The command line ("-semihosting-config ...,arg=a,arg=b": QEMU joins the args with spaces) split in place. */
#define CMDLINE_MAX 512
#define ARGV_MAX 8
static char g_cmdline[CMDLINE_MAX];
static char *g_argv[ARGV_MAX + 1];

int hd_init(int *argc, char ***argv) {
    g_stdout = sh_open(":tt", OPEN_W);
    g_stderr = sh_open(":tt", OPEN_A);
    struct {
        char *buf;
        int len;
    } block = {g_cmdline, CMDLINE_MAX - 1};
    int n = 0;
    if (semihost(SYS_GET_CMDLINE, &block) == 0) {
        g_cmdline[block.len >= 0 && block.len < CMDLINE_MAX ? block.len : CMDLINE_MAX - 1] = '\0';
        for (char *p = g_cmdline; *p && n < ARGV_MAX;) {
            while (*p == ' ') *p++ = '\0';
            if (!*p) break;
            g_argv[n++] = p;
            while (*p && *p != ' ') p++;
        }
    }
    g_argv[n] = 0;
    *argc = n;
    *argv = g_argv;
    /* SysTick free-running on the processor clock: 24-bit down counter, no interrupt */
    SYST_CSR = 0;
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 0x5u; /* ENABLE | CLKSOURCE=processor */
    return g_stdout < 0 ? -1 : 0;
}

int hd_open(const char *path) { return sh_open(path, OPEN_RB); }

long hd_read(int handle, void *buf, size_t n) {
    uint32_t block[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)buf, (uint32_t)n};
    int left = semihost(SYS_READ, block); /* bytes NOT read; -1 on error */
    return left < 0 || (uint32_t)left > n ? -1 : (long)(n - (uint32_t)left);
}

long hd_size(int handle) {
    uint32_t block[1] = {(uint32_t)handle};
    return semihost(SYS_FLEN, block);
}

void hd_close(int handle) {
    uint32_t block[1] = {(uint32_t)handle};
    (void)semihost(SYS_CLOSE, block);
}

void hd_out(const char *line) {
    sh_write(g_stdout, line, str_len(line));
    sh_write(g_stdout, "\n", 1);
}

void hd_err(const char *line) {
    sh_write(g_stderr, line, str_len(line));
    sh_write(g_stderr, "\n", 1);
}

int hd_exit(int rc) {
    uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)rc};
    (void)semihost(SYS_EXIT_EXTENDED, block);
    return rc; /* only reached where no debugger serves the call */
}

uint32_t hd_ticks_begin(void) { return SYST_CVR; }

/* Down-counting and 24 bits wide: (begin - now) mod 2^24 is right across one wrap; one step is far shorter. */
uint32_t hd_ticks_end(uint32_t begin) { return (begin - SYST_CVR) & 0xFFFFFFu; }

int hd_instr_ratio(uint32_t *num, uint32_t *den) {
    *num = 40;
    *den = 64;
    return 1;
}
