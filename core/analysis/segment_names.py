"""Profile cards and readable names of shopper segments, from the per-shopper features and each one's segment.

:func:`build_profiles` sums and compares each segment with everyone (size, revenue,
conversion, recency, propensity, category-group and price-band shares with their affinity);
:func:`name_segments` turns the distinctive pieces into a distinct name per segment.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from core import config
from core.store.price_bands import PRICE_BANDS
from core.analysis.shopper_features import BAND_PREFIX, OTHER_GROUP, PROPENSITY_FEATURE

BAND_LABELS = {"budget": "bargain", "mid": "mid-range", "premium": "premium", "luxury": "luxury"}


def _group_label(group: str) -> str:
    return str(group).replace("_", " ")


def _segment_stats(features: pd.DataFrame, labels: np.ndarray, groups: list[str]) -> pd.DataFrame:
    """Per-segment sums and means of the raw columns (one row per segment)."""
    f = features.assign(_segment=labels, _buyer=(features["n_orders"] > 0).astype(float))
    agg = {"n_events": "sum", "n_sessions": "sum", "n_orders": "sum", "revenue": "sum", "n_priced": "sum",
           "_buyer": "mean", "recency_days": "median", "frequency_log": "count"}
    for j in range(len(groups)):
        agg[f"n_group_{j}"] = "sum"
    for band in PRICE_BANDS:
        f[f"_n_{band}"] = f[f"{BAND_PREFIX}{band}"] * f["n_priced"]
        agg[f"_n_{band}"] = "sum"
    if PROPENSITY_FEATURE in f.columns:
        agg[PROPENSITY_FEATURE] = "mean"
    stats = f.groupby("_segment").agg(agg).rename(columns={"frequency_log": "size", "_buyer": "conversion"})
    total = f.agg({k: v for k, v in agg.items()}).rename({"frequency_log": "size", "_buyer": "conversion"})
    stats.loc["all"] = total
    return stats


def _share_rows(counts: pd.Series, total: float, overall: pd.Series, overall_total: float, top: int) -> list[dict]:
    rows = []
    for name, c in counts.sort_values(ascending=False).items():
        share = c / total if total else 0.0
        base = overall.get(name, 0.0) / overall_total if overall_total else 0.0
        rows.append({"name": name, "share": float(share), "affinity": float(share / base) if base else None})
    return rows[:top]


def name_segments(profiles: list[dict]) -> list[str]:
    """A distinct readable name per profile, from its distinctive category group, price band and activity.

    Every word is borne out by the segment's own numbers. The pieces: the segment's most common
    price band when its index (share in the segment ÷ share among all shoppers) is at least
    :data:`core.config.SEGMENT_NAME_MIN_INDEX` ("premium", "bargain", ...; a band the segment
    buys a little more often than everyone but rarely does not name it); the category group
    holding the largest share of the segment's events among those it favours (index at least
    1, share at least :data:`core.config.SEGMENT_NAME_MIN_SHARE`), "all-category" when none;
    "buyers" or "browsers" when the segment's conversion (share of shoppers who bought) is at
    least that index above or below everyone's, else "shoppers"; "lapsed" when the median days
    since the last event is that index above everyone's; ", ready to buy" when the mean
    propensity is that index above everyone's. Names that still collide get the next group the
    segment favours, then a number.
    """
    idx = config.SEGMENT_NAME_MIN_INDEX
    parts = []
    for p in profiles:
        band = _leading_band(p["group_index"]["bands"], idx)
        groups = [g for g in sorted(p["group_index"]["groups"], key=lambda r: -r_share(r))
                  if r_share(g) >= config.SEGMENT_NAME_MIN_SHARE and (g["affinity"] or 0.0) >= 1.0
                  and g["name"] != OTHER_GROUP]
        a = p["activity_index"]
        conversion = 1.0 if a["conversion"] is None else a["conversion"]  # None: nobody bought anywhere
        role = "buyers" if conversion >= idx else "browsers" if conversion <= 1 / idx else "shoppers"
        lapsed = a["recency"] is not None and a["recency"] >= idx
        ready = a.get("propensity") is not None and a["propensity"] >= idx
        parts.append({"band": band, "groups": [_group_label(g["name"]) for g in groups], "role": role,
                      "lapsed": lapsed, "ready": ready})

    def render(pt: dict, n_groups: int) -> str:
        words = (["lapsed"] if pt["lapsed"] else []) + ([BAND_LABELS[pt["band"]]] if pt["band"] else [])
        words.append(" & ".join(pt["groups"][:n_groups]) if pt["groups"] else "all-category")
        words.append(pt["role"])
        return " ".join(words) + (", ready to buy" if pt["ready"] else "")

    names = [render(pt, 1) for pt in parts]
    for i in range(len(names)):
        clash = [j for j in range(len(names)) if names[j] == names[i]]
        if len(clash) > 1:
            for j in clash:
                names[j] = render(parts[j], 2)
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        seen[name] = seen.get(name, 0) + 1
        if names.count(name) > 1:
            names[i] = f"{name} ({seen[name]})"
    return names


def r_share(row: dict) -> float:
    """The share of a profile row (0 when missing)."""
    return row.get("share") or 0.0


def _leading_band(rows: list[dict], min_index: float) -> str | None:
    """The segment's most common band when it is at least ``min_index`` times as common as among everyone."""
    best = max(rows, key=r_share, default=None)
    if best is None or (best["affinity"] or 0.0) < min_index:
        return None
    return best["name"]


def build_profiles(features: pd.DataFrame, labels: np.ndarray, centers: np.ndarray,
                   feature_names: list[str]) -> list[dict]:
    """Profile cards (without the category/brand detail read from the store) and names, one per segment.

    Inputs: the frame of :func:`shopper_features`, each shopper's segment, the segment
    centres in standard units and the feature names. Output: dicts with ``segment``,
    ``name``, ``size``, ``share_shoppers``, ``revenue``, ``share_revenue``, ``conversion``
    (share of the segment's shoppers who bought), ``session_conversion``,
    ``mean_propensity`` (None without forecasts), ``median_recency_days``,
    ``revenue_per_shopper``, ``group_index`` (category groups and price bands with share and
    affinity), ``activity_index`` and ``center`` (feature → standard units).
    """
    groups = list(features.attrs.get("groups", []))
    stats = _segment_stats(features, labels, groups)
    everyone = stats.loc["all"]
    group_counts_all = pd.Series({g: everyone[f"n_group_{j}"] for j, g in enumerate(groups)})
    group_counts_all[OTHER_GROUP] = everyone["n_events"] - group_counts_all.sum()
    band_all = pd.Series({b: everyone[f"_n_{b}"] for b in PRICE_BANDS})
    has_prop = PROPENSITY_FEATURE in stats.columns
    profiles = []
    for s in range(len(centers)):
        row = stats.loc[s] if s in stats.index else None
        if row is None:
            continue
        gc = pd.Series({g: row[f"n_group_{j}"] for j, g in enumerate(groups)})
        gc[OTHER_GROUP] = row["n_events"] - gc.sum()
        bc = pd.Series({b: row[f"_n_{b}"] for b in PRICE_BANDS})
        prop = float(row[PROPENSITY_FEATURE]) if has_prop else None
        all_prop = float(everyone[PROPENSITY_FEATURE]) if has_prop else None
        conv = float(row["n_orders"] / row["n_sessions"]) if row["n_sessions"] else 0.0
        all_conv = float(everyone["n_orders"] / everyone["n_sessions"]) if everyone["n_sessions"] else 0.0
        profiles.append({
            "segment": int(s),
            "size": int(row["size"]),
            "share_shoppers": float(row["size"] / everyone["size"]),
            "revenue": float(row["revenue"]),
            "share_revenue": float(row["revenue"] / everyone["revenue"]) if everyone["revenue"] else None,
            "revenue_per_shopper": float(row["revenue"] / row["size"]),
            "conversion": float(row["conversion"]),
            "session_conversion": conv,
            "mean_propensity": prop,
            "median_recency_days": float(row["recency_days"]),
            "group_index": {
                "groups": _share_rows(gc, row["n_events"], group_counts_all, everyone["n_events"], len(gc)),
                "bands": _share_rows(bc, row["n_priced"], band_all, everyone["n_priced"], len(bc)),
            },
            "activity_index": {
                "conversion": _ratio(row["conversion"], everyone["conversion"]),
                "recency": _ratio(row["recency_days"], everyone["recency_days"]),
                "propensity": _ratio(prop, all_prop) if has_prop else None,
                "session_conversion": _ratio(conv, all_conv),
            },
            "center": {n: float(v) for n, v in zip(feature_names, centers[s])},
        })
    for p, name in zip(profiles, name_segments(profiles)):
        p["name"] = name
    return profiles


def _ratio(a, b) -> float | None:
    if a is None or b is None or not b or (isinstance(a, float) and math.isnan(a)):
        return None if b is None or a is None else (1.0 if not b and not a else None)
    return float(a / b)
