"""Plotly figures for the Segments and Shopper pages, built from :mod:`core.analysis.segments` and :mod:`core.analysis.rfm` results.

No builder reads the database or Streamlit; each figure has a title and axis titles that
state the unit, so tests can inspect them directly.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core.charts.overview import EVENT_COLOURS, UNKNOWN_COLOUR
from core.errors import ParameterError, SchemaError
from core.present import formats
from core.present.formats import COUNT, DECIMAL, MONEY, PERCENT, hover

#: Qualitative palette for segments (Plotly's "Safe" colours: readable for colour-blind eyes).
SEGMENT_COLOURS = ("#88CCEE", "#CC6677", "#DDCC77", "#117733", "#332288", "#AA4499", "#44AA99", "#999933",
                   "#882255", "#661100", "#6699CC", "#888888")
_LAYOUT = {"template": "plotly_white", "margin": {"l": 10, "r": 10, "t": 60, "b": 10}}


def segment_colour(segment: int) -> str:
    """The colour of segment number ``segment`` in every chart."""
    return SEGMENT_COLOURS[int(segment) % len(SEGMENT_COLOURS)]


def segment_map(points: dict, names: dict[int, str]) -> go.Figure:
    """2-D map of shoppers: the first two principal components of the scaled features, one trace per segment.

    Inputs: ``points`` as stored with a run (``user_id``, ``x``, ``y``, ``segment``,
    ``explained_variance``, ``n_shoppers``) and segment number → name. Raises
    ``SchemaError`` when a key is missing.
    """
    missing = [k for k in ("user_id", "x", "y", "segment") if k not in points]
    if missing:
        raise SchemaError(f"segment map points lack {missing}; expected keys user_id, x, y, segment.",
                          column=missing[0], cases=missing, reason="missing_column")
    frame = pd.DataFrame({k: points[k] for k in ("user_id", "x", "y", "segment")})
    ev = list(points.get("explained_variance", [])) + [0.0, 0.0]
    fig = go.Figure()
    for seg in sorted(frame["segment"].unique()):
        part = frame[frame["segment"] == seg]
        fig.add_trace(go.Scattergl(
            x=part["x"], y=part["y"], mode="markers", name=names.get(int(seg), f"segment {seg}"),
            marker={"size": 5, "opacity": 0.7, "color": segment_colour(seg)}, customdata=part["user_id"],
            hovertemplate="shopper %{customdata}<extra>%{fullData.name}</extra>",
        ))
    shown, total = len(frame), int(points.get("n_shoppers", len(frame)))
    sample = (f"{formats.count(shown)} of {formats.count(total)} shoppers (seeded sample)" if shown < total
              else f"all {formats.count(total)} shoppers")
    fig.update_layout(
        title=f"Map of shoppers by segment: {sample}",
        xaxis_title=f"Principal component 1 ({formats.percent(ev[0])} of the scaled features' variance)",
        yaxis_title=f"Principal component 2 ({formats.percent(ev[1])} of the variance)",
        legend_title="Segment", **_LAYOUT,
    )
    return fig


def _pct(var: str) -> str:
    """A hover field of a percent already 0-100 (these axes read in percent)."""
    return hover(PERCENT, var, hundred=True)


def segment_sizes(profiles: list[dict]) -> go.Figure:
    """Share of shoppers beside share of revenue for every segment (grouped horizontal bars, in %)."""
    names = [p["name"] for p in profiles]
    fig = go.Figure([
        go.Bar(y=names, x=[100 * p["share_shoppers"] for p in profiles], orientation="h", name="Shoppers",
               marker_color="#4C78A8", hovertemplate=f"%{{y}}: {_pct('x')} of shoppers<extra></extra>"),
        go.Bar(y=names, x=[100 * (p["share_revenue"] or 0.0) for p in profiles], orientation="h", name="Revenue",
               marker_color="#54A24B", hovertemplate=f"%{{y}}: {_pct('x')} of revenue<extra></extra>"),
    ])
    fig.update_layout(title="Segments: share of shoppers and of revenue", barmode="group",
                      xaxis_title="Share (%)", yaxis_title="Segment", yaxis={"autorange": "reversed"}, **_LAYOUT)
    return fig


def segment_comparison(profiles: list[dict], segments: list[int]) -> go.Figure:
    """Side-by-side centres of the chosen segments: each feature's difference from the average shopper.

    Inputs: the run's profiles and the segment numbers to compare (one trace each). The
    values are the segment centres in standard deviations of each feature (0 = the average
    shopper). Raises ``ParameterError`` for a segment number not in ``profiles``.
    """
    by_seg = {p["segment"]: p for p in profiles}
    unknown = [s for s in segments if s not in by_seg]
    if unknown:
        raise ParameterError(f"segment(s) {unknown} not in this run; expected some of {sorted(by_seg)}.",
                             parameter="segments", cases=unknown)
    fig = go.Figure()
    for s in segments:
        centre = by_seg[s]["center"]
        fig.add_trace(go.Bar(y=[formats.label(f) for f in centre], x=list(centre.values()), orientation="h",
                             name=by_seg[s]["name"],
                             marker_color=segment_colour(s),
                             hovertemplate=f"%{{y}}: {hover(DECIMAL, 'x')} standard deviations"
                                           "<extra>%{fullData.name}</extra>"))
    fig.update_layout(title="Segment comparison: how each differs from the average shopper", barmode="group",
                      xaxis_title="Difference from the average shopper (standard deviations of the feature)",
                      yaxis_title="Feature", yaxis={"autorange": "reversed"}, height=max(400, 22 * len(
                          by_seg[segments[0]]["center"]) if segments else 400), **_LAYOUT)
    return fig


def rfm_heatmap(grid: pd.DataFrame) -> go.Figure:
    """The R × FM grid of :func:`core.analysis.rfm.grid` as a heat map of shoppers, each cell labelled with its group."""
    z = grid.pivot(index="r_score", columns="fm_score", values="shoppers").sort_index(ascending=False)
    label = grid.pivot(index="r_score", columns="fm_score", values="rfm_group").sort_index(ascending=False)
    text = [[f"{label.loc[r, f]}<br>{formats.count(z.loc[r, f])}" for f in z.columns] for r in z.index]
    fig = go.Figure(go.Heatmap(
        z=z.to_numpy(), x=[str(c) for c in z.columns], y=[str(r) for r in z.index], text=text,
        texttemplate="%{text}", colorscale="Blues", colorbar={"title": "Shoppers"},
        hovertemplate=f"R %{{y}}, FM %{{x}}: {hover(COUNT, 'z')} shoppers<extra></extra>",
    ))
    fig.update_layout(title="RFM grid: buyers by recency score and frequency-monetary score",
                      xaxis_title="FM score (1 = fewest orders and lowest spend, 5 = most)",
                      yaxis_title="R score (1 = longest since the last purchase, 5 = most recent)", **_LAYOUT)
    return fig


def shopper_timeline(events: pd.DataFrame) -> go.Figure:
    """One shopper's events over time: one marker per event, a row per event type, coloured by type.

    Input: the shopper's events (``event_time``, ``event_type``, ``item_id``, ``category``,
    ``brand``, ``price``, ``session_id``).
    """
    fig = go.Figure()
    for kind, part in events.groupby("event_type", sort=False):
        detail = (part["category"].fillna("—").astype(str) + " · " + part["brand"].fillna("—").astype(str)
                  + " · item " + part["item_id"].fillna("—").astype(str) + " · session "
                  + part["session_id"].fillna("—").astype(str))
        fig.add_trace(go.Scatter(
            x=part["event_time"], y=[formats.event_type(kind)] * len(part), mode="markers", name=formats.event_type(kind),
            marker={"size": 9, "color": EVENT_COLOURS.get(str(kind), UNKNOWN_COLOUR)}, text=detail,
            customdata=part["price"], hovertemplate=f"%{{x}}<br>%{{text}}<br>price {hover(MONEY, 'customdata')}"
                                                    "<extra></extra>",
        ))
    fig.update_layout(title=f"Timeline: {formats.count(len(events))} events", xaxis_title="Time (UTC)",
                      yaxis_title="Event type", **_LAYOUT)
    return fig


def shopper_sessions(sessions: pd.DataFrame) -> go.Figure:
    """One shopper's sessions: events per session at the session's start, purchase sessions highlighted."""
    bought = sessions["purchases"] > 0
    # lollipops, not bars: on a date axis Plotly sizes bars by the smallest gap between two
    # sessions, which leaves hairlines for a shopper with two visits minutes apart
    fig = go.Figure()
    for mask, name, colour in ((~bought, "No purchase", "#4C78A8"), (bought, "With a purchase", "#54A24B")):
        part = sessions.loc[mask]
        fig.add_trace(go.Scatter(
            x=part["start"], y=part["events"], name=name, mode="markers", marker={"size": 10, "color": colour},
            error_y={"type": "data", "symmetric": False, "array": [0] * len(part), "arrayminus": part["events"],
                     "width": 0, "color": colour, "thickness": 2},
            hovertemplate=f"%{{x}}: {hover(COUNT, 'y')} events<extra></extra>",
        ))
    fig.update_layout(title=f"Sessions: {formats.count(len(sessions))} visits", xaxis_title="Session start (UTC)",
                      yaxis_title="Events in the session", yaxis_rangemode="tozero", **_LAYOUT)
    return fig


def shopper_vs_segment(comparison: pd.DataFrame, dimension: str) -> go.Figure:
    """The shopper's shares beside their segment's and everyone's (grouped bars, in % of events).

    Input: a frame with ``name``, ``shopper``, ``segment`` and ``everyone`` shares (0..1);
    ``dimension`` names what the rows are ("category group", "price band").
    """
    fig = go.Figure()
    for col, colour, label in (("shopper", "#F58518", "This shopper"), ("segment", "#4C78A8", "Their segment"),
                               ("everyone", "#BAB0AC", "Everyone")):
        if col in comparison:
            fig.add_trace(go.Bar(x=comparison["name"], y=100 * comparison[col].fillna(0.0), name=label,
                                 marker_color=colour, hovertemplate=f"%{{x}}: {_pct('y')}<extra>{label}</extra>"))
    fig.update_layout(title=f"Preferences by {dimension}: the shopper, their segment and everyone", barmode="group",
                      xaxis_title=dimension.capitalize(), yaxis_title="Share of events (%)", **_LAYOUT)
    return fig
