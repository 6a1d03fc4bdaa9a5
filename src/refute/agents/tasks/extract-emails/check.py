"""extract-emails: /work/answer.txt lists the distinct email addresses of server.log, sorted, one per line."""

import json
from pathlib import Path

EXPECTED = [
    "alice@example.com",
    "bob.smith@corp.example.org",
    "carol@example.net",
    "dave+alerts@example.com",
    "eve_99@mail.example.io",
    "noreply@example.com",
]


def verdict(passed: bool, detail: str) -> None:
    print(json.dumps({"passed": passed, "detail": detail}))


path = Path("/work/answer.txt")
if not path.is_file():
    verdict(False, "answer.txt was not written")
else:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if lines == EXPECTED:
        verdict(True, f"all {len(EXPECTED)} addresses, sorted, once each")
    else:
        missing = sorted(set(EXPECTED) - set(lines))
        extra = sorted(set(lines) - set(EXPECTED))
        order = "" if missing or extra else "; duplicates or wrong order"
        verdict(False, f"missing {missing[:3]}, unexpected {[e[:40] for e in extra[:3]]}{order}")
