"""Names as people misspell them on a cracked phone: the nearest of a list of known names.

rapidfuzz's plain ratio (an edit distance scaled to the lengths) over whole names: "unoin square"
is Union Square, "penn staton" Penn Station; short names must match exactly, since between
short words one typo is another word.
"""
from __future__ import annotations

from collections.abc import Sequence

from rapidfuzz import fuzz, process

# ratio of a misspelt name to the real one: one slip in twelve letters scores about 92, two about 83.
NAME_CUTOFF = 88
MIN_FUZZY_CHARS = 6


def closest(query: str, names: Sequence[str], cutoff: float = NAME_CUTOFF) -> list[int]:
    """The indexes of the names nearest to `query` (every one that ties), or [] if none is near."""
    if len(query) < MIN_FUZZY_CHARS:
        return []
    found = process.extract(query, names, scorer=fuzz.ratio, score_cutoff=cutoff, limit=None)
    if not found:
        return []
    best = max(score for _, score, _ in found)
    return sorted(i for _, score, i in found if score == best)
