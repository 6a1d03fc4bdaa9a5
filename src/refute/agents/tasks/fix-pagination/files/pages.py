"""Split a list into pages."""


def page(items, number, size):
    """Page `number` of `items` (pages count from 1), `size` items per page; [] past the end."""
    start = number * size
    return items[start:start + size]
