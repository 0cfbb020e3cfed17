/* tick_check: checks a board's ticks-to-instructions conversion (EM_TICK_NUM/DEN, em_platform_instr_ratio) the way
 * em_run times a step: the platform's em_cycle_begin/em_cycle_end around a loop of a known instruction count.
 * The loop body is two instructions (subs/bne on Arm, addi/bnez on RISC-V), run N and 2N times; the difference of
 * the two counts is 2N instructions exactly, without the call and set-up overhead. Prints the raw counts and the
 * converted figure, and exits 1 when the conversion is off by more than one instruction (a 25 MHz SysTick under
 * -icount shift=6 ticks 1,280 times per 800 instructions: one tick of quantisation either side).
 * `make cores-tick` runs it on every machine of targets/cores/run_qemu.sh. */
#include <stdint.h>
#include <stdio.h>

#include "em_run_platform.h"

#define LOOP_N 10000u
#define EXPECTED (2u * LOOP_N) /* instructions in the difference of the two runs */

static void __attribute__((noinline)) spin(uint32_t n) {
#if defined(__riscv)
    __asm volatile("1: addi %0, %0, -1\n\tbnez %0, 1b" : "+r"(n));
#else
    __asm volatile(".syntax unified\n1: subs %0, %0, #1\n\tbne 1b" : "+l"(n) : : "cc");
#endif
}

int main(int argc, char **argv) {
    em_platform_init(&argc, &argv);
    uint32_t ticks[2];
    for (uint32_t i = 0; i < 2u; i++) {
        uint32_t begin = em_cycle_begin();
        spin(LOOP_N * (i + 1u));
        ticks[i] = em_cycle_end(begin);
    }
    uint32_t num = 0, den = 1;
    if (!em_platform_instr_ratio(&num, &den)) {
        printf("tick_check: the platform counts no instructions\n");
        return 1;
    }
    uint32_t delta = ticks[1] - ticks[0];
    uint32_t instr = (uint32_t)(((uint64_t)delta * num + den / 2u) / den);
    int ok = instr + 1u >= EXPECTED && instr <= EXPECTED + 1u;
    printf("tick_check: ticks %lu %lu delta=%lu ratio=%lu/%lu instructions=%lu expected=%lu %s\n",
           (unsigned long)ticks[0], (unsigned long)ticks[1], (unsigned long)delta, (unsigned long)num,
           (unsigned long)den, (unsigned long)instr, (unsigned long)EXPECTED, ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
