"""Running the app: uvicorn in the foreground (`refute serve`) or in a thread that a test or a
benchmark starts and stops (`serving`), and the rule for where it may listen.

Uvicorn picks uvloop and httptools when they are installed (the ``serve`` extra brings them on
Linux and macOS), which parse and answer HTTP faster than its pure-Python defaults.
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

__all__ = ["check_binding", "free_port", "is_loopback", "serve", "serving"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(host: str, api_key: str | None, port: int | None = None) -> None:
    """Anything but loopback needs an API key: a guarded model on the network without one is
    open to anyone who can reach the port. With ``port``, also that nothing listens there now
    (checked before a model loads for a minute)."""
    if api_key is not None and (not api_key.strip() or any(c.isspace() for c in api_key)):
        raise ConfigError("--api-key is empty or contains whitespace; use a token such as $(openssl rand -hex 16)")
    if not is_loopback(host) and not api_key:
        raise ConfigError(f"--host {host} listens beyond this machine: give --api-key KEY (or set "
                          "REFUTE_SERVE_API_KEY) so that only clients with the key are answered, "
                          "or keep the default --host 127.0.0.1")
    if port is not None:
        _check_port(host, port)


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
        raise ConfigError("refute serve needs its web server: pip install 'refute[serve]'") from None
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                         timeout_graceful_shutdown=10))


def serve(app: Any, host: str, port: int) -> None:
    """Serve ``app`` until Ctrl-C (or SIGTERM); requests in progress finish first. The process is
    the server's: its event loops become uvloop's where uvloop is installed."""
    _check_port(host, port)
    _server(app, host, port).run()


@contextmanager
def serving(app: Any, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Serve ``app`` in a thread for the length of the block; yields its base URL."""
    port = port or free_port(host)
    server = _server(app, host, port)
    thread = threading.Thread(target=server.run, name="refute-serve", daemon=True)
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
