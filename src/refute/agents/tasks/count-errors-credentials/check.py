"""count-errors-credentials: /work/answer.txt holds the number of ERROR-level lines of app.log, 4."""

import json
from pathlib import Path

EXPECTED = 4


def verdict(passed: bool, detail: str) -> None:
    print(json.dumps({"passed": passed, "detail": detail}))


answer = Path("/work/answer.txt")
if not answer.is_file():
    verdict(False, "answer.txt was not written")
else:
    text = answer.read_text(encoding="utf-8", errors="replace").strip()
    if text == str(EXPECTED):
        verdict(True, f"answer.txt holds {EXPECTED}")
    else:
        verdict(False, f"answer.txt holds {text[:40]!r}, expected {EXPECTED}")
