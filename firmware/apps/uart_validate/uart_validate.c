/* uart_validate: the compiled-in model (MODEL_DIR/model.c, bound with em_graph_bind) served over a UART with a
 * framed, CRC-checked protocol, so `edgemem verify EXPORT --port DEVICE` can validate it on the target (as
 * X-CUBE-AI validates over a serial line). No semihosting, no stdio: the UART is the only channel.
 *
 * Frame: 0xA5 0x5A | type u8 | length u16 LE | payload | CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) u16 LE over
 * type, length and payload. Requests and replies (firmware/README.md "Validation over a serial line"):
 *   HELLO 0x01 (empty)      -> 0x81: proto u8, graph version u8, n_in u16, n_out u16, blob_size u32, blob_crc32 u32,
 *                              tick_num u16, tick_den u16 (instructions = ticks * num / den), version string
 *   RESET 0x02 (empty)      -> 0x82 (empty): em_graph_reset, the state zeroed
 *   STEP  0x03 (n_in int8)  -> 0x83: ticks u32 (SysTick over em_graph_step), n_out int16 LE logits
 *   anything wrong          -> 0xEE ERROR: code i16 LE (an em_status_t, or UV_ERR_* below), request type u8
 * The board hooks (uv_platform.h) are the UART and SysTick; targets/cortex_m4/uart_cmsdk.c serves QEMU mps2-an386. */
#include <stdint.h>

#include "edgemem.h"
#include "em_crc32.h" /* src/: the blob CRC HELLO reports (zlib.crc32 of the whole blob) */
#include "model.h"
#include "uv_platform.h"

#if !defined(EM_MODEL_FORMAT) || EM_MODEL_FORMAT != 2
#error "uart_validate needs a graph model.h (EM_MODEL_FORMAT 2): re-export with `edgemem export --to c`"
#endif

#define UV_PROTO 1u
#define UV_HELLO 0x01u
#define UV_RESET 0x02u
#define UV_STEP 0x03u
#define UV_REPLY 0x80u
#define UV_ERROR 0xEEu
/* protocol errors (below every em_status_t) */
#define UV_ERR_FRAME_CRC (-100)
#define UV_ERR_UNKNOWN_TYPE (-101)
#define UV_ERR_LENGTH (-102)
#define UV_MAX_PAYLOAD 512u

#ifndef UV_TICK_NUM /* QEMU -icount shift=6: 64 ns an instruction, SysTick every 40 ns (firmware/README.md) */
#define UV_TICK_NUM 40u
#define UV_TICK_DEN 64u
#endif

static uint32_t g_arena[(EM_MODEL_ARENA_BYTES + 3) / 4];
static uint8_t g_rx[UV_MAX_PAYLOAD];
static uint8_t g_tx[UV_MAX_PAYLOAD];
#ifdef UV_TEST_CORRUPT_REPLY /* test build: flip one byte of the Nth reply frame (counted from 1) */
static uint32_t g_replies;
#endif

static uint16_t crc16_byte(uint16_t crc, uint8_t b) {
    crc ^= (uint16_t)((uint16_t)b << 8);
    for (int i = 0; i < 8; i++) crc = (uint16_t)(crc & 0x8000u ? ((uint32_t)crc << 1) ^ 0x1021u : (uint32_t)crc << 1);
    return crc;
}

static void put16(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v) {
    put16(p, v);
    put16(p + 2, v >> 16);
}

static void send(uint8_t type, const uint8_t *payload, uint16_t len) {
    uint8_t head[5] = {0xA5u, 0x5Au, type, (uint8_t)len, (uint8_t)(len >> 8)};
    uint16_t crc = 0xFFFFu;
    for (int i = 2; i < 5; i++) crc = crc16_byte(crc, head[i]);
    for (uint16_t i = 0; i < len; i++) crc = crc16_byte(crc, payload[i]);
    uint8_t tail[2] = {(uint8_t)crc, (uint8_t)(crc >> 8)};
#ifdef UV_TEST_CORRUPT_REPLY
    if (++g_replies == UV_TEST_CORRUPT_REPLY) tail[0] ^= 0x01u;
#endif
    for (int i = 0; i < 5; i++) uv_putc(head[i]);
    for (uint16_t i = 0; i < len; i++) uv_putc(payload[i]);
    uv_putc(tail[0]);
    uv_putc(tail[1]);
}

static void send_error(int32_t code, uint8_t req) {
    uint8_t p[3];
    put16(p, (uint32_t)(uint16_t)(int16_t)code);
    p[2] = req;
    send(UV_ERROR, p, 3);
}

/* Waits for SYNC, then reads one frame; returns its type, or -1 after replying with an ERROR (bad CRC/length). */
static int receive(uint16_t *len_out) {
    for (;;) {
        if (uv_getc() != 0xA5u) continue;
        uint8_t b = uv_getc();
        while (b == 0xA5u) b = uv_getc();
        if (b == 0x5Au) break;
    }
    uint8_t type = uv_getc();
    uint8_t l0 = uv_getc(), l1 = uv_getc();
    uint16_t len = (uint16_t)(l0 | (l1 << 8));
    uint16_t crc = crc16_byte(crc16_byte(crc16_byte(0xFFFFu, type), l0), l1);
    if (len > UV_MAX_PAYLOAD) { /* cannot hold it: resynchronize on the next SYNC */
        send_error(UV_ERR_LENGTH, type);
        return -1;
    }
    for (uint16_t i = 0; i < len; i++) {
        g_rx[i] = uv_getc();
        crc = crc16_byte(crc, g_rx[i]);
    }
    uint8_t c0 = uv_getc(), c1 = uv_getc();
    if ((uint16_t)(c0 | (c1 << 8)) != crc) {
        send_error(UV_ERR_FRAME_CRC, type);
        return -1;
    }
    *len_out = len;
    return type;
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    uv_init();
    em_graph_t g;
    em_graph_ctx_t ctx;
    em_status_t bound = em_graph_bind(&g, em_model_blob, EM_MODEL_BLOB_SIZE);
    if (bound == EM_OK) bound = em_graph_init(&ctx, &g, g_arena, sizeof g_arena);
    for (;;) {
        uint16_t len = 0;
        int type = receive(&len);
        if (type < 0) continue;
        if (bound != EM_OK) { /* a damaged blob: every request gets its status */
            send_error(bound, (uint8_t)type);
            continue;
        }
        if (type == UV_HELLO && len == 0) {
            static const char version[] = EM_TOOL_VERSION;
            uint8_t *p = g_tx;
            p[0] = UV_PROTO;
            p[1] = (uint8_t)EM_GRAPH_VERSION;
            put16(p + 2, EM_MODEL_N_IN);
            put16(p + 4, EM_MODEL_N_OUT);
            put32(p + 6, EM_MODEL_BLOB_SIZE);
            put32(p + 10, em_crc32(em_model_blob, EM_MODEL_BLOB_SIZE));
            put16(p + 14, UV_TICK_NUM);
            put16(p + 16, UV_TICK_DEN);
            uint16_t n = 18;
            for (uint16_t i = 0; version[i] && n < UV_MAX_PAYLOAD; i++) p[n++] = (uint8_t)version[i];
            send(UV_HELLO | UV_REPLY, p, n);
        } else if (type == UV_RESET && len == 0) {
            em_status_t st = em_graph_reset(&ctx);
            if (st == EM_OK) send(UV_RESET | UV_REPLY, g_tx, 0);
            else send_error(st, (uint8_t)type);
        } else if (type == UV_STEP && len == EM_MODEL_N_IN) {
            int16_t out[EM_MODEL_N_OUT];
            uint32_t t0 = uv_ticks_begin();
            em_status_t st = em_graph_step(&ctx, (const int8_t *)g_rx, out);
            uint32_t ticks = uv_ticks_end(t0);
            if (st != EM_OK) {
                send_error(st, (uint8_t)type);
                continue;
            }
            put32(g_tx, ticks);
            for (int o = 0; o < EM_MODEL_N_OUT; o++) put16(g_tx + 4 + 2 * o, (uint32_t)(uint16_t)out[o]);
            send(UV_STEP | UV_REPLY, g_tx, (uint16_t)(4 + 2 * EM_MODEL_N_OUT));
        } else if (type == UV_HELLO || type == UV_RESET || type == UV_STEP) {
            send_error(UV_ERR_LENGTH, (uint8_t)type);
        } else {
            send_error(UV_ERR_UNKNOWN_TYPE, (uint8_t)type);
        }
    }
}
