"""`refute redteam`: the robustness-gap table with capability controls."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from refute.cli._common import StoreOption, bad_input, err, friendly_errors, out, store_from


@friendly_errors
def redteam(
    model: Annotated[str, typer.Option("--model", "-m", help="Model spec under test; edits: +ablate:FILE, +steer:FILE@LAYER*COEF, +sae:FILE#FEATURES, +lora:DIR (see refute models list).")] = "default",
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Harmful requests (built-in name or file).")] = "harmful",
    transforms: Annotated[str | None, typer.Option("--transforms", help="Comma-separated transform chains (default: 13 cheap ones of every kind; see `refute redteam --list`).")] = None,
    limit: Annotated[int | None, typer.Option(help="Harmful prompts to use.", min=1)] = 80,
    capability_dataset: Annotated[str, typer.Option(help="Benign tasks with known answers (the capability control); 'none' to skip.")] = "benign-tasks",
    capability_limit: Annotated[int | None, typer.Option(help="Capability tasks to use.", min=1)] = 50,
    max_tokens: Annotated[int, typer.Option(help="Most new tokens per reply to a harmful request.", min=1)] = 48,
    scorer: Annotated[str, typer.Option(help="Refusal scorer (refusal: measured rules + classifier; refusal_patterns: fast phrases).")] = "refusal",
    seed: Annotated[int, typer.Option(help="Seed for transforms and sampling.", min=0)] = 0,
    list_: Annotated[bool, typer.Option("--list", help="List the registered transforms and exit.")] = False,
    store: StoreOption = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars on stderr.")] = True,
) -> None:
    """The robustness gap: refusal under each transform against canonical requests.

    Paired intervals, corrected p-values and a capability control per transform.

    Examples:

      refute redteam --model default --dataset harmful --transforms base64,rot13,roleplay

      refute redteam --limit 40 --capability-limit 30          # a quick look

      refute redteam --list
    """
    from refute.redteam import list_transforms

    if list_:
        for info in list_transforms():
            out.print(f"[bold]{info.name}[/] ({info.kind}): {info.description}")
        return
    from refute.models import load_model, parse_spec
    from refute.redteam._campaign import DEFAULT_TRANSFORMS, campaign_tasks, run_campaign
    from refute.report._gap_table import gap_table

    chains = [t.strip() for t in transforms.split(",") if t.strip()] if transforms else list(DEFAULT_TRANSFORMS)
    settings: dict[str, Any] = dict(
        transforms=chains, dataset=dataset, limit=limit,
        capability_dataset=None if capability_dataset == "none" else capability_dataset,
        capability_limit=capability_limit, max_tokens=max_tokens, scorer=scorer, seed=seed)
    with bad_input():  # the model spec, both datasets, every chain and the scorer, before a model loads
        parse_spec(model)
        campaign_tasks(**settings)
    backend = load_model(model)
    try:
        with store_from(store) as db:
            campaign = run_campaign(db, backend, progress=progress, **settings)
    finally:
        backend.close()
    out.print(gap_table(campaign.gap))
    ids = f"harmful run {campaign.harmful.id}" + (f", capability run {campaign.capability.id}"
                                                 if campaign.capability else "")
    err.print(f"stored: {ids}")
