"""Plotly figures for the Preferences page, built from the small frames of :mod:`core.analysis.preferences`.

Each builder takes a query result and returns a ``plotly.graph_objects.Figure`` with a title
and axis titles that state the unit; none reads the database or Streamlit, so tests can
inspect the figures directly. Figures with few shoppers behind them are marked: grey bars
labelled "few shoppers", heat-map cells with an asterisk and a hover note.
"""
from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from core import config
from core.errors import CartsightError
from core.analysis.preferences import DIMENSIONS
from core.present import formats
from core.present.formats import COUNT, PERCENT, RATIO, axis, hover

DIMENSION_LABELS = {"category": "Category", "brand": "Brand", "price_band": "Price band"}
MEASURES = ("events", "revenue")
#: Group bars, everyone's bars, and bars with too few shoppers behind them.
GROUP_COLOUR = "#4C78A8"
EVERYONE_COLOUR = "#BAB0AC"
FEW_COLOUR = "#D9D9D9"
FEW_LABEL = "few shoppers"
FEW_MARK = "*"
#: Diverging colours for affinity: below 1 (less than everyone) red, above 1 blue.
AFFINITY_COLOURSCALE = "RdBu"
EVERYONE = "Everyone"
_LAYOUT = {"template": "plotly_white", "margin": {"l": 10, "r": 10, "t": 60, "b": 10}}
#: Bar charts grow with their rows (pixels per value, plus room for title and axis), within bounds.
ROW_PX = 28
FRAME_PX = 140
MIN_HEIGHT_PX = 300


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise CartsightError(f"Parameter {name!r} is {value!r}; expected one of {list(allowed)}.")


def _number(value: float) -> float | None:
    """A JSON-friendly number: NaN becomes None (a gap in the chart)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def affinity_heatmap(matrix: pd.DataFrame, dimension: str = "category",
                     min_shoppers: int = config.PREFERENCES_MIN_SHOPPERS) -> go.Figure:
    """Value × segment heat map of the affinity index from :func:`core.analysis.preferences.affinity_matrix`.

    Inputs: the long matrix frame (``segment``, ``segment_name``, ``value``, ``affinity``,
    ``share_events``, ``shoppers``, ``events``), the dimension it was computed for, and the
    shopper count under which a cell is marked. Returns a figure with one ``Heatmap`` trace:
    x = segments ("0 · name"), y = values in the frame's order, z = affinity (share in the
    segment ÷ share in everyone), diverging colours centred at 1.0 (0 to
    ``config.AFFINITY_COLOUR_MAX``; higher saturates), each cell labelled with its affinity and
    an asterisk when fewer than ``min_shoppers`` shoppers are behind it; hovering a cell shows
    the shoppers, events and share behind it. Raises :class:`CartsightError` for an unknown dimension.
    """
    _check("dimension", dimension, DIMENSIONS)
    label = DIMENSION_LABELS[dimension]
    segments = matrix[["segment", "segment_name"]].drop_duplicates().sort_values("segment")
    x = [f"{s} · {n}" for s, n in zip(segments["segment"], segments["segment_name"])]
    y = list(dict.fromkeys(matrix["value"].tolist()))
    cells = matrix.set_index(["segment", "value"])
    z, text, custom = [], [], []
    for value in y:
        z_row, text_row, custom_row = [], [], []
        for segment in segments["segment"]:
            cell = cells.loc[(segment, value)]
            aff = _number(cell["affinity"])
            few = int(cell["shoppers"]) < min_shoppers
            z_row.append(aff)
            text_row.append(("–" if aff is None else formats.ratio(aff)) + (FEW_MARK if few else ""))
            custom_row.append([
                int(cell["shoppers"]), int(cell["events"]), _number(cell["share_events"]) or 0.0,
                f" ({FEW_LABEL}: read with care)" if few else "",
            ])
        z.append(z_row)
        text.append(text_row)
        custom.append(custom_row)
    fig = go.Figure(
        go.Heatmap(
            z=z, x=x, y=y, text=text, texttemplate="%{text}", customdata=custom,
            colorscale=AFFINITY_COLOURSCALE, zmid=1.0, zmin=0.0, zmax=config.AFFINITY_COLOUR_MAX,
            colorbar={"title": {"text": "Affinity<br>(1 = as everyone)"}},
            hovertemplate=(
                f"Segment %{{x}}<br>{label} %{{y}}<br>Affinity ×{hover(RATIO, 'z')}<br>"
                f"{hover(PERCENT, 'customdata[2]')} of the segment's events ({hover(COUNT, 'customdata[1]')})<br>"
                f"{hover(COUNT, 'customdata[0]')} shoppers behind it%{{customdata[3]}}<extra></extra>"
            ),
            xgap=1, ygap=1,
        )
    )
    fig.update_layout(
        title=f"{label} affinity by segment (share in the segment ÷ share in everyone; "
              f"{FEW_MARK} fewer than {min_shoppers} shoppers)",
        xaxis_title="Segment",
        yaxis_title=label,
        xaxis={"type": "category"},
        yaxis={"autorange": "reversed", "type": "category"},
        **_LAYOUT,
    )
    return fig


def _group_bars(frame: pd.DataFrame, values: list[str], measure: str, group_label: str, word: str,
                min_shoppers: int) -> go.Bar:
    """The group's bars: share of its ``word``, grey and labelled where too few shoppers (or buyers) are behind."""
    affinity = "affinity" if measure == "events" else "revenue_affinity"
    behind = "shoppers" if measure == "events" else "buyers"
    few = (frame[behind] < min_shoppers).tolist()
    return go.Bar(
        name=group_label,
        x=[_number(v) for v in frame[f"share_{measure}"]],
        y=values,
        orientation="h",
        marker_color=[FEW_COLOUR if f else GROUP_COLOUR for f in few],
        text=[FEW_LABEL if f else "" for f in few],
        textposition="inside",
        insidetextanchor="start",
        customdata=[[_number(a), int(n)] for a, n in zip(frame[affinity], frame[behind])],
        hovertemplate=(
            f"%{{y}}: {hover(PERCENT, 'x')} of {group_label}'s {word}<br>affinity ×{hover(RATIO, 'customdata[0]')}"
            f"<br>{hover(COUNT, 'customdata[1]')} {behind} behind it<extra>{group_label}</extra>"
        ),
    )


def _everyone_bars(frame: pd.DataFrame, values: list[str], measure: str, word: str) -> go.Bar:
    """Everyone's bars beside a segment's or a shopper's: the same share over all shoppers."""
    behind = "shoppers" if measure == "events" else "buyers"
    return go.Bar(
        name=EVERYONE,
        x=[_number(v) for v in frame[f"share_{measure}_all"]],
        y=values,
        orientation="h",
        marker_color=EVERYONE_COLOUR,
        customdata=[int(n) for n in frame[f"{behind}_all"]],
        hovertemplate=f"%{{y}}: {hover(PERCENT, 'x')} of everyone's {word}<br>{hover(COUNT, 'customdata')} {behind}"
                      f"<extra>{EVERYONE}</extra>",
    )


def share_chart(frame: pd.DataFrame, dimension: str, group_label: str = EVERYONE, measure: str = "events",
                measure_label: str | None = None, title: str | None = None,
                min_shoppers: int = config.PREFERENCES_MIN_SHOPPERS) -> go.Figure:
    """Horizontal bars of a group's share by category, brand or price band, beside everyone's.

    Inputs: a frame from :func:`core.analysis.preferences.preferences` or ``drilldown``; the dimension;
    the group's display name (``"Everyone"`` draws one series only); ``measure`` ``"events"``
    (share of events) or ``"revenue"`` (share of revenue); ``measure_label`` the word for the
    counted events in the title ("views" when only views count; ignored for revenue); an
    optional title; ``min_shoppers``, under which a bar is marked.
    Returns a figure with the group's bars (grey and labelled "few shoppers" where fewer than
    ``min_shoppers`` shoppers, or buyers for revenue, are behind the figure) and, for a segment
    or a shopper, everyone's bars beside them;
    x = share as a percentage of the group's total, y = values in the frame's order. Hovering
    a bar shows the share, the affinity and the shoppers behind it.
    Raises :class:`CartsightError` for an unknown dimension or measure.
    """
    _check("dimension", dimension, DIMENSIONS)
    _check("measure", measure, MEASURES)
    label = DIMENSION_LABELS[dimension]
    word = (measure_label or measure) if measure == "events" else "revenue"
    values = [str(v) for v in frame["value"]]
    fig = go.Figure()
    fig.add_trace(_group_bars(frame, values, measure, group_label, word, min_shoppers))
    if group_label != EVERYONE:
        fig.add_trace(_everyone_bars(frame, values, measure, word))
    fig.update_layout(
        # the legend above the plot: in a narrow column a legend inside the plot hides the top bars
        title=title or f"{label} share of {word} — {group_label}",
        barmode="group",
        xaxis_title=f"Share of {word} (%)",
        yaxis_title=label,
        xaxis={**axis(PERCENT), "rangemode": "tozero"},
        yaxis={"autorange": "reversed", "type": "category", "automargin": True},
        legend={"title": {"text": "Group"}, "orientation": "h", "yanchor": "bottom", "y": 1.01, "x": 0},
        title_y=0.97,
        height=max(MIN_HEIGHT_PX, FRAME_PX + ROW_PX * len(values) * (1 if group_label == EVERYONE else 2)),
        **{**_LAYOUT, "margin": {**_LAYOUT["margin"], "t": 110}},  # room for the title above the legend
    )
    return fig
