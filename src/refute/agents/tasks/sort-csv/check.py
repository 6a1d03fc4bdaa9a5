"""sort-csv: /work/sorted.csv is scores.csv with its rows sorted by score (numerically), highest first."""

import json
from pathlib import Path

EXPECTED = [
    "name,team,score",
    "Chen,green,100",
    "Eli,blue,88",
    "Gus,red,61",
    "Ana,red,45",
    "Jun,red,30",
    "Hana,blue,23",
    "Dara,red,12",
    "Bo,blue,9",
    "Femi,green,7",
    "Ivo,green,5",
]


def verdict(passed: bool, detail: str) -> None:
    print(json.dumps({"passed": passed, "detail": detail}))


path = Path("/work/sorted.csv")
if not path.is_file():
    verdict(False, "sorted.csv was not written")
else:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if lines == EXPECTED:
        verdict(True, "rows sorted by score, highest first, header on top")
    elif lines and lines[0] != EXPECTED[0]:
        verdict(False, f"the first line is {lines[0][:60]!r}, not the header")
    else:
        wrong = next((i for i, line in enumerate(lines) if i >= len(EXPECTED) or line != EXPECTED[i]), len(lines))
        verdict(False, f"line {wrong + 1} differs ({len(lines)} lines, expected {len(EXPECTED)})")
