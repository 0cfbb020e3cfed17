"""`edgemem demo har --serve`: build the page (edgemem.demo.har_site) and serve it on 127.0.0.1 only."""

from __future__ import annotations

import functools
import http.server
from collections.abc import Callable
from pathlib import Path

from edgemem.demo.har_site import SITE, build_site
from edgemem.errors import EdgememError


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


def make_server(directory: Path, port: int) -> http.server.ThreadingHTTPServer:
    """A server for `directory` bound to 127.0.0.1 (port 0: any free one; server.server_port tells which)."""
    handler = functools.partial(_Quiet, directory=str(directory))
    try:
        return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as e:
        raise EdgememError(f"cannot serve on 127.0.0.1:{port} ({e.strerror}); pick another with --port") from None


def serve_site(export_dir: Path, port: int, say: Callable[[str], None] = print) -> None:
    site = build_site(export_dir, SITE)
    server = make_server(site, port)
    say(f"the HAR demo is at http://127.0.0.1:{server.server_port}/ (Ctrl-C stops it)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
