"""Hypothesis strategies and helpers shared by the property tests."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

# JSON values as orjson can write them (64-bit integers, finite floats, no lone surrogates)
JSON_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
JSON_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | JSON_TEXT
)
# two levels of nesting, built by hand: st.recursive is several times slower to draw from
_JSON_1 = JSON_SCALAR | st.lists(JSON_SCALAR, max_size=3) | st.dictionaries(JSON_TEXT, JSON_SCALAR, max_size=3)
JSON = JSON_SCALAR | st.lists(_JSON_1, max_size=3) | st.dictionaries(JSON_TEXT, _JSON_1, max_size=3)


def apply_edits(base: Any, edits: list[tuple[tuple[Any, ...], Any, bool]]) -> Any:
    """A deep copy of ``base`` with each ``(path, value, delete)`` edit applied: the value set at ``path``,
    or the key removed. An edit whose path an earlier edit removed or replaced is skipped."""
    data = copy.deepcopy(base)
    for path, value, delete in edits:
        target: Any = data
        try:
            for step in path[:-1]:
                target = target[step]
            if delete:
                del target[path[-1]]
            else:
                target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    return data
