"""Did-you-mean: the names close enough to a misspelt one to be what was meant."""

from __future__ import annotations

from collections.abc import Iterable


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and swaps of two neighbours
    each cost 1 (`code_reveiw` is one swap from `code_review`)."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(rows[i - 1][j] + 1, row[j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[i - 2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def allowed_distance(word: str) -> int:
    """How many edits still count as a typo: 1 for short names, 2 from 8 characters on (`lint_py` and
    `lint_js` are two apart and are different names, not a typo)."""
    return 1 if len(word) < 8 else 2


def close_matches(word: str, candidates: Iterable[str]) -> list[str]:
    """The candidates within a typo's reach of `word` (case ignored), closest first, then alphabetical."""
    lowered = word.lower()
    limit = allowed_distance(word)
    scored = sorted(
        (distance, candidate)
        for candidate in set(candidates)
        if candidate != word and (distance := edit_distance(lowered, candidate.lower())) <= limit
    )
    return [candidate for _, candidate in scored]


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`; did you mean 'x'?` (or `'x' or 'y'`), or '' when nothing is close."""
    found = close_matches(word, candidates)[:3]
    if not found:
        return ""
    return "; did you mean " + " or ".join(repr(f) for f in found) + "?"


__all__ = ["allowed_distance", "close_matches", "did_you_mean", "edit_distance"]
