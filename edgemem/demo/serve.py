"""`edgemem demo har --serve` and `edgemem demo kws --serve`: build the page (edgemem.demo.har_site, or
edgemem.demo.kws_site) and serve it on 127.0.0.1 only.

The port is taken first (a busy or impossible port is one line, before a minute of building), then the site is built
into a folder of this instance's own (a second `--serve`, even one that fails, never touches the files a running one
serves), removed when the server stops. A client that goes away mid-transfer, or a request for a path the file
system cannot name (`%00`), is answered or dropped quietly, never with a traceback."""

from __future__ import annotations

import functools
import http.server
import shutil
import sys
import tempfile
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path

from edgemem.demo.har_site import build_site
from edgemem.errors import EdgememError


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def send_head(self):  # type: ignore[no-untyped-def]
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path, errors="surrogatepass")
        if "\x00" in path:  # os.open would raise ValueError (embedded null byte) and the server print a traceback
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad path")
            return None
        return super().send_head()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # Ctrl-C does not wait for a browser's keep-alive connections

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):  # the client went away (BrokenPipe, reset): its business
            return
        print(f"edgemem demo: request from {client_address[0]} failed ({type(exc).__name__}: {exc})", file=sys.stderr)


def check_port(port: int) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise EdgememError(f"--port must be 0 (any free port) to 65535, got {port}")


def make_server(directory: Path, port: int) -> http.server.ThreadingHTTPServer:
    """A server for `directory` bound to 127.0.0.1 (port 0: any free one; server.server_port tells which)."""
    check_port(port)
    handler = functools.partial(_Quiet, directory=str(directory))
    try:
        return _Server(("127.0.0.1", port), handler)
    except (OSError, OverflowError) as e:
        why = getattr(e, "strerror", None) or str(e)
        raise EdgememError(f"cannot serve on 127.0.0.1:{port} ({why}); pick another with --port") from None


def serve_site(export_dir: Path, port: int, say: Callable[[str], None] = print,
               build: Callable[[Path, Path], Path] = build_site,
               on_start: Callable[[http.server.ThreadingHTTPServer], None] | None = None,
               demo: str = "har") -> None:
    """Bind the port, build the site into this instance's temp folder, serve until Ctrl-C (or `server.shutdown()`
    from another thread; `on_start` gets the server), remove the folder. `demo` names it: "har" or "kws"."""
    check_port(port)
    home = Path(tempfile.mkdtemp(prefix=f"edgemem-{demo}-site-"))
    site = home / demo
    try:
        server = make_server(site, port)  # before the build: a taken port is known at once
        try:
            build(export_dir, site)
            title = {"har": "the HAR demo", "kws": "the keyword demo (pick a WAV file)"}.get(demo, f"the {demo} demo")
            say(f"{title} is at http://127.0.0.1:{server.server_port}/ (Ctrl-C stops it)")
            if on_start is not None:
                on_start(server)
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass
        finally:
            server.server_close()
    finally:
        shutil.rmtree(home, ignore_errors=True)
