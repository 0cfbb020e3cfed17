/* em_run platform hooks for RISC-V rv32 (QEMU virt) under picolibc semihosting: picolibc's crt0-semihost fetches
 * the command line (so argc/argv arrive set) and its stdio goes through semihosting; the rename is
 * sys_semihost_rename (SYS_RENAME). Instructions come from minstret: under QEMU 7.2's -icount the counter reads the virtual
 * clock (icount_get: instructions << shift, in ns), so with run_qemu.sh's shift=6 the ratio is 1/64 (checked: shift=0
 * gives the same per-step count as shift=6 / 64). Read as 32 bits: a step is far shorter than 2^26 instructions. */
#include <semihost.h>
#include <stdint.h>

#include "em_run_platform.h"

/* picolibc's crt0-semihost supplies argv[0] itself and makes argv[1..] of the semihosting command line, so
 * run_qemu.sh passes no program name for rv32: argv arrives as on the other targets. */
int em_platform_init(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return 0;
}

static uint32_t instret(void) {
    uint32_t v;
    /* csrr v, minstret (csrrs v, 0xB02, x0; 0xB02 as a signed 12-bit immediate) as .insn: -march=rv32imac (picolibc's multilib) has no Zicsr for gas 2.40 */
    __asm volatile(".insn i 0x73, 2, %0, x0, -1278" : "=r"(v));
    return v;
}

uint32_t em_cycle_begin(void) { return instret(); }

uint32_t em_cycle_end(uint32_t begin) { return instret() - begin; }

int em_platform_instr_ratio(uint32_t *num, uint32_t *den) {
    *num = 1;
    *den = 64;
    return 1;
}

int em_platform_rename(const char *from, const char *to) { return sys_semihost_rename(from, to) == 0 ? 0 : -1; }
