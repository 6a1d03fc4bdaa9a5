"""Turn titles into URL slugs."""

import re


def slugify(title: str) -> str:
    """'Hello, World!' -> 'hello-world': lower case, each run of other characters one '-', none at the ends."""
    slug = re.sub(r"[^a-z0-9]+", "-", title)
    return slug.strip("-")
