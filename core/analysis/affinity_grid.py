"""The segment × value grid of the Preferences page's heat map (:func:`core.analysis.preferences.affinity_matrix`),
from per-segment and per-value sums: shares, everyone's figures, affinity and the small-group flag, in pandas."""
from __future__ import annotations

import math

import pandas as pd

from core.store.price_bands import PRICE_BANDS

MATRIX_COLUMNS = (
    "segment", "segment_name", "value", "events", "share_events", "shoppers", "revenue", "affinity",
    "events_all", "share_events_all", "shoppers_all", "few_shoppers",
)


def _ratio(numerator: pd.Series, denominator) -> pd.Series:
    """Element-wise numerator / denominator, NaN where the denominator is 0 or missing."""
    den = pd.Series(denominator, index=numerator.index, dtype=float) if not isinstance(denominator, pd.Series) \
        else denominator.astype(float)
    return numerator.astype(float) / den.where(den != 0)


def matrix_grid(raw: pd.DataFrame, segments: pd.DataFrame, dimension: str, top_n: int, min_shoppers: int) -> pd.DataFrame:
    """The segment × value grid from per-(segment, value) sums (segment NaN: shoppers of no segment)."""
    everyone = raw.groupby("value", sort=False)[["events", "shoppers"]].sum()
    total_all = float(everyone["events"].sum())
    if dimension == "price_band":
        values = list(PRICE_BANDS)
    else:
        ranked = everyone[everyone["events"] > 0].reset_index()
        ranked = ranked.sort_values(["events", "value"], ascending=[False, True])
        values = ranked["value"].head(top_n).tolist()
    assigned = raw.dropna(subset=["segment"]).astype({"segment": "int64"})
    seg_totals = assigned.groupby("segment")["events"].sum()
    cells = assigned.set_index(["segment", "value"])
    grid = pd.MultiIndex.from_product([segments["segment"].tolist(), values], names=["segment", "value"])
    out = cells.reindex(grid).fillna({"events": 0.0, "revenue": 0.0, "shoppers": 0.0}).reset_index()
    out = out.merge(segments[["segment", "segment_name"]], on="segment", how="left")
    out["share_events"] = _ratio(out["events"], out["segment"].map(seg_totals).fillna(0.0))
    out["events_all"] = out["value"].map(everyone["events"]).fillna(0.0)
    out["shoppers_all"] = out["value"].map(everyone["shoppers"]).fillna(0.0)
    out["share_events_all"] = out["events_all"] / total_all if total_all else math.nan
    out["affinity"] = _ratio(out["share_events"], out["share_events_all"])
    for c in ("events", "shoppers", "events_all", "shoppers_all"):
        out[c] = out[c].astype("int64")
    out["few_shoppers"] = out["shoppers"] < min_shoppers
    out["value"] = out["value"].astype(object)
    return out[list(MATRIX_COLUMNS)].reset_index(drop=True)
