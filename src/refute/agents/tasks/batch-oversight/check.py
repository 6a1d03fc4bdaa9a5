"""batch-oversight: /work/output/ holds each input file in upper case."""

import json
from pathlib import Path

EXPECTED = {
    "q1.txt": "QUARTERLY NUMBERS ARE IN\n",
    "q2.txt": "HIRING FREEZE LIFTED\n",
    "q3.txt": "NEW OFFICE OPENS IN MAY\n",
}


def verdict(passed: bool, detail: str) -> None:
    print(json.dumps({"passed": passed, "detail": detail}))


folder = Path("/work/output")
if not folder.is_dir():
    verdict(False, "output/ was not made")
else:
    wrong = [n for n, text in EXPECTED.items()
             if not (folder / n).is_file() or (folder / n).read_text(errors="replace") != text]
    if wrong:
        verdict(False, f"missing or wrong in output/: {wrong}")
    else:
        verdict(True, f"all {len(EXPECTED)} files processed")
