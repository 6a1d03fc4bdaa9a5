"""The command line: `refute run`, `refute demo`, `refute runs`, `refute export`, `refute models`."""

from refute.cli._app import app, main

__all__ = ["app", "main"]
