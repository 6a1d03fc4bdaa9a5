"""active-by-team: /work/active_by_team.json maps each team to the sorted names of its active users."""

import json
from pathlib import Path

EXPECTED = {
    "billing": ["Priya"],
    "infra": ["Ines", "Tomas", "Zoe"],
    "search": ["Lena", "Mira"],
}


def verdict(passed: bool, detail: str) -> None:
    print(json.dumps({"passed": passed, "detail": detail}))


path = Path("/work/active_by_team.json")
if not path.is_file():
    verdict(False, "active_by_team.json was not written")
else:
    try:
        data = json.loads(path.read_text(errors="replace"))
    except json.JSONDecodeError as exc:
        data = exc
    if isinstance(data, json.JSONDecodeError):
        verdict(False, f"active_by_team.json is not JSON: {data.msg} at line {data.lineno}")
    elif data == EXPECTED:
        verdict(True, "every team maps to its sorted active users")
    elif not isinstance(data, dict):
        verdict(False, f"expected a JSON object, got {type(data).__name__}")
    else:
        wrong = sorted(k for k in set(data) | set(EXPECTED) if data.get(k) != EXPECTED.get(k))
        verdict(False, f"wrong or missing teams: {[str(k)[:30] for k in wrong[:4]]}")
