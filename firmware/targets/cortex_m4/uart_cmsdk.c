/* uart_validate hooks for QEMU mps2-an386: CMSDK APB UART0 at 0x40004000 (polled) and SysTick on the processor
 * clock (free-running 24-bit down counter, as platform_m4.c: under -icount shift=6, instructions = ticks * 40 / 64). */
#include <stdint.h>

#include "uv_platform.h"

#define UART0_DATA (*(volatile uint32_t *)0x40004000u)
#define UART0_STATE (*(volatile uint32_t *)0x40004004u) /* bit 0: TX full, bit 1: RX full */
#define UART0_CTRL (*(volatile uint32_t *)0x40004008u)  /* bit 0: TX enable, bit 1: RX enable */
#define UART0_BAUDDIV (*(volatile uint32_t *)0x40004010u)
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

void uv_init(void) {
    UART0_BAUDDIV = 16u; /* the smallest divider the CMSDK UART accepts; QEMU ignores the rate */
    UART0_CTRL = 0x3u;
    SYST_CSR = 0;
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 0x5u; /* ENABLE | CLKSOURCE=processor */
}

uint8_t uv_getc(void) {
    while (!(UART0_STATE & 0x2u)) {
    }
    return (uint8_t)UART0_DATA;
}

void uv_putc(uint8_t b) {
    while (UART0_STATE & 0x1u) {
    }
    UART0_DATA = b;
}

uint32_t uv_ticks_begin(void) { return SYST_CVR; }

uint32_t uv_ticks_end(uint32_t begin) { return (begin - SYST_CVR) & 0xFFFFFFu; }
