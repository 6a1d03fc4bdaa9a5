"""Running an ASGI app with uvicorn, shared by `refute view` and `refute serve`: in the foreground,
or in a thread a test or a benchmark starts and stops (`serving`); where it may listen.

Uvicorn picks uvloop and httptools when they are installed (the ``serve`` extra brings them on
Linux and macOS). uvicorn is imported only when a server is made: it comes with an optional extra.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from refute.errors import ConfigError

__all__ = ["check_port", "free_port", "is_loopback", "serving", "uvicorn_server"]


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


def check_port(host: str, port: int) -> None:
    """Nothing listens on ``host:port`` now (checked before anything slow starts)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                              "choose another with --port (or stop what uses it)") from None


def uvicorn_server(app: Any, host: str, port: int, *, command: str, extra: str, **config: Any) -> Any:
    """A uvicorn server for ``app`` (not started); ``command`` and ``extra`` name what to install."""
    try:
        import uvicorn  # deferred: the optional web-server extra
    except ImportError:
        raise ConfigError(f"{command} needs its web server: pip install 'refute[{extra}]'") from None
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                         **config))


@contextmanager
def serving(server: Any, host: str, port: int, *, name: str = "refute-server") -> Iterator[str]:
    """Run ``server`` (a `uvicorn_server`) in a thread for the length of the block; yields its base URL."""
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start on {host}:{port}")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
