"""Integers as requests and master.cfg give them (text) and as the database stores them."""

from __future__ import annotations

# Build numbers and change ids are 32-bit integer columns; a larger number in a URL can
# match nothing, and must not reach PostgreSQL (which would reject the parameter).
INT_MIN, INT_MAX = -(2**31), 2**31 - 1


def in_int_range(n: int) -> bool:
    return INT_MIN <= n <= INT_MAX


def is_int_text(text: str) -> bool:
    """``text`` is a plain non-negative integer in ASCII digits. (``str.isdigit`` alone
    accepts "²", which ``int()`` then refuses: a 500 instead of a 400.)"""
    return text.isascii() and text.isdigit()
