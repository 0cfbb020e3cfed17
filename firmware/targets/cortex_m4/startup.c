/* Cortex-M4F startup for QEMU mps2-an386: vector table, .data copy, .bss zero, FPU on, main, exit. */
#include <stdint.h>

extern uint32_t __data_load__, __data_start__, __data_end__, __bss_start__, __bss_end__, __stack_top__;
extern int main(int argc, char **argv);
#ifndef EM_STARTUP_NO_EXIT
extern void exit(int status); /* newlib: flushes stdio, then the semihosting exit carries the status */
#endif

void Reset_Handler(void);
void Default_Handler(void);
void NMI_Handler(void) __attribute__((weak, alias("Default_Handler")));
void HardFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void MemManage_Handler(void) __attribute__((weak, alias("Default_Handler")));
void BusFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void UsageFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SVC_Handler(void) __attribute__((weak, alias("Default_Handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("Default_Handler")));
void PendSV_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SysTick_Handler(void) __attribute__((weak, alias("Default_Handler")));

/* Initial SP and the 15 system exceptions; no device IRQs are used. */
__attribute__((section(".vectors"), used)) const uintptr_t g_vectors[16] = {
    (uintptr_t)&__stack_top__, (uintptr_t)Reset_Handler, (uintptr_t)NMI_Handler, (uintptr_t)HardFault_Handler,
    (uintptr_t)MemManage_Handler, (uintptr_t)BusFault_Handler, (uintptr_t)UsageFault_Handler, 0, 0, 0, 0,
    (uintptr_t)SVC_Handler, (uintptr_t)DebugMon_Handler, 0, (uintptr_t)PendSV_Handler, (uintptr_t)SysTick_Handler,
};

/* Built with -nostartfiles (no crti.o): full newlib's exit() still calls _fini; nothing to run here. */
__attribute__((weak)) void _init(void) {}
__attribute__((weak)) void _fini(void) {}

/* A fault has no one to report to: park here (a debugger or QEMU's monitor shows the PC). */
void Default_Handler(void) {
    for (;;) {
    }
}

void Reset_Handler(void) {
    /* plain word loops; the empty asm (no instruction) stops gcc turning them into memcpy/memset calls, which would
     * link newlib's for a firmware that has no other use for them */
    uint32_t *dst = &__data_start__;
    for (const uint32_t *src = &__data_load__; dst < &__data_end__;) {
        *dst++ = *src++;
        __asm__("" : : "r"(dst) : "memory");
    }
    for (dst = &__bss_start__; dst < &__bss_end__;) {
        *dst++ = 0;
        __asm__("" : : "r"(dst) : "memory");
    }
#if defined(__ARM_FP)
    /* CPACR: full access to CP10/CP11 (the FPU) before any float instruction; the -mfloat-abi=hard code needs it
     * (built without an FPU, for the Cortex-M0 and M3 in targets/cores/, there is none to enable) */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif

    static char *argv[1] = {0}; /* the semihosting build fills argv in em_platform_init */
    int rc = main(0, argv);
#ifndef EM_STARTUP_NO_EXIT
    exit(rc);
#else
    (void)rc;
#endif
    for (;;) {
    }
}
