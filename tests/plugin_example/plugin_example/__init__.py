"""An example refute plug-in package (see ``pyproject.toml`` next to this folder)."""
