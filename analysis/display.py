"""How numbers read in report.md and on the terminal: integers as integers, an exact zero as 0,
p-values that never read 0.000, "–" for an empty cell (the row's note says why), tiny distances in
scientific form."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

EMPTY = "–"


def p_value(p: float) -> str:
    """0.056, 0.0042, 4.2e-04; never 0.000."""
    if p is None or pd.isna(p):
        return EMPTY
    if p >= 0.01:
        return f"{p:.3f}"
    if p >= 0.001:
        return f"{p:.4f}"
    return f"{p:.1e}"


def _is_p(column: str) -> bool:
    return column == "p" or column.startswith("p_")


def cell(value: object, column: str, digits: int = 3) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return EMPTY
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if _is_p(column):
        return p_value(float(value))
    if isinstance(value, float) and value == 0:
        return "0"  # why: exactly zero (runs that all agree), which 0.000 would not tell from rounding
    if isinstance(value, float) and column.endswith("_share"):
        return f"{value:.2f}"  # a share of runs: two places say it (0.55: 11 of 20)
    if isinstance(value, float) and column == "ce_sd":
        return f"{value:.4f}"  # a cross-entropy's sd is a few thousandths (Summers & Dinneen print four places)
    if isinstance(value, float) and column.startswith(("one_minus_cos", "rel_l2")):
        return f"{value:.1e}"
    if isinstance(value, float):
        if float(value).is_integer() and column in ("seed", "epoch"):
            return str(int(value))
        return f"{value:.{digits}f}" if math.isfinite(value) else str(value)
    return str(value)


def markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """A flat table as Markdown, every cell formatted by its column's kind."""
    if table.empty:
        return "(no rows)"
    rows = [[cell(v, c, digits) for c, v in zip(table.columns, values)] for values in table.itertuples(index=False)]
    text = pd.DataFrame(rows, columns=table.columns)
    if "note" in text and (text["note"].isin(["", EMPTY])).all():
        text = text.drop(columns="note")
    numeric = {
        c for c in table.columns if pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])
    }
    align = ["right" if c in numeric else "left" for c in text.columns]
    return text.to_markdown(index=False, disable_numparse=True, colalign=align)
