"""The error every command reports as one line with exit status 2: bad input."""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input from the user: reported as one line, with a non-zero exit."""
