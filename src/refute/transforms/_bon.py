"""Best-of-N text augmentation (Hughes et al. 2024, "Best-of-N Jailbreaking", appendix A.1).

Three perturbations, applied in the paper's order to the last user message:

1. word scrambling: each word longer than 3 characters has its middle characters shuffled
   with probability ``sigma ** 0.5``;
2. random capitalization: each ASCII letter has its case flipped with probability
   ``sigma ** 0.5``;
3. character noising: each printable ASCII character moves one code point up or down
   (staying printable) with probability ``sigma ** 3``.

``sigma=0`` is the identity; the paper's default is 0.4. One draw is one ``rng`` state, so N
draws are the same chain applied with N seeds. Whitespace is kept as it is.
"""

from __future__ import annotations

import random
import re
from typing import ClassVar

from refute.transforms._base import TextTransform, TransformKind, check_number, transform

_WHITESPACE = re.compile(r"(\s+)")


def scramble_words(text: str, p: float, rng: random.Random) -> str:
    """Shuffle the middle of each word longer than 3 characters with probability ``p``."""
    pieces = _WHITESPACE.split(text)
    for k, word in enumerate(pieces):
        if len(word) > 3 and not word.isspace() and rng.random() < p:
            middle = list(word[1:-1])
            rng.shuffle(middle)
            pieces[k] = word[0] + "".join(middle) + word[-1]
    return "".join(pieces)


def flip_case(text: str, p: float, rng: random.Random) -> str:
    """Flip the case of each ASCII letter with probability ``p``."""
    return "".join(c.swapcase() if c.isascii() and c.isalpha() and rng.random() < p else c
                   for c in text)


def noise_chars(text: str, p: float, rng: random.Random) -> str:
    """Move each printable ASCII character one code point up or down with probability ``p``."""
    out = []
    for c in text:
        if 32 <= ord(c) <= 126 and rng.random() < p:
            code = ord(c) + rng.choice((-1, 1))
            out.append(chr(code) if 32 <= code <= 126 else c)
        else:
            out.append(c)
    return "".join(out)


@transform("bon")
class BestOfN(TextTransform):
    """Best-of-N noise: word scrambling, random capitalization, ASCII noising (sigma=0.4)."""

    kind: ClassVar[TransformKind] = "augmentation"

    def __init__(self, sigma: float = 0.4) -> None:
        super().__init__()
        self.sigma = check_number(self.name, "sigma", sigma, 0.0, 1.0)
        self.args = {"sigma": self.sigma}

    def transform_text(self, text: str, rng: random.Random) -> str:
        text = scramble_words(text, self.sigma ** 0.5, rng)
        text = flip_case(text, self.sigma ** 0.5, rng)
        return noise_chars(text, self.sigma ** 3, rng)
