"""count-todo: /work/answer.txt holds the number of lines of notes.txt that contain "TODO"."""

import json
from pathlib import Path

EXPECTED = 6


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
