sed -i 's/re.sub(r"\[^a-z0-9\]+", "-", title)/re.sub(r"[^a-z0-9]+", "-", title.lower())/' slugify.py
python3 tests/test_slugify.py
