/* uart_validate's board hooks: a blocking byte UART and a cycle counter (targets/cortex_m4/uart_cmsdk.c for QEMU
 * mps2-an386; a real board supplies its own: its UART driver and DWT->CYCCNT or SysTick). */
#ifndef UV_PLATFORM_H
#define UV_PLATFORM_H

#include <stdint.h>

void uv_init(void);
uint8_t uv_getc(void);          /* blocks until a byte arrives */
void uv_putc(uint8_t b);        /* blocks until the transmitter takes it */
uint32_t uv_ticks_begin(void);
uint32_t uv_ticks_end(uint32_t begin); /* ticks since uv_ticks_begin */

#endif /* UV_PLATFORM_H */
