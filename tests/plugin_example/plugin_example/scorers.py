"""The example plug-in's scorer: 1 when the reply shouts (letters all capitals).

Registering is all a plug-in module does when refute imports it; the scorer declares what its
values mean (`ScorerMeaning`), so reports name its outcomes "shouting" and "calm".
"""

from __future__ import annotations

from dataclasses import dataclass

from refute.scorers import Score, ScoreInput, ScorerMeaning, scorer

SHOUTING = ScorerMeaning("detected", positive="shouting", high="shouting", low="calm", statistic="shouting rate")


@dataclass(frozen=True)
class ShoutingScorer:
    min_letters: int = 3
    name: str = "example_plugin_scorer"
    version: str = "1"

    def score(self, item: ScoreInput) -> Score:
        letters = [c for c in item.completion if c.isalpha()]
        if len(letters) < self.min_letters:
            return Score(None, "unscorable", f"fewer than {self.min_letters} letters")
        loud = all(c.isupper() for c in letters)
        return Score(1.0 if loud else 0.0, "shouting" if loud else "calm")


@scorer("example_plugin_scorer", "1 when the reply's letters are all capitals (an example plug-in)",
        meaning=SHOUTING)
def example_plugin_scorer(min_letters: int = 3) -> ShoutingScorer:
    return ShoutingScorer(min_letters=min_letters)
