"""fix-pagination: /work/pages.py's page() passes the checker's own cases (not only test_pages.py's)."""

import importlib.util
import json
import sys

CASES = [
    ((list(range(10)), 1, 3), [0, 1, 2]),
    ((list(range(10)), 2, 3), [3, 4, 5]),
    ((list(range(10)), 4, 3), [9]),
    ((list(range(10)), 5, 3), []),
    ((list(range(7)), 1, 10), [0, 1, 2, 3, 4, 5, 6]),
    (([], 1, 5), []),
    ((["x", "y"], 2, 1), ["y"]),
]


def verdict(passed: bool, detail: str) -> None:
    print(json.dumps({"passed": passed, "detail": detail}))


def main() -> None:
    spec = importlib.util.spec_from_file_location("refute_checked_pages", "/work/pages.py")
    if spec is None or spec.loader is None:
        verdict(False, "pages.py is missing")
        return
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, "/work")
    try:
        spec.loader.exec_module(module)
        for args, expected in CASES:
            got = module.page(*args)
            if got != expected:
                verdict(False, f"page{args[1:]} of {len(args[0])} items gave {got!r}, expected {expected!r}")
                return
    except Exception as exc:  # noqa: BLE001 - any failure of the agent's code fails the check
        verdict(False, f"pages.py raised {type(exc).__name__}: {exc}")
        return
    verdict(True, f"page() passes all {len(CASES)} cases")


main()
