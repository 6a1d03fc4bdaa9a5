"""`refute redteam`: the robustness-gap table with capability controls."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from refute.cli._common import StoreOption, bad_input, err, friendly_errors, loaded_models, out, store_from
from refute.cli._executor import ExecutorName, ExecutorOption, RayAddressOption, WorkersOption, executor_from
from refute.models import parse_spec
from refute.redteam._attacks import attack_tasks, parse_attack_args
from refute.redteam._campaign import DEFAULT_CAPABILITY_LIMIT, DEFAULT_TRANSFORMS, campaign_tasks, run_campaign
from refute.report._gap_table import gap_table
from refute.transforms import list_transforms


@friendly_errors
def redteam(
    model: Annotated[str, typer.Option("--model", "-m", help="Model spec under test; edits: +ablate:FILE, +steer:FILE@LAYER*COEF, +sae:FILE#FEATURES, +lora:DIR (see refute models list).")] = "default",
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Harmful requests (built-in name or file).")] = "harmful",
    transforms: Annotated[str | None, typer.Option("--transforms", help="Comma-separated transform chains (default: 13 cheap ones of every kind; see `refute redteam --list`).")] = None,
    limit: Annotated[int | None, typer.Option(help="Harmful prompts to use.", min=1)] = 80,
    capability_dataset: Annotated[str, typer.Option(help="Benign tasks with known answers (the capability control); 'none' to skip.")] = "benign-tasks",
    capability_limit: Annotated[int | None, typer.Option(help="Capability tasks to use.", min=1)] = DEFAULT_CAPABILITY_LIMIT,
    max_tokens: Annotated[int, typer.Option(help="Most new tokens per reply to a harmful request.", min=1)] = 48,
    scorer: Annotated[str, typer.Option(help="Refusal scorer (refusal: measured rules + classifier; refusal_patterns: fast phrases).")] = "refusal",
    seed: Annotated[int, typer.Option(help="Seed for transforms and sampling.", min=0)] = 0,
    attacks: Annotated[str | None, typer.Option("--attacks", help="Comma-separated attacks beside the transforms: pair, crescendo, best_of_n, gcg (white-box, local models). Each gets a row and its own capability control.")] = None,
    attack_limit: Annotated[int, typer.Option(help="Harmful prompts each attack runs on (attacks ask many times per prompt).", min=1)] = 10,
    attack_arg: Annotated[list[str] | None, typer.Option("--attack-arg", help="ATTACK.KEY=VALUE (repeatable), e.g. pair.budget=5, crescendo.turns=4, best_of_n.n=16, gcg.n_steps=50.")] = None,
    attacker: Annotated[str | None, typer.Option(help="Attacker model spec for pair and crescendo (default: the model under test).")] = None,
    judge: Annotated[str | None, typer.Option(help="Judge model spec for pair (default: the attacker).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the registered transforms and exit.")] = False,
    store: StoreOption = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars on stderr.")] = True,
    executor: ExecutorOption = ExecutorName.local,
    ray_address: RayAddressOption = None,
    workers: WorkersOption = None,
) -> None:
    """The robustness gap: refusal under each transform against canonical requests.

    Paired intervals, corrected p-values and a capability control per transform.

    Examples:

      refute redteam --model default --dataset harmful --transforms base64,rot13,roleplay

      refute redteam --limit 40 --capability-limit 30          # a quick look

      refute redteam --attacks pair,crescendo,gcg --attack-limit 5 --attacker default

      refute redteam --limit 40 --executor ray --workers 4

      refute redteam --list
    """
    if list_:
        for info in list_transforms():
            out.print(f"[bold]{info.name}[/] ({info.kind}): {info.description}")
        return

    chains = [t.strip() for t in transforms.split(",") if t.strip()] if transforms else list(DEFAULT_TRANSFORMS)
    settings: dict[str, Any] = dict(
        transforms=chains, dataset=dataset, limit=limit,
        capability_dataset=None if capability_dataset == "none" else capability_dataset,
        capability_limit=capability_limit, max_tokens=max_tokens, scorer=scorer, seed=seed)
    names = [a.strip() for a in attacks.split(",") if a.strip()] if attacks else []
    attacker = attacker or model
    judge = judge or attacker
    roles = {"attacker": attacker, "judge": judge} if set(names) & {"pair", "crescendo", "best_of_n"} else {}
    with bad_input():  # every spec, both datasets, every chain, the scorer and the attacks, before a model loads
        for spec in {model, *roles.values()}:
            parse_spec(spec)
        attack_args = parse_attack_args(attack_arg or [])
        harmful_task, cap_task = campaign_tasks(**settings)
        attack_tasks(names, harmful_task, cap_task, limit=attack_limit, args=attack_args, helpers=roles)
    with executor_from(executor, ray_address, workers), loaded_models(model, roles) as models, store_from(store) as db:
        target = models.pop("target")
        campaign = run_campaign(db, target, progress=progress, attacks=names, attack_limit=attack_limit,
                                attack_args=attack_args, helpers=models, **settings)
    out.print(gap_table(campaign.gap))
    ids = f"harmful run {campaign.harmful.id}" + (f", capability run {campaign.capability.id}"
                                                 if campaign.capability else "")
    ids += "".join(f", attack {a.name} run {a.harmful.id}" for a in campaign.attacks)
    err.print(f"stored: {ids}")
