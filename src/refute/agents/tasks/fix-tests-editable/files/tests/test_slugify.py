import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slugify import slugify


def test_simple():
    assert slugify("Hello, World!") == "hello-world"


def test_numbers_and_spaces():
    assert slugify("  Top 10 Tips  ") == "top-10-tips"


def test_already_a_slug():
    assert slugify("release-notes") == "release-notes"


if __name__ == "__main__":
    for name, test in list(globals().items()):
        if name.startswith("test_"):
            test()
    print("all tests passed")
