"""How cartsight writes a number or a name for a person: one home for units, number formats and column labels.

Every page, chart and CLI text line formats through here, so a revenue reads ``164,441.78`` everywhere, a share
``12.3 %``, a number of days ``2.7 days``, a count ``176,764``, and no code name (``median_recency_days``)
reaches a screen. Machines keep their names: stored columns and CSV headers are not renamed here.

A number has a *kind*; each kind has a text format (:func:`text`), a table format (printf, as Streamlit's
``NumberColumn`` takes it, :data:`TABLE_FORMATS`) and a chart format (d3, as Plotly takes it,
:data:`CHART_FORMATS`). Shares are stored as 0-1 and shown in percent with one decimal.
"""
from __future__ import annotations

import math
import re

import pandas as pd

COUNT, ESTIMATE, MONEY, PERCENT, POINTS, DAYS, SCORE, RATIO, INDEX, DECIMAL, SECONDS = (
    "count", "estimate", "money", "percent", "points", "days", "score", "ratio", "index", "decimal", "seconds")
KINDS = (COUNT, ESTIMATE, MONEY, PERCENT, POINTS, DAYS, SCORE, RATIO, INDEX, DECIMAL, SECONDS)
#: What a missing number shows.
NO_VALUE = "—"
#: printf formats of Streamlit's NumberColumn (``,`` groups thousands); percent columns are scaled to 0-100 first.
TABLE_FORMATS = {COUNT: "%,d", ESTIMATE: "%,.1f", SECONDS: "%.1f", MONEY: "%,.2f", PERCENT: "%.1f %%", POINTS: "%+.1f pts", DAYS: "%.1f", SCORE: "%.3f",
                 RATIO: "×%.2f", INDEX: "%.1f", DECIMAL: "%,.2f"}
#: d3 formats of Plotly axes and hover labels (percent scales a 0-1 share itself).
CHART_FORMATS = {COUNT: ",d", ESTIMATE: ",.1f", SECONDS: ".1f", MONEY: ",.2f", PERCENT: ".1%", POINTS: "+.1f", DAYS: ".1f", SCORE: ".3f", RATIO: ".2f",
                 INDEX: ".1f", DECIMAL: ",.2f"}
#: The most decimals a shown number of each kind has (percent: of the value in percent).
DECIMALS = {COUNT: 0, ESTIMATE: 1, SECONDS: 1, MONEY: 2, PERCENT: 1, POINTS: 1, DAYS: 1, SCORE: 3, RATIO: 2, INDEX: 1, DECIMAL: 2}

#: Code names that reach a page (features, stored columns, metrics) -> the words shown for them.
LABELS = {
    # stored and exported forecast columns
    "user_id": "Shopper", "segment": "Segment", "segment_name": "Segment name", "propensity": "Chance to buy",
    "purchase_propensity": "Chance to buy", "expected_revenue": "Expected revenue", "p_inactive": "Chance of no activity",
    "next_category": "Likely next category", "next_event_type": "Likely next step", "recommended_items": "Likely items",
    "top_items": "Likely items", "reasons": "Why", "model_version": "Model version",
    # quarantine
    "line_no": "Line", "raw_line": "The line as read", "reason": "Reason", "detail": "What was expected",
    "file_no": "File",
    # RFM
    "rfm_group": "RFM group", "median_recency_days": "Median days since the last purchase",
    "mean_frequency": "Mean orders", "recency_days": "Days since the last event",
    "frequency": "Purchases", "monetary": "Revenue", "revenue": "Revenue", "shoppers": "Shoppers",
    "share_of_shoppers": "Share of shoppers", "share_of_revenue": "Share of revenue",
    # segment features (core.analysis.shopper_features)
    "events_log": "Events (log scale)", "frequency_log": "Orders (log scale)", "monetary_log": "Revenue (log scale)",
    "view_share": "Share of events: views", "cart_share": "Share of events: carts",
    "purchase_share": "Share of events: purchases", "remove_share": "Share of events: removals from cart",
    "conversion": "Orders per session", "price_position": "Price position within the category",
    # exports
    "export_id": "Export", "created_at": "Made", "name": "Name", "format": "Format", "segment_run_id": "Segmentation",
    "matched": "Matched", "suppressed": "Suppressed", "not_in_identities": "Not in the identity file",
    "no_consent": "No consent", "no_identifier": "No e-mail or phone", "holdout": "Held out", "exported": "Exported",
    "file_name": "File", "as_of": "Data up to", "as_of_basis": "As-of time from", "rank_by": "Ranked by",
    "consent_basis": "Legal basis", "destination": "Destination",
    # model quality
    "roc_auc": "ROC-AUC", "log_loss": "Log loss", "accuracy@1": "Accuracy@1", "ndcg@10": "NDCG@10",
    "spearman": "Spearman rank correlation", "top_decile_share": "Top-decile share of revenue", "brier": "Brier score",
    "calibration_error": "Calibration error",
}
#: Event types in words (``remove_from_cart`` -> ``remove from cart``).
EVENT_WORDS = {"view": "view", "cart": "cart", "purchase": "purchase", "remove_from_cart": "remove from cart",
               "wishlist": "wishlist", "none": "nothing"}
_BAND_FEATURE = re.compile(r"^band_(\w+)$")
_CATEGORY_FEATURE = re.compile(r"^category_(.+)$")
_EMBEDDING_FEATURE = re.compile(r"^embedding_(\d+)$")
SNAKE_CASE = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)+$")


def label(name: str) -> str:
    """The words for a code name: :data:`LABELS`, price-band and category shares by their band or category, else the
    name with its underscores read as spaces and a capital first letter."""
    name = str(name)
    if name in LABELS:
        return LABELS[name]
    if m := _BAND_FEATURE.match(name):
        return f"Share in the {m.group(1).replace('_', ' ')} price band"
    if m := _CATEGORY_FEATURE.match(name):
        return f"Share of events in {m.group(1).replace('_', ' ')}"
    if m := _EMBEDDING_FEATURE.match(name):
        return f"Model's shopper embedding, component {m.group(1)}"
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:] if SNAKE_CASE.match(name) or name.islower() else words


def event_type(value: str) -> str:
    """A known event type (``remove_from_cart``) in words (``remove from cart``); others as given."""
    return EVENT_WORDS.get(value, str(value))  # an unknown type is shown as the data gives it


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT


def text(value, kind: str) -> str:
    """``value`` as a person reads it in a sentence or a tile; :data:`NO_VALUE` when missing."""
    if _missing(value):
        return NO_VALUE
    v = float(value)
    if kind == COUNT:
        return f"{round(v):,}"
    if kind == ESTIMATE:
        return f"{v:,.1f}"
    if kind == SECONDS:
        return f"{v:.0f} s" if v >= 10 else f"{v:.1f} s"
    if kind in (MONEY, DECIMAL):
        return f"{v:,.2f}"
    if kind == PERCENT:
        return f"{v * 100:.1f} %"
    if kind == POINTS:
        return f"{v * 100:+.1f} points"
    if kind == DAYS:
        return f"{v:.1f} day" + ("" if round(v, 1) == 1 else "s")
    if kind == SCORE:
        return f"{v:.3f}"
    if kind == RATIO:
        return f"×{v:.2f}"
    if kind == INDEX:
        return f"{v:.1f}"
    raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")


def hover(kind: str, var: str, hundred: bool = False) -> str:
    """A Plotly template field showing the trace's ``var`` (``x``, ``y``, ``z``, ``customdata[1]``) in ``kind``'s
    chart format (:data:`CHART_FORMATS`): ``hover(MONEY, "y")`` is ``%{y:,.2f}``. ``hundred``: a percent whose
    values are already 0-100 (an axis read in percent), shown with the kind's decimals and its sign:
    ``%{y:.1f} %``."""
    if kind not in CHART_FORMATS:
        raise ValueError(f"kind must be one of {tuple(CHART_FORMATS)}; got {kind!r}")
    if hundred:
        if kind != PERCENT:
            raise ValueError(f"hundred applies to the percent kind only; got {kind!r}")
        return f"%{{{var}:.{DECIMALS[PERCENT]}f}} %"
    return f"%{{{var}:{CHART_FORMATS[kind]}}}"


def axis(kind: str) -> dict:
    """The ticks of a Plotly value axis in ``kind``'s chart format, to pass as the axis's settings or merge into
    them. A count's ticks group thousands without rounding to whole numbers (an axis of 0 to 3 ticks at 0.5, which
    ``,d`` would show as 1, 1, 2). An axis already in percent (0-100) keeps plain ticks: its title says "(%)"."""
    if kind not in CHART_FORMATS:
        raise ValueError(f"kind must be one of {tuple(CHART_FORMATS)}; got {kind!r}")
    return {"tickformat": ",~f" if kind == COUNT else CHART_FORMATS[kind]}


def signed(value, kind: str) -> str:
    """A change (``+1,234.50``, ``-2.5 points``, ``+12.3``): :func:`text` with its sign; :data:`NO_VALUE` when
    missing."""
    if _missing(value):
        return NO_VALUE
    if kind == POINTS:
        return text(value, POINTS)
    shown = text(abs(float(value)), kind)
    return ("-" if float(value) < 0 else "+") + shown


def points(share) -> str:
    """A difference of shares, unsigned, in percentage points: ``11.3 points``."""
    return NO_VALUE if _missing(share) else f"{float(share) * 100:.1f} points"


def count(n) -> str:
    return text(n, COUNT)


def money(v) -> str:
    return text(v, MONEY)


def money_tile(v) -> str:
    """A sum for a tile: :func:`money` below a million, else in millions with the unit written out
    ("1.41 million"), so that the tile shows it whole."""
    if not _missing(v) and abs(float(v)) >= 1_000_000:
        return f"{float(v) / 1_000_000:,.2f} million"
    return money(v)


def percent(share) -> str:
    return text(share, PERCENT)


def days(v) -> str:
    return text(v, DAYS)


def estimate(v) -> str:
    return text(v, ESTIMATE)


def score(v) -> str:
    return text(v, SCORE)


def ratio(v) -> str:
    return text(v, RATIO)


def seconds(v) -> str:
    return text(v, SECONDS)


def table(frame: pd.DataFrame, kinds: dict[str, str], labels: dict[str, str] | None = None
          ) -> tuple[pd.DataFrame, dict[str, tuple[str, str | None]]]:
    """A frame ready for a page's table: ``(frame, {column: (label, printf format or None)})``.

    Percent and points columns (0-1 shares and their differences) are scaled to 0-100 so that the printf format
    can show them; every column is
    labelled (``labels`` first, then :func:`label`); a missing text shows :data:`NO_VALUE`; a float column
    without a kind gets :data:`DECIMAL`, an integer column :data:`COUNT`, so that no bare float and no ungrouped
    count reaches the screen.
    """
    out = frame.copy()
    spec: dict[str, tuple[str, str | None]] = {}
    for col in out.columns:
        kind = kinds.get(col)
        if kind is None and pd.api.types.is_bool_dtype(out[col]):
            kind = None
        elif kind is None and pd.api.types.is_integer_dtype(out[col]):
            kind = COUNT
        elif kind is None and pd.api.types.is_float_dtype(out[col]):
            kind = DECIMAL
        if kind in (PERCENT, POINTS):
            out[col] = pd.to_numeric(out[col], errors="coerce") * 100
        elif kind is None and out[col].dtype == object:  # a table would show a missing text as "None"
            out[col] = out[col].where(out[col].notna(), NO_VALUE)
        shown = (labels or {}).get(col) or label(col)
        spec[col] = (shown, TABLE_FORMATS[kind] if kind else None)
    return out, spec
