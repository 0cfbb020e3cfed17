"""`edgemem verify EXPORT --port`: firmware/apps/uart_validate (har_elm compiled in) on QEMU mps2-an386, its UART0
on a loopback TCP socket that pyserial opens as socket://127.0.0.1:PORT (a board would be /dev/ttyACM0); bad
frames both ways, a corrupted reply and a device killed mid-run give one-line errors within seconds."""
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import need, need_module
from edgemem.verification import c_runtime
from edgemem.verification import serial_link as sl

ROOT = Path(__file__).resolve().parent.parent
EXPORT = ROOT / "export" / "har_elm"



@pytest.fixture(autouse=True)
def _toolchains():
    need("gcc", "arm-none-eabi-gcc", "qemu-system-arm")  # a skip locally, a failure under CI=true


class Qemu:
    """uart_validate.elf under QEMU, UART0 served on 127.0.0.1:port (nodelay: no Nagle wait on each reply)."""

    def __init__(self, elf: Path) -> None:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.proc = subprocess.Popen(
            ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none", "-icount", "shift=6",
             "-serial", f"tcp:127.0.0.1:{self.port},server,nowait,nodelay", "-kernel", str(elf)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:  # listening?
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.kill()
                    raise RuntimeError("QEMU did not open its serial socket") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


@pytest.fixture(scope="module")
def elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_module("serial", "pip install 'edgemem[serial]'")
    return c_runtime.build_uart_validate(EXPORT, tmp_path_factory.mktemp("uv"))


@pytest.fixture
def qemu(elf: Path):
    q = Qemu(elf)
    yield q
    q.kill()


def test_verify_over_serial(qemu: Qemu):
    """The API (and so `edgemem verify --port`) on 2 held-out windows: bit-exact with the integer reference, the
    instruction count of the QEMU em_run path's order."""
    import edgemem

    r = edgemem.verify(EXPORT, m4_windows=2, port=qemu.url).raw
    s = r["serial"]
    assert s["bit_exact"] and r["bit_exact"], s
    assert s["windows"] == 2 and s["steps_compared"] == 2 * r["steps_per_window"]
    assert s["accuracy"] == r["accuracy"]["c_cortex_m4"]
    assert 0.5 * r["instructions_per_step"] < s["instructions_per_step"] < 2 * r["instructions_per_step"]
    assert s["runtime_version"] and s["blob_crc32"]


def test_device_rejects_bad_frames(qemu: Qemu):
    """Each bad request gets an ERROR frame with its code, and the device keeps serving."""
    import serial

    ser = serial.serial_for_url(qemu.url, timeout=0.1)
    link = sl.Link(ser, qemu.url, timeout=3)
    try:
        good = sl.frame(sl.HELLO)
        ser.write(good[:-1] + bytes([good[-1] ^ 0xFF]))  # CRC flipped
        with pytest.raises(sl.SerialLinkError, match="ERROR -100 to HELLO.*bad frame CRC"):
            link.receive(sl.HELLO)
        link.reset()
        with pytest.raises(sl.SerialLinkError, match="ERROR -101.*does not know"):
            link.request(0x42)
        with pytest.raises(sl.SerialLinkError, match="ERROR -102"):
            link.request(sl.STEP, b"\x00" * 5)  # har_elm has 6 inputs
        assert link.hello().n_in == 6
    finally:
        link.close()


class CorruptingDevice:
    """In-process fake of a serial port: answers HELLO with a frame whose CRC is wrong."""

    def __init__(self) -> None:
        self.out = b""

    def write(self, data: bytes) -> int:
        bad = bytearray(sl.frame(sl.HELLO | sl.REPLY, bytes(18)))
        bad[6] ^= 0x10
        self.out += bytes(bad)
        return len(data)

    def read(self, n: int) -> bytes:
        chunk, self.out = self.out[:n], self.out[n:]
        return chunk

    def close(self) -> None:
        pass


def test_corrupted_reply_is_one_line():
    t0 = time.monotonic()
    with pytest.raises(sl.SerialLinkError) as e:
        sl.Link(CorruptingDevice(), "fake", timeout=2).hello()
    assert "bad frame in reply to HELLO: CRC" in str(e.value) and "\n" not in str(e.value)
    assert time.monotonic() - t0 < 1


def test_silent_device_times_out():
    class Silent(CorruptingDevice):
        def write(self, data: bytes) -> int:
            return len(data)

    t0 = time.monotonic()
    with pytest.raises(sl.SerialLinkError, match="no reply within 0.5 s"):
        sl.Link(Silent(), "fake", timeout=0.5).hello()
    assert time.monotonic() - t0 < 2


def test_dead_device_mid_run(qemu: Qemu):
    """QEMU killed while 50 windows stream: one line within seconds, no hang."""
    x = np.zeros((50, 100, 6), dtype=np.int8)
    blob = (EXPORT / "model.bin").read_bytes()
    threading.Timer(0.3, qemu.kill).start()
    t0 = time.monotonic()
    with pytest.raises(sl.SerialLinkError) as e:
        sl.validate(qemu.url, blob, x, 7, timeout=3)
    msg = str(e.value)
    assert ("disappeared" in msg or "no reply" in msg) and "\n" not in msg, msg
    assert time.monotonic() - t0 < 6


def test_no_device():
    with pytest.raises(sl.SerialLinkError, match="cannot open serial port"):
        sl.validate("/dev/edgemem-no-such-tty", b"", np.zeros((1, 1, 6), np.int8), 7)
