"""A local preview server for the built site (127.0.0.1 only).

It can serve the site under a path prefix, as GitHub Pages serves a project
site (``/repo-name/``), so the preview shows the URLs working as they will.
"""

from __future__ import annotations

import functools
import posixpath
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .sitepaths import normalise_base_url

HOST = "127.0.0.1"


class _Handler(SimpleHTTPRequestHandler):
    prefix = "/"
    quiet = False

    def translate_path(self, path: str) -> str:
        path = unquote(urlsplit(path).path)
        if not (path + "/").startswith(self.prefix):
            # Outside the base URL: a name no build writes, so the answer is 404.
            return str(Path(self.directory) / ".outside-base-url")
        rest = posixpath.normpath("/" + path[len(self.prefix):])
        return super().translate_path(rest + ("/" if path.endswith("/") else ""))

    def send_error(self, code, message=None, explain=None):
        page = Path(self.directory) / "404.html"
        if code == 404 and page.is_file():
            body = page.read_bytes()
            self.send_response(404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return
        super().send_error(code, message, explain)

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        if not self.quiet:
            super().log_message(format, *args)


def make_server(out: Path, port: int = 8000, base_url: str = "/",
                quiet: bool = False) -> ThreadingHTTPServer:
    """A server for ``out`` at http://127.0.0.1:port{base_url}; port 0 picks a free one."""
    out = Path(out)
    if not (out / "index.html").is_file():
        raise FileNotFoundError(f"{out}/index.html not found: build the site first")
    handler = type("Handler", (_Handler,), {"prefix": normalise_base_url(base_url),
                                            "quiet": quiet})
    return ThreadingHTTPServer((HOST, port), functools.partial(handler, directory=str(out)))


def serve(out: Path, port: int = 8000, base_url: str = "/", echo=print) -> None:
    server = make_server(out, port, base_url)
    host, bound = server.server_address[:2]
    echo(f"serving {out} at http://{host}:{bound}{normalise_base_url(base_url)} (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
