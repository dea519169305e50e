"""Plotly figures of the model card: lift, calibration, cumulative gain, loss curve, metrics beside baselines.

Each function takes the plain lists/dicts stored in a ``ModelCard`` (so a card read back
from JSON draws the same) and returns a ``plotly.graph_objects.Figure`` with labelled
axes and units. No Streamlit here: pages render the figures.
"""
from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from core.present import formats
from core.present.formats import COUNT, PERCENT, RATIO, SCORE, hover

#: Colours: the forecast in use, the other forecasts, reference lines.
USED_COLOUR = "#1f77b4"
OTHER_COLOUR = "#b0b7c3"
VALID_COLOUR = "#ff7f0e"
REFERENCE_COLOUR = "#888888"
#: Height (px) of every model-card chart.
CHART_HEIGHT = 360
#: Plain-words name and direction of each metric a head is judged by.
METRIC_LABELS = {
    "roc_auc": ("ROC-AUC (0.5 = random, 1 = perfect)", True),
    "pr_auc": ("PR-AUC (average precision)", True),
    "log_loss": ("Log loss (lower is better)", False),
    "accuracy": ("Accuracy of the likeliest type", True),
    "accuracy@1": ("Accuracy@1 (right first guess)", True),
    "accuracy@5": ("Accuracy@5 (right in the top 5)", True),
    "ndcg@10": ("NDCG@10 (1 = right item first)", True),
}


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(title=title, height=CHART_HEIGHT, margin={"l": 60, "r": 20, "t": 50, "b": 50},
                      legend={"orientation": "h", "y": -0.25})
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title)
    return fig


def lift_chart(lift: Sequence[dict]) -> go.Figure:
    """Bars of lift per score decile (1 = the top 10 % of forecasts) with the line lift = 1 (no model).

    ``lift``: rows with ``decile`` and ``lift`` (and ``rate``), as ``evaluation.lift_by_decile`` gives.
    The deciles are categories in decile order, top decile first (never an axis sorted by value).
    """
    rows = sorted(lift, key=lambda r: int(r["decile"]))
    deciles = [str(int(r["decile"])) for r in rows]
    values = [r["lift"] for r in rows]
    rates = [r.get("rate") for r in rows]
    fig = go.Figure(go.Bar(
        x=deciles, y=values, marker_color=USED_COLOUR, name="lift",
        customdata=[[100 * (r or 0)] for r in rates],
        hovertemplate=(f"decile %{{x}}<br>lift {hover(RATIO, 'y')}×<br>purchase rate "
                       f"{hover(PERCENT, 'customdata[0]', hundred=True)}<extra></extra>"),
    ))
    fig.add_hline(y=1.0, line_dash="dash", line_color=REFERENCE_COLOUR, annotation_text="no model (lift 1)")
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=deciles)
    return _layout(fig, "Lift by decile (held-out window)",
                   "Score decile (1 = top 10 % of forecasts)", "Lift (× the overall purchase rate)")


def calibration_chart(calibration: Sequence[dict], outcome: str = "purchase") -> go.Figure:
    """Observed rate against the forecast, per probability bin, with the diagonal of perfect calibration.

    ``calibration``: rows with ``mean_predicted``, ``observed_rate`` and ``n``; ``outcome``: what is
    forecast, in the axis titles ("purchase", "no activity").
    """
    x = [100 * r["mean_predicted"] for r in calibration]
    y = [100 * r["observed_rate"] for r in calibration]
    n = [int(r["n"]) for r in calibration]
    top = max([100.0, *x, *y]) if calibration else 100.0
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="perfectly calibrated",
                             line={"dash": "dash", "color": REFERENCE_COLOUR}, hoverinfo="skip"))
    fig.add_trace(go.Scatter(
        x=x, y=y, mode="lines+markers", name="forecast in use", line={"color": USED_COLOUR},
        marker={"size": [6 + min(n_i, 400) ** 0.5 for n_i in n]}, customdata=n,
        hovertemplate=(f"forecast {hover(PERCENT, 'x', hundred=True)}<br>observed {hover(PERCENT, 'y', hundred=True)}"
                       f"<br>{hover(COUNT, 'customdata')} shoppers<extra></extra>"),
    ))
    fig.update_xaxes(range=[0, top])
    fig.update_yaxes(range=[0, top])
    return _layout(fig, "Calibration (held-out window)", f"Forecast {outcome} probability (%)",
                   f"Observed {outcome} rate (%)")


def gain_chart(lift: Sequence[dict]) -> go.Figure:
    """Cumulative gain: share of buyers reached when contacting the top-scored share of shoppers.

    ``lift``: rows with ``cum_share`` and ``cum_gain`` (``evaluation.lift_by_decile``).
    """
    x = [0.0] + [100 * r["cum_share"] for r in lift]
    y = [0.0] + [100 * (r["cum_gain"] if r["cum_gain"] == r["cum_gain"] else 0.0) for r in lift]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 100], y=[0, 100], mode="lines", name="random order",
                             line={"dash": "dash", "color": REFERENCE_COLOUR}, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name="forecast in use", line={"color": USED_COLOUR},
                             hovertemplate=f"top {hover(PERCENT, 'x', hundred=True)} of shoppers<br>"
                                           f"{hover(PERCENT, 'y', hundred=True)} of buyers<extra></extra>"))
    fig.update_xaxes(range=[0, 100])
    fig.update_yaxes(range=[0, 100])
    return _layout(fig, "Cumulative gain (held-out window)", "Shoppers contacted, best forecasts first (%)",
                   "Buyers reached (%)")


_LOSS_HOVER = f"step {hover(COUNT, 'x')}: loss {hover(SCORE, 'y')}<extra>%{{fullData.name}}</extra>"


def loss_chart(points: Sequence[dict]) -> go.Figure:
    """Training and validation loss against the training step.

    ``points``: rows with ``step``, ``train_loss`` and ``valid_loss`` (either may be None),
    as the card's ``loss_curve`` or the live progress reports hold them.
    """
    train = [(p["step"], p["train_loss"]) for p in points if p.get("train_loss") is not None]
    valid = [(p["step"], p["valid_loss"]) for p in points if p.get("valid_loss") is not None]
    fig = go.Figure()
    if train:
        fig.add_trace(go.Scatter(x=[s for s, _ in train], y=[v for _, v in train], mode="lines+markers",
                                 name="training loss", line={"color": USED_COLOUR}, hovertemplate=_LOSS_HOVER))
    if valid:
        fig.add_trace(go.Scatter(x=[s for s, _ in valid], y=[v for _, v in valid], mode="lines+markers",
                                 name="validation loss", line={"color": VALID_COLOUR}, hovertemplate=_LOSS_HOVER))
    return _layout(fig, "Loss curve", "Training step (batches)", "Loss (weighted sum of the heads' losses)")


def metrics_chart(metrics: dict[str, dict], key: str, used: str, labels: dict[str, str] | None = None,
                  title: str | None = None) -> go.Figure:
    """Horizontal bars of one metric for the model and each baseline; the forecast in use is coloured.

    ``metrics`` maps a forecast name to its metrics dict (a head's ``metrics`` in the card);
    forecasts whose ``key`` is None are left out. ``labels`` maps names to the words shown.
    The first forecast is drawn at the top.
    """
    labels = labels or {}
    names = [n for n, m in metrics.items() if m.get(key) is not None]
    values = [metrics[n][key] for n in names]
    axis_title, _ = METRIC_LABELS.get(key, (key, True))
    fig = go.Figure(go.Bar(
        x=values, y=[labels.get(n, n) for n in names], orientation="h", text=[formats.score(v) for v in values],
        textposition="outside", cliponaxis=False,
        marker_color=[USED_COLOUR if n == used else OTHER_COLOUR for n in names],
        hovertemplate=f"%{{y}}<br>{hover(SCORE, 'x')}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", automargin=True)
    if values:
        fig.update_xaxes(range=[0, max(values) * 1.25 or 1.0])
    fig = _layout(fig, title or f"{axis_title}: model and baselines", axis_title, "")
    fig.update_layout(height=max(CHART_HEIGHT // 2, 70 + 45 * len(names)), showlegend=False)
    return fig
