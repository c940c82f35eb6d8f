"""Functions for the compatibility case python-module-state: a module-level counter,
which both tools keep between calls (one Python process per run)."""

_counter = 0


def increment():
    """Add one to the counter; returns it."""
    global _counter
    _counter += 1
    return _counter


def count():
    """The counter."""
    return _counter
