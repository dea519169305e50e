"""Plotly figures of what moved after a refresh: the segment migration matrix, the chance to buy then and now, and
one shopper's forecasts over time. Each takes what :mod:`core.analysis.migration` and
:mod:`core.analysis.forecast_history` return; no Streamlit here.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core.present import formats, vocabulary
from core.present.formats import COUNT, MONEY, PERCENT, axis, hover

THEN_COLOUR = "#b0b7c3"
NOW_COLOUR = "#1f77b4"
REVENUE_COLOUR = "#ff7f0e"
CHART_HEIGHT = 380
_MARGIN = {"l": 60, "r": 20, "t": 50, "b": 50}


def migration_heatmap(counts: pd.DataFrame, shares: pd.DataFrame, run_from: int | None, run_to: int | None) -> go.Figure:
    """The migration matrix: each cell coloured by its share of the row (earlier segment), labelled with the share
    and the shoppers; rows top to bottom in the matrix's order."""
    text = [[f"{formats.percent(shares.iloc[i, j])}<br>{formats.count(counts.iloc[i, j])}"
             for j in range(counts.shape[1])] for i in range(counts.shape[0])]
    fig = go.Figure(go.Heatmap(
        z=(100 * shares).to_numpy(), x=list(counts.columns), y=list(counts.index), text=text, texttemplate="%{text}",
        colorscale="Blues", zmin=0, zmax=100, colorbar={"title": "% of row"},
        customdata=counts.to_numpy(),
        hovertemplate=(f"%{{y}} → %{{x}}: {hover(COUNT, 'customdata')} shoppers ({hover(PERCENT, 'z', hundred=True)} "
                       "of the row)<extra></extra>"),
    ))
    fig.update_layout(title="Where each segment's shoppers went", height=max(CHART_HEIGHT, 60 * len(counts) + 120),
                      margin={**_MARGIN, "l": 180}, xaxis_title=f"Segment in the later run ({run_to})",
                      yaxis_title=f"Segment in the earlier run ({run_from})")
    fig.update_yaxes(autorange="reversed")
    return fig


def propensity_then_now(bins: pd.DataFrame, horizon_days: int, then_label: str, now_label: str) -> go.Figure:
    """Overlaid bars of the share of shoppers in each chance-to-buy band, earlier scoring and later scoring."""
    fig = go.Figure()
    for col, name, colour in (("share_then", then_label, THEN_COLOUR), ("share_now", now_label, NOW_COLOUR)):
        fig.add_bar(x=bins["label"], y=100 * bins[col], name=name, marker_color=colour, opacity=0.75,
                    hovertemplate=f"%{{x}}: {hover(PERCENT, 'y', hundred=True)} of shoppers<extra>{name}</extra>")
    fig.update_layout(title=f"{vocabulary.chance_to_buy(horizon_days)}: then and now", barmode="overlay",
                      height=CHART_HEIGHT, margin=_MARGIN, legend={"orientation": "h", "y": -0.3})
    fig.update_xaxes(title_text=f"{vocabulary.chance_to_buy(horizon_days)} (%)")
    fig.update_yaxes(title_text="Shoppers (% of the scoring)")
    return fig


def forecast_history_chart(history: pd.DataFrame) -> go.Figure:
    """One shopper's chance to buy (left axis, %) and expected revenue (right axis) at each scoring's as-of time."""
    when = history["as_of"].fillna(history["scored_at"])
    scoring = history["model_version"].astype(str) + " · " + history["kind"].astype(str)
    horizons = history["horizon_days"].dropna().unique()
    horizon = int(horizons[0]) if len(horizons) == 1 else None
    chance = vocabulary.chance_to_buy(horizon) if horizon else "Chance to buy within the model's horizon"
    revenue = vocabulary.expected_revenue(horizon) if horizon else "Expected revenue within the model's horizon"
    fig = go.Figure()
    fig.add_scatter(x=when, y=100 * history["purchase_propensity"], mode="lines+markers", name=chance,
                    marker_color=NOW_COLOUR, text=scoring,
                    hovertemplate=f"%{{x}}: {hover(PERCENT, 'y', hundred=True)}<br>%{{text}}<extra></extra>")
    if history["expected_revenue"].notna().any():
        fig.add_scatter(x=when, y=history["expected_revenue"], mode="lines+markers", name=revenue, yaxis="y2",
                        marker_color=REVENUE_COLOUR, text=scoring,
                        hovertemplate=f"%{{x}}: {hover(MONEY, 'y')}<br>%{{text}}<extra></extra>")
    fig.update_layout(title="This shopper's forecasts at each scoring", height=CHART_HEIGHT, margin={**_MARGIN, "r": 70},
                      legend={"orientation": "h", "y": -0.3},
                      yaxis2={"title": "Expected revenue (the file's currency)", "overlaying": "y", "side": "right",
                              "rangemode": "tozero", **axis(MONEY)})
    fig.update_xaxes(title_text="Data up to (as-of time, UTC)")
    fig.update_layout(yaxis={"title": f"{chance} (%)", "rangemode": "tozero"})
    return fig
