"""Serving the viewer: uvicorn in the foreground (`refute view`) or in a thread that a test or a
benchmark starts and stops (`serving`)."""

from __future__ import annotations

import threading
import time
import webbrowser
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from refute._asgi import check_port, free_port, is_loopback, uvicorn_server
from refute._asgi import serving as run_in_thread

__all__ = ["free_port", "is_loopback", "serve", "serving"]


def _server(app: Any, host: str, port: int) -> Any:
    return uvicorn_server(app, host, port, command="refute view", extra="view")


def serve(app: Any, host: str, port: int, *, open_url: str | None = None) -> None:
    """Serve ``app`` until interrupted; open ``open_url`` in a browser once it listens."""
    check_port(host, port)
    server = _server(app, host, port)
    if open_url:
        def opener() -> None:
            for _ in range(100):
                if server.started:
                    webbrowser.open(open_url)
                    return
                time.sleep(0.05)
        threading.Thread(target=opener, daemon=True).start()
    server.run()


@contextmanager
def serving(app: Any, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Serve ``app`` in a thread for the length of the block; yields its base URL."""
    port = port or free_port(host)
    with run_in_thread(_server(app, host, port), host, port, name="refute-view") as url:
        yield url
