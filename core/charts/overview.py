"""Plotly figures for the overview, built from the small frames of :mod:`core.analysis.queries`.

Each builder takes a query result and returns a ``plotly.graph_objects.Figure`` with a
title and axis titles that state the unit; none reads the database or Streamlit, so tests
can inspect the figures directly.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core import config
from core.errors import CartsightError
from core.analysis.queries import FUNNEL_UNITS
from core.analysis.product_queries import TOP_MEASURES, PriceDistribution
from core.present import formats
from core.present.formats import COUNT, MONEY, PERCENT, axis, hover

#: One colour per canonical event type, so every chart paints a type the same way.
EVENT_COLOURS = {
    "view": "#4C78A8",
    "cart": "#F58518",
    "remove_from_cart": "#E45756",
    "purchase": "#54A24B",
    "wishlist": "#B279A2",
}
#: Colour of event types the file had that are not canonical.
UNKNOWN_COLOUR = "#9D9D9D"
MEASURE_AXIS = {
    "views": "Views (events)",
    "purchases": "Purchases (events)",
    "revenue": "Revenue (currency of the file)",
}
UNIT_AXIS = {"shopper": "Shoppers", "session": "Sessions"}
ACTIVITY_GRAINS = ("day", "hour")
CURRENCY_NOTE = "currency of the file"
_LAYOUT = {"template": "plotly_white", "margin": {"l": 10, "r": 10, "t": 60, "b": 10}}


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise CartsightError(f"Parameter {name!r} is {value!r}; expected one of {list(allowed)}.")


def funnel_chart(funnel: pd.DataFrame, by: str = "shopper") -> go.Figure:
    """Funnel view → cart → purchase from :func:`core.analysis.queries.funnel`.

    Inputs: the funnel frame (``step``, ``count``) and the unit it was counted in
    (``"shopper"`` or ``"session"``). Returns a figure with one ``Funnel`` trace whose
    labels show the count, the share of the first step and of the previous step.
    Raises :class:`CartsightError` for an unknown ``by``.
    """
    _check("by", by, FUNNEL_UNITS)
    unit = UNIT_AXIS[by]
    fig = go.Figure(
        go.Funnel(
            y=[str(s).replace("_", " ").capitalize() for s in funnel["step"]],
            x=funnel["count"].tolist(),
            texttemplate=(
                f"{hover(COUNT, 'value')}<br>{hover(PERCENT, 'percentInitial')} of the first step<br>"
                f"{hover(PERCENT, 'percentPrevious')} of the previous"
            ),
            hovertemplate=f"%{{y}}: {hover(COUNT, 'x')} {unit.lower()}<extra></extra>",
            marker={"color": [EVENT_COLOURS.get(s, UNKNOWN_COLOUR) for s in funnel["step"]]},
        )
    )
    fig.update_layout(
        title=f"Funnel view → cart → purchase ({unit.lower()} reaching each step)",
        xaxis_title=unit,
        yaxis_title="Step",
        **_LAYOUT,
    )
    return fig


def _type_order(types: list[str]) -> list[str]:
    """Canonical event types in their funnel order, then the file's other types by name."""
    known = [t for t in config.EVENT_TYPES if t in types]
    return known + sorted(t for t in types if t not in config.EVENT_TYPES)


def activity_chart(activity: pd.DataFrame) -> go.Figure:
    """Events over time, stacked by event type, from :func:`core.analysis.queries.daily_activity`
    (column ``day``) or :func:`core.analysis.queries.hourly_activity` (column ``hour``).

    Returns a figure with one ``Bar`` trace per event type present (canonical types first,
    unknown types after, in grey), x = the day or hour (UTC), y = events in it.
    Raises :class:`CartsightError` when the frame has neither a ``day`` nor an ``hour`` column.
    """
    grain = next((g for g in ACTIVITY_GRAINS if g in activity.columns), None)
    if grain is None:
        raise CartsightError(
            f"The activity frame has columns {list(activity.columns)}; expected one named 'day' or 'hour'."
        )
    tick = "%Y-%m-%d" if grain == "day" else "%Y-%m-%d %H:00"
    fig = go.Figure()
    for event_type in _type_order(activity["event_type"].unique().tolist()):
        part = activity[activity["event_type"] == event_type]
        fig.add_trace(
            go.Bar(
                x=part[grain].tolist(),
                y=part["events"].tolist(),
                name=event_type.replace("_", " "),
                marker_color=EVENT_COLOURS.get(event_type, UNKNOWN_COLOUR),
                hovertemplate=f"%{{x|{tick}}}: {hover(COUNT, 'y')} events<extra>%{{fullData.name}}</extra>",
            )
        )
    fig.update_layout(
        title="Activity over time by event type",
        barmode="stack",
        xaxis_title=f"{grain.capitalize()} (UTC)",
        yaxis_title=f"Events per {grain}",
        yaxis=axis(COUNT),
        legend_title="Event type",
        **_LAYOUT,
    )
    return fig


def top_chart(top: pd.DataFrame, dimension: str, by: str = "views") -> go.Figure:
    """Horizontal bars of a top-N frame from :func:`core.analysis.queries.top_categories` / ``top_brands``.

    Inputs: the frame (``name``, the measure column, ``shoppers``), the dimension's display
    name (``"Category"``, ``"Brand"``) and the measure ranked by (``views``, ``purchases``,
    ``revenue``). Returns a figure with one ``Bar`` trace, best at the top; hovering a bar
    shows the shoppers behind the figure. Raises :class:`CartsightError` for an unknown ``by``.
    """
    _check("by", by, TOP_MEASURES)
    behind = "viewers" if by == "views" else "buyers"
    kind = MONEY if by == "revenue" else COUNT
    fig = go.Figure(
        go.Bar(
            x=top[by].tolist(),
            y=top["name"].tolist(),
            orientation="h",
            customdata=top["shoppers"].tolist(),
            marker_color=EVENT_COLOURS["purchase" if by != "views" else "view"],
            hovertemplate=f"%{{y}}: {hover(kind, 'x')} from {hover(COUNT, 'customdata')} {behind}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Top {len(top)} {_plural(dimension)} by {by}",
        xaxis_title=MEASURE_AXIS[by],
        xaxis=axis(kind),
        yaxis_title=dimension,
        yaxis={"autorange": "reversed", "type": "category"},
        **_LAYOUT,
    )
    return fig


def _plural(noun: str) -> str:
    lower = noun.lower()
    return lower[:-1] + "ies" if lower.endswith("y") else lower + "s"


def price_histogram(distribution: PriceDistribution) -> go.Figure:
    """Histogram of unit prices from :func:`core.analysis.queries.price_distribution`.

    Returns a figure with one ``Bar`` trace, one bar per 1-2-5 price bin (labels such as
    ``"10–20"``) and the events in it; the median is named in the title when known.
    """
    bins = distribution.bins
    median = distribution.summary.get("p50")
    title = "Price distribution (events per unit-price band)"
    if median is not None:
        title += f", median {formats.money(median)}"
    fig = go.Figure(
        go.Bar(
            x=bins["label"].tolist(),
            y=bins["events"].tolist(),
            marker_color=EVENT_COLOURS["view"],
            hovertemplate=f"price %{{x}}: {hover(COUNT, 'y')} events<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title=f"Unit price ({CURRENCY_NOTE}), bands on a 1-2-5 log scale",
        yaxis_title="Events",
        xaxis={"type": "category"},
        yaxis=axis(COUNT),
        bargap=0.05,
        **_LAYOUT,
    )
    return fig
