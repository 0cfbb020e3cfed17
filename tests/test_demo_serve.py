"""`edgemem demo har --serve` without a browser: the port is checked before the minute of building, every instance
builds into its own folder, and bad requests or dropped clients never print a traceback. The server listens on
127.0.0.1 only and every wait here is bounded."""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
from test_bad_files import assert_user_error, cli

from edgemem.demo import serve
from edgemem.errors import EdgememError


@pytest.fixture
def server(tmp_path):
    (tmp_path / "index.html").write_text("<p>hi</p>")
    (tmp_path / "big.bin").write_bytes(bytes(32 << 20))  # larger than any socket buffer: the send blocks
    srv = serve.make_server(tmp_path, 0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    t.join(timeout=10)


def _get(srv, path: str) -> tuple[int, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", srv.server_port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def test_nul_in_a_url_and_dropped_clients_print_no_traceback(server, capfd):
    assert _get(server, "/index.html") == (200, b"<p>hi</p>")
    for path in ("/%00", "/index.html%00.js", "/a%00/b"):
        assert _get(server, path)[0] == 400
    for _ in range(3):  # a client that asks for a large file and resets the connection mid-transfer
        s = socket.create_connection(("127.0.0.1", server.server_port), timeout=10)
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(1024)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    time.sleep(0.5)
    assert _get(server, "/index.html")[0] == 200  # still serving
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipe" not in err and "null byte" not in err, err


@pytest.mark.parametrize("port", [-1, 65536, 70000])
def test_an_impossible_port_is_one_line(port):
    with pytest.raises(EdgememError, match="--port must be 0"):
        serve.make_server(Path("."), port)


def test_the_port_is_taken_before_the_site_is_built(tmp_path):
    """A busy port fails at once (nothing built, no site of a running instance touched); a free one is bound
    before the build starts; each instance builds into a folder of its own, removed when it stops."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    built: list[Path] = []

    def build(_export, site: Path) -> Path:
        probe = socket.socket()  # the port must already be ours while the (slow) build runs
        with pytest.raises(OSError):
            probe.bind(("127.0.0.1", started_port[0]))
        probe.close()
        site.mkdir(parents=True)
        (site / "index.html").write_text(f"instance {len(built)}")
        built.append(site)
        return site

    try:
        with pytest.raises(EdgememError, match=f"cannot serve on 127.0.0.1:{port}"):
            serve.serve_site(tmp_path, port, say=lambda m: None, build=build)
        assert built == []
        started_port = [0]
        servers = []

        def run_one() -> None:
            serve.serve_site(tmp_path, 0, say=lambda m: None, build=build, on_start=servers.append)

        real_make = serve.make_server

        def make(directory, p):
            srv = real_make(directory, p)
            started_port[0] = srv.server_port
            return srv

        serve.make_server = make
        try:
            threads = []
            for _ in range(2):
                t = threading.Thread(target=run_one, daemon=True)
                t.start()
                threads.append(t)
                deadline = time.monotonic() + 30
                while len(servers) < len(threads) and time.monotonic() < deadline:
                    time.sleep(0.05)
        finally:
            serve.make_server = real_make
        assert len(built) == 2 and built[0] != built[1]
        assert [_get(s, "/index.html")[1] for s in servers] == [b"instance 0", b"instance 1"]
        for s, t in zip(servers, threads):
            s.shutdown()
            t.join(timeout=10)
        assert not any(p.exists() for p in built)  # each instance's folder goes with it
    finally:
        busy.close()


def test_the_cli_refuses_a_busy_or_impossible_port_at_once():
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        started = time.monotonic()
        assert_user_error(cli("demo", "har", "--serve", "--port", str(port)), f"cannot serve on 127.0.0.1:{port}")
        assert_user_error(cli("demo", "har", "--serve", "--port", "70000"), "--port must be 0")
        assert time.monotonic() - started < 60  # no build (about a minute) before the answer
    finally:
        busy.close()
