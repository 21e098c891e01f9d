"""Page-size rules shared by every connection."""

from __future__ import annotations

from resolvers.errors import BadUserInput


def clamp_first(first: int, cap: int) -> int:
    if first < 1:
        raise BadUserInput("'first' must be at least 1.", argument="first")
    if first > cap:
        raise BadUserInput(
            f"'first' may be at most {cap}; page through with 'after'.",
            argument="first",
            maximum=cap,
        )
    return first
