"""Running the app: uvicorn in the foreground (`refute serve`) or in a thread that a test or a
benchmark starts and stops (`serving`), and the rule for where it may listen.

Uvicorn picks uvloop and httptools when they are installed (the ``serve`` extra brings them on
Linux and macOS), which parse and answer HTTP faster than its pure-Python defaults.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from refute._asgi import check_port, free_port, is_loopback, uvicorn_server
from refute._asgi import serving as run_in_thread
from refute.errors import ConfigError

__all__ = ["check_binding", "free_port", "is_loopback", "serve", "serving"]


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
        check_port(host, port)


def _server(app: Any, host: str, port: int) -> Any:
    return uvicorn_server(app, host, port, command="refute serve", extra="serve", timeout_graceful_shutdown=10)


def serve(app: Any, host: str, port: int) -> None:
    """Serve ``app`` until Ctrl-C (or SIGTERM); requests in progress finish first. The process is
    the server's: its event loops become uvloop's where uvloop is installed."""
    check_port(host, port)
    _server(app, host, port).run()


@contextmanager
def serving(app: Any, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Serve ``app`` in a thread for the length of the block; yields its base URL."""
    port = port or free_port(host)
    with run_in_thread(_server(app, host, port), host, port, name="refute-serve") as url:
        yield url
