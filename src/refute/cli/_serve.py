"""`refute serve`: an OpenAI-compatible server in front of a model and its guard stack, logging every
exchange to the store; `refute monitor`: the log, read back."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from refute._paths import is_store_url, store_location, store_path
from refute.cli._common import ExitCode, StoreOption, bad_input, endpoint_urls, err, friendly_errors, out, store_from
from refute.errors import ConfigError
from refute.guard import Guard, LoadedStack, load_stack
from refute.models import load_model, parse_spec
from refute.stats import Estimate, rate
from refute.store import ExchangeRecord, LayerStats, Store


class Harm(StrEnum):
    auto = "auto"
    harmful = "harmful"
    benign = "benign"


@friendly_errors
def serve(
    model: Annotated[str, typer.Argument(help="Model spec: default, hf:..., gguf:..., or openai:MODEL with --base-url (an upstream endpoint).", show_default=False)],
    stack: Annotated[Path | None, typer.Option(help="Guard-stack YAML file (layers applied in order). Default: a pass-through, no layers.", show_default=False)] = None,
    base_url: Annotated[list[str] | None, typer.Option(help="Server URL for openai:MODEL specs; repeat it for several servers of one model, or give a YAML file of {url, concurrency} entries (the key comes from $OPENAI_API_KEY, never logged).", show_default=False)] = None,
    host: Annotated[str, typer.Option(help="Address to listen on. Anything but loopback needs --api-key.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    api_key: Annotated[str | None, typer.Option(help="Key every request must send as 'Authorization: Bearer KEY'. Default: none (loopback only).", envvar="REFUTE_SERVE_API_KEY", show_default=False)] = None,
    store: StoreOption = None,
    harm: Annotated[Harm, typer.Option(help="Which exchanges count as harmful, so their replies are logged redacted: auto (a layer fired or blocked), harmful (all), benign (none).")] = Harm.auto,
    log_unredacted: Annotated[bool, typer.Option("--log-unredacted", help="Log the replies of harmful exchanges too (they are replaced by a marker by default).")] = False,
    max_tokens_default: Annotated[int, typer.Option(min=1, help="Most reply tokens when a request names no max_tokens.")] = 256,
    layer_scores: Annotated[bool, typer.Option(help="Show clients each layer's score and decision in the response's `refute` object; --no-layer-scores shows only the outcome, so the scores are no oracle for an attacker (the log keeps them).")] = True,
    served_name: Annotated[str | None, typer.Option(help="Model name clients use (GET /v1/models). Default: the spec; the spec is accepted too.", show_default=False)] = None,
    dtype: Annotated[str, typer.Option(help="Local models: auto (bf16 where the CPU supports it), float32, bfloat16.")] = "auto",
    concurrency: Annotated[int, typer.Option(min=1, help="Upstream endpoint: requests in flight.")] = 64,
    timeout: Annotated[float | None, typer.Option(min=0.0, help="Upstream endpoint: seconds one request may take (default 60).")] = None,
    retries: Annotated[int, typer.Option(min=0, help="Upstream endpoint: tries after a transient failure, before the client gets a 502.")] = 2,
) -> None:
    """Serve a model behind a stack of guard layers as an OpenAI-compatible API.

    POST /v1/chat/completions (streaming too) and GET /v1/models. Each response carries a
    `refute` object with every layer's score and decision; every exchange is logged to the
    store (replies of harmful exchanges redacted) for `refute monitor`. Ctrl-C stops it.

    Examples:

      refute serve default --stack guard.yaml

      refute serve openai:gpt-4o-mini --base-url https://api.openai.com/v1 --stack guard.yaml --port 8001

      refute serve openai:Qwen2.5-7B --base-url http://gpu1:8000/v1 --base-url http://gpu2:8000/v1 --stack guard.yaml

      refute serve default --host 0.0.0.0 --api-key "$(openssl rand -hex 16)" --harm harmful
    """
    try:
        from refute.serve import (  # deferred: starlette and uvicorn are the optional serve extra
            ServeConfig,
            check_binding,
            create_app,
            pass_through,
        )
        from refute.serve import serve as run_server  # deferred: as above
    except ImportError as exc:
        raise ConfigError(f"refute serve needs its web server ({exc.name} is missing): "
                          "pip install 'refute[serve]'") from None

    check_binding(host, api_key, port)
    if is_store_url(store_location(store)):
        raise ConfigError("refute serve logs exchanges to a SQLite store, not PostgreSQL; give --store a file path")
    if dtype not in ("auto", "float32", "bfloat16"):
        raise ConfigError(f"--dtype '{dtype}': choose auto, float32 or bfloat16")
    with bad_input():
        loaded: LoadedStack = load_stack(stack) if stack is not None else pass_through()
        local = parse_spec(model).kind != "openai"
        config = ServeConfig(store=store_path(store), served_name=served_name, api_key=api_key, harm=harm.value,
                             log_unredacted=log_unredacted, max_tokens_default=max_tokens_default,
                             layer_scores=layer_scores)
    if local and base_url:
        raise ConfigError(f"--base-url only applies to openai:MODEL specs (an upstream endpoint), not '{model}'")
    options: dict[str, Any] = {"dtype": dtype} if local else {
        "base_url": endpoint_urls(base_url), "concurrency": concurrency, "timeout_s": timeout, "max_retries": retries}
    with store_from(config.store):
        pass  # a store that cannot be written fails now, before a model loads for a minute
    backend = load_model(model, **options)
    try:
        with bad_input():
            guard = Guard(loaded, backend)
        app = create_app(guard, config)
        name = config.served_name or backend.info.spec
        shown = "localhost" if host in ("127.0.0.1", "::1", "localhost") else host
        url = f"http://{shown}:{port}/v1"
        layers = ", ".join(f"{s.name} ({s.type})" for s in loaded.spec.layers) or "none (pass-through)"
        err.print(f"refute serve: {escape(backend.info.spec)} at {url}, stack {escape(loaded.spec.name)}: "
                  f"{escape(layers)}; logging to {config.store} (Ctrl-C stops it)", highlight=False, soft_wrap=True)
        key = "os.environ['REFUTE_SERVE_API_KEY']" if api_key else '"unused"'
        err.print(Text("  from openai import OpenAI\n" + ("  import os\n" if api_key else "")
                       + f"  client = OpenAI(base_url=\"{url}\", api_key={key})\n"
                       f"  client.chat.completions.create(model=\"{name}\", "
                       "messages=[{\"role\": \"user\", \"content\": \"Hello\"}])"), soft_wrap=True)
        if log_unredacted:
            err.print("[bold yellow]warning:[/] --log-unredacted stores the replies of harmful exchanges",
                      highlight=False)
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn stops first: requests in progress finish
            run_server(app, host, port)
        written = app.state.serve.log.written
        err.print(f"refute serve: stopped; {written} exchange{'' if written == 1 else 's'} logged to "
                  f"{config.store} (`refute monitor` shows them)", highlight=False, soft_wrap=True)
    finally:
        backend.close()


# --- refute monitor ------------------------------------------------------------------------------------------

_OUTCOME_STYLE = {"ok": "green", "flagged": "yellow", "blocked": "red", "error": "magenta",
                  "upstream_error": "magenta"}


def _inert(text: str, width: int) -> str:
    """Text from a client or a model, made safe for a terminal: one line, no control characters, cut."""
    flat = "".join(c if c.isprintable() else " " for c in " ".join(text.split()))
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _prompt(record: ExchangeRecord) -> str:
    return next((m.get("content", "") for m in reversed(record.messages) if m.get("role") == "user"), "")


def _fired(record: ExchangeRecord) -> list[str]:
    return [str(layer.get("name")) for layer in record.layers if layer.get("fired")]


def _exchange_table(records: list[ExchangeRecord], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("time", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    table.add_column("blocked by")
    table.add_column("fired")
    table.add_column("ms", justify="right", no_wrap=True)
    table.add_column("prompt", overflow="fold", ratio=2)
    table.add_column("reply (as logged)", overflow="fold", ratio=1)
    for r in records:
        outcome = Text(r.outcome, style=_OUTCOME_STYLE[r.outcome])
        if r.status != 200:
            outcome.append(f" {r.status}")
        table.add_row(str(r.id), r.created_at[11:19], outcome, Text(r.blocked_by or ""), Text(", ".join(_fired(r))),
                      f"{r.total_ms:.0f}", Text(_inert(_prompt(r), 60)), Text(_inert(r.reply, 40)))
    return table


def _rate(k: int, n: int) -> Estimate:
    return rate([1] * k + [0] * (n - k))


def _cell(k: int, n: int) -> str:
    if not k:
        return f"0/{n}"
    e = _rate(k, n)
    return f"{k}/{n} {100 * e.value:.0f}% [{100 * e.low:.0f}-{100 * e.high:.0f}]"


def _layer_table(stats: list[LayerStats], title: str) -> Table:
    table = Table(title=title, title_justify="left", caption="k/n, rate % [95% Wilson interval]",
                  caption_justify="left")
    rewrites = any(s.rewritten for s in stats)
    table.add_column("layer", overflow="fold")
    table.add_column("phase", no_wrap=True)
    for col in ("flagged", "blocked", *(("rewritten",) if rewrites else ()), "errors"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("mean ms", justify="right", no_wrap=True)
    for s in stats:
        cells = [_cell(s.flagged, s.n), _cell(s.blocked, s.n), *((_cell(s.rewritten, s.n),) if rewrites else ()),
                 _cell(s.errors, s.n)]
        table.add_row(Text(s.name), s.phase, *cells, f"{s.mean_ms:.2f}")
    return table


def _layer_json(s: LayerStats) -> dict[str, Any]:
    rates = {}
    for key in ("flagged", "blocked", "rewritten", "errors"):
        e = _rate(getattr(s, key), s.n)
        rates[key] = {"value": e.value, "low": e.low, "high": e.high, "method": e.method}
    return {**asdict(s), "rates": rates}


def _line(r: ExchangeRecord) -> Text:
    fired = ",".join(_fired(r)) or "-"
    text = Text(f"{r.id:>7} {r.created_at[11:19]} ")
    text.append(f"{r.outcome:<14}", style=_OUTCOME_STYLE[r.outcome])
    text.append(f" {r.status} {r.total_ms:8.1f} ms  blocked_by={r.blocked_by or '-'} fired={fired}  "
                f"{_inert(_prompt(r), 60)}")
    return text


@friendly_errors
def monitor(
    store: StoreOption = None,
    last: Annotated[int, typer.Option(min=1, max=100_000, help="Show the N most recent exchanges.")] = 20,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new exchanges until Ctrl-C, then the layers' counts over all shown.")] = False,
    interval: Annotated[float, typer.Option(min=0.05, help="--follow: seconds between looks at the store.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout instead of tables (with --follow: one exchange per line).")] = False,
) -> None:
    """Show `refute serve`'s recent exchanges and what each layer did with them.

    A table of the last exchanges (time, outcome, the layer that blocked, the layers that fired,
    ms, the prompt cut short, the reply as logged, so redacted), then each layer's counts and
    rates over those exchanges.

    Examples:

      refute monitor --last 50

      refute monitor --follow

      refute monitor --json --store runs/refute.db
    """
    path = store_location(store)
    if not isinstance(path, str) and not path.is_file():
        raise ConfigError(f"no store at {path}; start `refute serve` first or pass --store PATH")
    with store_from(path) as db:
        records = db.recent_exchanges(last)
        first = records[0].id if records else None
        stats = db.exchange_layer_stats(since=first) if records else []
        if as_json:
            typer.echo(json.dumps({"store": db.location, "exchanges": [r.model_dump() for r in records],
                                   "layers": [_layer_json(s) for s in stats]}, indent=1))
        elif not records:
            err.print(f"no exchanges in {db.location} yet; `refute serve` logs them there", highlight=False)
        else:
            out.print(_exchange_table(records, f"last {len(records)} exchanges in {db.location}"))
            out.print(_layer_table(stats, f"layers over exchanges {first}-{records[-1].id}"))
        if follow:
            _follow(db, records, interval, as_json)


def _follow(db: Store, shown: list[ExchangeRecord], interval: float, as_json: bool) -> None:
    last_id = shown[-1].id if shown else None
    first = shown[0].id if shown else None
    try:
        while True:
            time.sleep(interval)
            new = db.recent_exchanges(100_000, since_id=last_id)
            for r in new:
                if as_json:
                    typer.echo(json.dumps(r.model_dump()))
                else:
                    out.print(_line(r), highlight=False, soft_wrap=True)
            if new:
                last_id = new[-1].id
                first = first if first is not None else new[0].id
    except KeyboardInterrupt:
        if first is not None and not as_json:
            out.print(_layer_table(db.exchange_layer_stats(since=first), f"layers over exchanges {first}-{last_id}"))
        raise typer.Exit(ExitCode.OK) from None
