"""lowercase-extensions: every file in /work/photos has a lower-case extension, names and contents kept."""

import json
from pathlib import Path

EXPECTED = {
    "IMG_0001.jpg": "photo 1: harbour at dawn\n",
    "IMG_0002.jpg": "photo 2: harbour at noon\n",
    "Beach_Day.png": "photo 3: the beach\n",
    "Scan-07.jpeg": "scan 7: a receipt\n",
    "Print_List.txt": "notes: which photos to print\n",
}


def verdict(passed: bool, detail: str) -> None:
    print(json.dumps({"passed": passed, "detail": detail}))


folder = Path("/work/photos")
found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
if found != sorted(EXPECTED):
    verdict(False, f"photos/ holds {found}, expected {sorted(EXPECTED)}")
else:
    changed = [n for n, text in EXPECTED.items() if (folder / n).read_text(errors="replace") != text]
    if changed:
        verdict(False, f"content changed: {changed}")
    else:
        verdict(True, "every extension is lower case, names and contents kept")
