"""`edgemem verify EXPORT --port DEVICE`: the compiled-in model on a target running firmware/apps/uart_validate,
driven over a serial line (pyserial: a device such as /dev/ttyACM0, a pty, or socket://HOST:PORT, which is how the
tests reach QEMU's emulated UART). Frames and types: firmware/README.md "Validation over a serial line".

Every read has a deadline: a bad frame, a silent or vanished device gives a one-line SerialLinkError, never a hang.
"""

from __future__ import annotations

import struct
import time
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgemem.errors import EdgememError

SYNC = b"\xa5\x5a"
HELLO, RESET, STEP, REPLY, ERROR = 0x01, 0x02, 0x03, 0x80, 0xEE
PROTO = 1
MAX_PAYLOAD = 512
ERROR_NAMES = {-100: "the device saw a bad frame CRC", -101: "the device does not know the frame type",
               -102: "the device refused the frame length"}
TYPE_NAMES = {HELLO: "HELLO", RESET: "RESET", STEP: "STEP"}


class SerialLinkError(EdgememError):
    """A serial validation failed: no device, a bad frame, a timeout, an ERROR reply."""


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no xorout."""
    crc = 0xFFFF
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def frame(ftype: int, payload: bytes = b"") -> bytes:
    body = struct.pack("<BH", ftype, len(payload)) + payload
    return SYNC + body + struct.pack("<H", crc16(body))


@dataclass
class Hello:
    proto: int
    graph_version: int
    n_in: int
    n_out: int
    blob_size: int
    blob_crc32: int
    tick_num: int
    tick_den: int
    version: str


def open_port(port: str, baudrate: int = 115200) -> Any:
    """pyserial's serial_for_url (a device path, a pty, socket://, loop://), non-blocking reads of at most 0.1 s."""
    try:
        import serial
    except ImportError:
        raise SerialLinkError("--port needs pyserial: pip install 'edgemem[serial]'") from None
    try:
        return serial.serial_for_url(port, baudrate=baudrate, timeout=0.1, write_timeout=2.0)
    except (serial.SerialException, OSError, ValueError) as e:
        raise SerialLinkError(f"cannot open serial port {port}: {e}") from None


class Link:
    """One target over an open pyserial-like object (read(n), write(b), close()); timeout: seconds per reply."""

    def __init__(self, ser: Any, port: str = "serial", timeout: float = 5.0) -> None:
        self.ser, self.port, self.timeout = ser, port, timeout

    def close(self) -> None:
        try:
            self.ser.close()
        except Exception:  # noqa: BLE001 - closing a vanished device must not mask the first error
            pass

    def _read(self, n: int, deadline: float, what: str) -> bytes:
        buf = b""
        while len(buf) < n:
            if time.monotonic() > deadline:
                raise SerialLinkError(f"{self.port}: no reply within {self.timeout:g} s ({what}; got {len(buf)} of "
                                      f"{n} bytes): is uart_validate running there?")
            try:
                chunk = self.ser.read(n - len(buf))
            except Exception as e:  # noqa: BLE001 - pyserial raises SerialException / OSError when the device goes
                raise SerialLinkError(f"{self.port}: the device disappeared ({what}): {e}") from None
            if chunk is None:
                chunk = b""
            buf += chunk
        return buf

    def _write(self, data: bytes, what: str) -> None:
        try:
            self.ser.write(data)
            if hasattr(self.ser, "flush"):
                self.ser.flush()
        except Exception as e:  # noqa: BLE001
            raise SerialLinkError(f"{self.port}: the device disappeared ({what}): {e}") from None

    def request(self, ftype: int, payload: bytes = b"") -> bytes:
        """Sends one frame, returns the reply's payload (type ftype | 0x80), else raises one line."""
        self._write(frame(ftype, payload), TYPE_NAMES.get(ftype, f"type 0x{ftype:02x}"))
        return self.receive(ftype)

    def receive(self, ftype: int) -> bytes:
        """The next frame's payload, which must be the reply to a request of type ftype."""
        name = TYPE_NAMES.get(ftype, f"type 0x{ftype:02x}")
        deadline = time.monotonic() + self.timeout
        # sync: skip anything before A5 5A (a board's boot banner, line noise)
        prev = b""
        skipped = 0
        while True:
            b = self._read(1, deadline, f"{name} reply")
            if prev == b"\xa5" and b == b"\x5a":
                break
            prev = b
            skipped += 1
            if skipped > 4096:
                raise SerialLinkError(f"{self.port}: no frame SYNC (A5 5A) in 4096 bytes after {name}: "
                                      "not uart_validate, or the wrong baud rate")
        head = self._read(3, deadline, f"{name} reply header")
        rtype, length = struct.unpack("<BH", head)
        if length > MAX_PAYLOAD:
            raise SerialLinkError(f"{self.port}: bad frame in reply to {name}: length {length} > {MAX_PAYLOAD}")
        payload = self._read(length, deadline, f"{name} reply payload")
        (crc,) = struct.unpack("<H", self._read(2, deadline, f"{name} reply CRC"))
        if crc != crc16(head + payload):
            raise SerialLinkError(f"{self.port}: bad frame in reply to {name}: CRC 0x{crc:04x}, computed "
                                  f"0x{crc16(head + payload):04x}")
        if rtype == ERROR:
            if len(payload) != 3:
                raise SerialLinkError(f"{self.port}: bad ERROR frame in reply to {name}: {len(payload)} bytes, not 3")
            code, req = struct.unpack("<hB", payload)
            raise SerialLinkError(f"{self.port}: device ERROR {code} to {TYPE_NAMES.get(req, hex(req))}: "
                                  f"{ERROR_NAMES.get(code, 'em_status_t ' + str(code))}")
        if rtype != ftype | REPLY:
            raise SerialLinkError(f"{self.port}: bad frame in reply to {name}: type 0x{rtype:02x}, expected "
                                  f"0x{ftype | REPLY:02x}")
        return payload

    def hello(self) -> Hello:
        p = self.request(HELLO)
        if len(p) < 18:
            raise SerialLinkError(f"{self.port}: bad HELLO reply: {len(p)} bytes, expected at least 18")
        h = Hello(*struct.unpack("<BBHHIIHH", p[:18]), version=p[18:].decode("ascii", "replace"))
        if h.proto != PROTO:
            raise SerialLinkError(f"{self.port}: uart_validate protocol {h.proto}, this edgemem speaks {PROTO}")
        return h

    def reset(self) -> None:
        if self.request(RESET):
            raise SerialLinkError(f"{self.port}: bad RESET reply: a payload where none belongs")

    def step(self, x: np.ndarray, n_out: int) -> tuple[np.ndarray, int]:
        p = self.request(STEP, np.ascontiguousarray(x, dtype=np.int8).tobytes())
        if len(p) != 4 + 2 * n_out:
            raise SerialLinkError(f"{self.port}: bad STEP reply: {len(p)} bytes, expected {4 + 2 * n_out}")
        return np.frombuffer(p[4:], dtype="<i2").copy(), struct.unpack("<I", p[:4])[0]


@dataclass
class SerialRun:
    hello: Hello
    logits: np.ndarray  # [N][T][n_out] int16
    instructions_per_step: float
    seconds: float


def run_windows(link: Link, blob: bytes, x: np.ndarray, n_out: int) -> SerialRun:
    """HELLO (the device's model must be this blob: size and CRC-32), then per window RESET and one STEP a step."""
    t0 = time.monotonic()
    h = link.hello()
    n, steps, n_in = x.shape
    if (h.n_in, h.n_out) != (n_in, n_out) or h.blob_size != len(blob) or h.blob_crc32 != zlib.crc32(blob):
        raise SerialLinkError(f"{link.port}: the device runs another model (n_in {h.n_in}, n_out {h.n_out}, blob "
                              f"{h.blob_size} B crc 0x{h.blob_crc32:08x}; this export: {n_in}, {n_out}, {len(blob)} B "
                              f"crc 0x{zlib.crc32(blob):08x}): rebuild with make -C firmware uart-validate MODEL_DIR=...")
    out = np.zeros((n, steps, n_out), dtype=np.int16)
    ticks = 0
    for w in range(n):
        link.reset()
        for t in range(steps):
            out[w, t], k = link.step(x[w, t], n_out)
            ticks += k
    instr = ticks * h.tick_num / h.tick_den / max(1, n * steps)
    return SerialRun(h, out, float(instr), time.monotonic() - t0)


def validate(port: str, blob: bytes, x: np.ndarray, n_out: int, timeout: float = 5.0) -> SerialRun:
    link = Link(open_port(port), port, timeout)
    try:
        return run_windows(link, blob, x, n_out)
    finally:
        link.close()
