"""List-column helpers shared by the rule modules.

polars' `list.sort()` on text lists costs ~15 µs a row (2.9 s for 200k rows with polars 2.1), the same sort as a
list expression ~1 µs: sort inside `list.eval`.
"""

import polars as pl


def distinct_sorted(lists: pl.Expr) -> pl.Expr:
    """Each list without nulls or repeats, in ascending order."""
    return lists.list.eval(pl.element().drop_nulls().unique().sort())
