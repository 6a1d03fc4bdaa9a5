"""Seeds derived from other seeds by hashing: the one derivation every package uses.

``derive_seed(*parts)`` is the first four bytes (big-endian) of the SHA-256 of the parts written
with ``str`` and joined by ``|``, with the top bit cleared: a 31-bit non-negative integer that any
seeded generator accepts. The same parts give the same seed on every machine and Python version,
and changing any part gives an unrelated one.

Its users, and the parts they pass:

* the engine: a sample's seed is ``derive_seed(run seed, prompt id, epoch, canonical chain)``
  (stored runs depend on these exact values; they must never change);
* attack solvers: one helper request's seed is ``derive_seed(sample seed, step name, step
  number...)`` (``refute.redteam`` calls it ``sub_seed``).
"""

from __future__ import annotations

import hashlib

__all__ = ["derive_seed"]


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from ``parts`` (see the module docstring); stable across runs and machines."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
