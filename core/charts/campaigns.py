"""Plotly figures for the Campaigns page, built from :mod:`core.campaigns.targets` results (no database, no Streamlit)."""
from __future__ import annotations

import plotly.graph_objects as go

from core.errors import ParameterError, SchemaError
from core.present import formats
from core.present.formats import COUNT, ESTIMATE, PERCENT, hover

_LAYOUT = {"template": "plotly_white", "margin": {"l": 10, "r": 10, "t": 60, "b": 10}}
CURVE_COLOUR = "#332288"
RANDOM_COLOUR = "#888888"
CUT_COLOUR = "#CC6677"
COUNT_LABELS = {"matched": "Matched the filters", "suppressed": "Suppressed",
                "not_in_identities": "Not in the identity file", "no_consent": "Without consent",
                "no_identifier": "Without an identifier", "holdout": "Holdout (kept back)", "exported": "Exported"}


def gain_chart(outcome: dict) -> go.Figure:
    """Cumulative gain of ranking all scored shoppers by propensity, the random-list diagonal, and the list's cut.

    Input: :func:`core.campaigns.targets.expected_outcome`'s dict (needs ``gain`` and ``cut``; raises
    ``SchemaError`` naming the key when there is no model behind it). Axes in % of shoppers
    contacted and % of expected buyers captured.
    """
    gain, cut = outcome.get("gain"), outcome.get("cut")
    if gain is None or cut is None:
        raise SchemaError("the outcome has no gain curve (key 'gain'): the list has no propensity; train a model first",
                          column="gain", reason="missing_column")
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=gain["share_contacted"] * 100, y=gain["share_buyers"] * 100, mode="lines",
                             name="Ranked by chance to buy", line={"color": CURVE_COLOUR},
                             hovertemplate=f"top {_pct('x')} of shoppers → {_pct('y')} of expected buyers"
                                           "<extra></extra>"))
    fig.add_trace(go.Scatter(x=[0, 100], y=[0, 100], mode="lines", name="Random list",
                             line={"color": RANDOM_COLOUR, "dash": "dot"}, hoverinfo="skip"))
    x, y = cut["share_contacted"] * 100, cut["share_buyers"] * 100
    fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers+text", name="This list", text=["this list"],
                             textposition="bottom right", marker={"color": CUT_COLOUR, "size": 11},
                             hovertemplate=f"this list: {_pct('x')} of shoppers, {_pct('y')} of expected buyers"
                                           "<extra></extra>"))
    fig.add_vline(x=x, line={"color": CUT_COLOUR, "dash": "dash", "width": 1})
    fig.update_layout(title="Cumulative gain: expected buyers captured vs shoppers contacted",
                      xaxis_title="Shoppers contacted, ranked by propensity (% of all scored)",
                      yaxis_title="Expected buyers captured (%)", xaxis={"range": [0, 100]},
                      yaxis={"range": [0, 100]}, legend_title="", **_LAYOUT)
    return fig


def counts_chart(counts: dict) -> go.Figure:
    """Horizontal bars from the shoppers matched to those exported (``counts`` as in ``TargetList.counts``)."""
    keys = [k for k in COUNT_LABELS if k in counts]
    if not keys:
        raise ParameterError(f"counts have none of the keys {list(COUNT_LABELS)}", parameter="counts",
                             cases=list(counts))
    fig = go.Figure(go.Bar(x=[counts[k] for k in keys], y=[COUNT_LABELS[k] for k in keys], orientation="h",
                           marker={"color": [CUT_COLOUR if k == "exported" else CURVE_COLOUR for k in keys]},
                           text=[formats.count(counts[k]) for k in keys], textposition="auto",
                           hovertemplate=f"%{{y}}: {hover(COUNT, 'x')} shoppers<extra></extra>"))
    fig.update_layout(title="From matched to exported", xaxis_title="Shoppers", yaxis={"autorange": "reversed"},
                      **_LAYOUT)
    return fig


HOLDOUT_COLOUR = "#888888"


def _pct(var: str) -> str:
    """A hover field of a percent already 0-100 (these axes read in percent)."""
    return hover(PERCENT, var, hundred=True)


def results_chart(result: dict) -> go.Figure:
    """Conversion of the exported list and of its holdout, each with its 95 % Wilson interval as error bars.

    Input: :func:`core.campaigns.results.campaign_results`'s dict. Conversion in %.
    """
    groups = [("The list (exported)", "treated", CURVE_COLOUR), ("Holdout (kept back)", "holdout", HOLDOUT_COLOUR)]
    fig = go.Figure()
    for label, key, colour in groups:
        rate, ci = result[f"conversion_{key}"], result[f"conversion_ci_{key}"]
        if rate is None:
            continue
        fig.add_trace(go.Bar(
            x=[label], y=[rate * 100], name=label, marker={"color": colour},
            error_y={"type": "data", "symmetric": False, "array": [(ci[1] - rate) * 100],
                     "arrayminus": [(rate - ci[0]) * 100]},
            text=[formats.percent(rate)], textposition="inside", insidetextanchor="start",
            hovertemplate=(f"{label}: {_pct('y')} of {formats.count(result[key])} shoppers bought (95 % CI "
                           f"{formats.percent(ci[0])} – {formats.percent(ci[1])})<extra></extra>")))
    fig.update_layout(title=f"Conversion by group: shoppers who bought within {result['window_days']} days",
                      yaxis_title="% of the group who bought", showlegend=False, **_LAYOUT)
    return fig


PROPENSITY_COLOUR = "#44AA99"
QINI_TRACES = (("uplift", "Ranked by estimated uplift", CURVE_COLOUR), ("propensity", "Ranked by chance to buy",
                                                                          PROPENSITY_COLOUR))


def qini_chart(report: dict) -> go.Figure:
    """Qini curves of the cross-fitted uplift ranking and of ranking by propensity, beside random targeting.

    Input: :func:`core.campaigns.uplift.fit_uplift`'s report (its ``curves``: per ranking ``share_pct`` and
    ``incremental``). x: share of the campaign's shoppers targeted (%); y: incremental buyers among them.
    """
    curves = report["curves"]
    fig = go.Figure()
    for key, label, colour in QINI_TRACES:
        if key in curves:
            fig.add_trace(go.Scatter(x=curves[key]["share_pct"], y=curves[key]["incremental"], mode="lines",
                                     name=label, line={"color": colour},
                                     hovertemplate=f"{label}: top {_pct('x')} → {hover(ESTIMATE, 'y')} "
                                                   "incremental buyers<extra></extra>"))
    fig.add_trace(go.Scatter(x=curves["random"]["share_pct"], y=curves["random"]["incremental"], mode="lines",
                             name="Random targeting", line={"color": RANDOM_COLOUR, "dash": "dash"}))
    n = report["treated"] + report["holdout"]
    fig.update_layout(title=f"Qini curve: incremental buyers by ranking, {formats.count(n)} shoppers of export "
                            f"#{report['export_id']}",
                      xaxis_title="share of shoppers targeted (%)", yaxis_title="incremental buyers",
                      legend={"orientation": "h", "y": -0.2}, **_LAYOUT)
    return fig
