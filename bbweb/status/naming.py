"""How names are ordered on the pages and in the JSON: builders and slaves sort the way a
person reads their numbers."""

from __future__ import annotations

import re
from typing import Any


def natural_key(name: str) -> list[Any]:
    """Sort key that orders ``slave2`` before ``slave10``."""
    return [(0, int(part), "") if part.isdecimal() else (1, 0, part.lower())
            for part in re.split(r"(\d+)", name) if part]
