"""One seed derivation (`refute._seeds.derive_seed`) for the engine's samples and the attacks' requests."""

from __future__ import annotations

import hashlib

import pytest

from refute._seeds import derive_seed


def _engine_seed_as_first_written(run_seed: int, prompt_id: str, epoch: int, chain: str) -> int:
    """The engine's sample seed as it was first written: stored runs hold seeds made by this."""
    digest = hashlib.sha256(f"{run_seed}|{prompt_id}|{epoch}|{chain}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@pytest.mark.parametrize("parts, expected", [
    ((0, "p1", 0, "none"), 1524140261),
    ((12345, "harm-0007", 2, "base64|rot13"), 263569896),
    ((7, "x", 1, "roleplay"), 145057256),
])
def test_sample_seeds_are_the_ones_stored_runs_were_made_with(parts, expected):
    from refute.engine import derive_seed as engine_seed

    assert engine_seed(*parts) == derive_seed(*parts) == expected == _engine_seed_as_first_written(*parts)


def test_attack_sub_seeds_are_derive_seed_of_the_sample_seed_and_the_step():
    from refute.redteam._parse import sub_seed

    assert sub_seed(99, "pair-judge", 3) == derive_seed(99, "pair-judge", 3) == 1949860248
    assert sub_seed(5, "bon-draw", 0) == 476460349
    assert sub_seed(5, "bon-draw", 0) != sub_seed(5, "bon-draw", 1) != sub_seed(6, "bon-draw", 1)


def test_seeds_are_31_bit_and_spread():
    seeds = {derive_seed(0, f"p{i}", 0, "none") for i in range(2000)}
    assert len(seeds) == 2000 and all(0 <= s < 2**31 for s in seeds)
    assert 0.4 < sum(s >= 2**30 for s in seeds) / 2000 < 0.6  # the top bit that is kept is used
