"""`refute view`: serve the local web viewer over a store."""

from __future__ import annotations

import getpass
import secrets
from typing import Annotated

import typer

from refute._paths import is_store_url, store_location, store_path
from refute.cli._common import StoreOption, err, friendly_errors
from refute.errors import ConfigError


@friendly_errors
def view(
    store: StoreOption = None,
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8765,
    host: Annotated[str, typer.Option(help="Address to bind. Anything but loopback needs a token (--token, or one is made).")] = "127.0.0.1",
    token: Annotated[str | None, typer.Option(help="Token every request must carry (?token=, then a cookie). Default: none on loopback, a random one elsewhere.", envvar="REFUTE_VIEW_TOKEN", show_default=False)] = None,
    browser: Annotated[bool, typer.Option(help="Open the viewer in a browser once it listens.")] = True,
    unredacted: Annotated[bool, typer.Option(help="Show replies to harmful requests without a click (they are hidden behind 'reveal' by default).")] = False,
    labeller: Annotated[str | None, typer.Option(help="Name stored with the labels you make (default: your user name).", show_default=False)] = None,
) -> None:
    """Read runs and transcripts, compare two runs, and label replies, in a local web app.

    Pages: runs (filter, sort, search), a run (rates with intervals per category, score
    distribution), its samples (filter by score, label, category, transform, epoch, human label;
    full-text search; export JSONL/CSV/Parquet), a transcript, two runs compared per prompt,
    studies and gate decisions, and labelling (keys 1/2/3) for the run's own calibration.

    Examples:

      refute view

      refute view --store runs/refute.db --port 9000 --no-browser

      refute view --host 0.0.0.0 --token "$(openssl rand -hex 16)"
    """
    from refute.view import ViewConfig, create_app, is_loopback, serve  # deferred: starlette is the optional view extra

    if is_store_url(store_location(store)):
        raise ConfigError("refute view reads a SQLite store, not PostgreSQL; copy the runs into one first "
                          "(refute store copy URL view.db) and view that (--store view.db)")
    path = store_path(store)
    if not path.is_file():
        raise ConfigError(f"no store at {path}; run something first (refute demo) or pass --store PATH")
    if not is_loopback(host) and not token:
        token = secrets.token_urlsafe(18)
    config = ViewConfig(path, unredacted=unredacted, token=token, labeller=labeller or getpass.getuser())
    shown = "localhost" if host in ("127.0.0.1", "::1", "localhost") else host
    url = f"http://{shown}:{port}/runs" + (f"?token={token}" if token else "")
    err.print(f"refute view: serving {path} at {url} (Ctrl-C stops it)", highlight=False, soft_wrap=True)
    if unredacted:
        err.print("[bold yellow]warning:[/] --unredacted shows replies to harmful requests on every page",
                  highlight=False)
    serve(create_app(config), host, port, open_url=url if browser else None)
