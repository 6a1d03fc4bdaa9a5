"""Serving the viewer: uvicorn in the foreground (`refute view`) or in a thread that a test or a
benchmark starts and stops (`serving`)."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
import webbrowser
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from refute.errors import ConfigError

__all__ = ["free_port", "is_loopback", "serve", "serving"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                              "choose another with --port (or stop what uses it)") from None


def _server(app: Any, host: str, port: int) -> Any:
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("refute view needs its web server: pip install 'refute[view]'") from None
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))


def serve(app: Any, host: str, port: int, *, open_url: str | None = None) -> None:
    """Serve ``app`` until interrupted; open ``open_url`` in a browser once it listens."""
    _check_port(host, port)
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
    server = _server(app, host, port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the viewer did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
