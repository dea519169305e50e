"""The model card: what a version was trained on, how well each forecast did on the held-out window, and
which one each head uses; stored as JSON with the version and printed in plain words by the CLI.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.config import VERDICT_STRONG_LIFT, VERDICT_USEFUL_LIFT


#: The four heads, the metric that decides each, and whether higher is better.
HEAD_METRICS = {
    "propensity": ("roc_auc", True),
    "next_event_type": ("log_loss", False),
    "next_category": ("accuracy@1", True),
    "next_items": ("ndcg@10", True),
}
MODEL = "model"
#: Ranked list length used to measure and to write categories and items.
RANK_K = 10
TARGET_TEXT = (
    "Targets, for a cutoff T and horizon H: inputs are the events before T only. purchased = any purchase in "
    "[T, T+H); next_event_type = the furthest funnel step reached in [T, T+H) (none < view < remove_from_cart < "
    "cart < purchase; wishlist and unknown types count as view); next_category = category of the first event in "
    "[T, T+H) that has one; next_item = item of the first event in [T, T+H). Category and item metrics count only "
    "shoppers with such a target."
)


@dataclass
class ModelCard:
    """What was trained, on which data, how well each forecast did, and which one each head uses."""

    model_version: str
    dataset: str
    dataset_id: int
    created_at: dt.datetime
    horizon_days: int
    data_window: tuple
    plan: dict
    n_users: int
    n_users_trained: int
    sampled: bool
    n_train_examples: int
    training_seconds: float
    heads: dict
    lift: list = field(default_factory=list)
    calibration: list = field(default_factory=list)
    loss_curve: list = field(default_factory=list)
    refit_on_latest: bool = False
    notes: list = field(default_factory=list)
    config: dict = field(default_factory=dict)
    #: expected_revenue and p_inactive: every forecast's metrics, the one in use, the note (core.model.value)
    value: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)  # the PipelineSettings of the run (chunks, reasons, torch threads)

    def to_dict(self) -> dict:
        """JSON-ready dict (times as ISO strings)."""
        out = dataclasses.asdict(self)
        out["created_at"] = self.created_at.isoformat()
        out["data_window"] = [t.isoformat() if isinstance(t, dt.datetime) else t for t in self.data_window]
        return json.loads(json.dumps(out, default=_json_default))

    @classmethod
    def from_dict(cls, data: dict) -> "ModelCard":
        """Inverse of :meth:`to_dict`."""
        values = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
        values["created_at"] = dt.datetime.fromisoformat(data["created_at"])
        values["data_window"] = tuple(dt.datetime.fromisoformat(t) if t else None for t in data["data_window"])
        return cls(**values)

    def top_decile_lifts(self) -> dict[str, float]:
        """Forecast name -> how many times as often as average its top 10 % bought in the held-out window.

        Measured forecasts only; a card written before this was stored gives the forecast in
        use from its lift table.
        """
        info = self.heads.get("propensity") or {}
        out = {name: m["top_decile_lift"] for name, m in info.get("metrics", {}).items()
               if m.get("top_decile_lift") is not None}
        if not out and self.lift and info.get("used") and self.lift[0].get("lift") == self.lift[0].get("lift"):
            out[info["used"]] = float(self.lift[0]["lift"])
        return out

    def headline(self) -> str:
        """The card's first sentence, in a marketer's words: how the top 10 % bought beside the RFM baseline."""
        info = self.heads.get("propensity") or {}
        used, lifts = info.get("used", MODEL), self.top_decile_lifts()
        window = f"the held-out {self.horizon_days}-day window"
        if used not in lifts:
            return (f"Too few buyers in {window} to say how well this forecast picks buyers; "
                    "it will be measured once more shoppers have bought.")
        text = f"Your top 10 % by this forecast bought {lifts[used]:.1f}× as often as average in {window}"
        others = [(n, v) for n, v in lifts.items() if n != used]
        if used != MODEL:
            text += " (the simple RFM baseline is in use: the sequence model did not beat it)"
        for name, value in others:
            who = "the sequence model" if name == MODEL else "the simple RFM baseline (gradient boosting on recency, " \
                                                            "frequency and spend)"
            text += f"; {who}: {value:.1f}×"
        return text + "."

    def verdict(self) -> tuple[str, str]:
        """("strong" | "useful" | "weak" | "not measured", one sentence with the thresholds it was judged by)."""
        info = self.heads.get("propensity") or {}
        lift = self.top_decile_lifts().get(info.get("used", MODEL))
        rule = (f"strong when the top 10 % buy at least {VERDICT_STRONG_LIFT:g}× as often as average, useful from "
                f"{VERDICT_USEFUL_LIFT:g}×, weak below")
        if lift is None:
            return "not measured", f"Not measured: too few buyers in the held-out window ({rule})."
        word = "strong" if lift >= VERDICT_STRONG_LIFT else "useful" if lift >= VERDICT_USEFUL_LIFT else "weak"
        advice = {"strong": "target the top of the list with confidence",
                  "useful": "the top of the list is worth targeting first",
                  "weak": "the order is barely better than a random list; prefer broad campaigns"}[word]
        return word, f"Verdict: {word} ({lift:.1f}× in the top 10 %; {rule}): {advice}."

    def to_text(self) -> str:
        """The card in plain words (the CLI prints this)."""
        lines = [
            self.headline(),
            self.verdict()[1],
            "",
            f"Model {self.model_version} for dataset {self.dataset!r} (horizon {self.horizon_days} days)",
            f"Data window: {_fmt(self.data_window[0])} to {_fmt(self.data_window[1])}; {self.n_users} shoppers scored.",
            f"Trained on {self.n_users_trained} shoppers" + (" (a seeded sample)" if self.sampled else "")
            + f", {self.n_train_examples} examples, in {self.training_seconds:.1f} s.",
            "Cutoffs: " + ", ".join(f"{k}={v}" for k, v in self.plan.items() if k in ("train_cutoffs", "valid_cutoff", "test_cutoff")),
            TARGET_TEXT,
            "",
            "Held-out window results (the forecast in use is marked *):",
        ]
        for head, info in self.heads.items():
            key = HEAD_METRICS[head][0]
            lines.append(f"  {head} (decided by {key}):")
            for name, metrics in info["metrics"].items():
                mark = "*" if name == info["used"] else " "
                shown = ", ".join(f"{k} {_num(v)}" for k, v in metrics.items() if k not in ("note", "measurable"))
                lines.append(f"   {mark} {name}: {shown}")
            if info.get("note"):
                lines.append(f"    {info['note']}")
        lines.extend(value_lines(self.value))
        lines.append("")
        lines.append("Refit on the latest window: " + ("yes" if self.refit_on_latest else "no"))
        lines.extend(self.notes)
        return "\n".join(lines)


def value_lines(value: dict) -> list[str]:
    """The value and churn heads of a card in plain words (nothing for a version trained before them)."""
    from core.model.value import VALUE_COLUMN_TEXT, VALUE_HEAD_METRICS

    lines = []
    for head, info in value.items():
        key = VALUE_HEAD_METRICS[head][0]
        lines.append(f"  {head}, the {VALUE_COLUMN_TEXT[head]} (decided by {key}):")
        for name, metrics in {**info["metrics"], **info.get("reference", {})}.items():
            mark = "*" if name == info["used"] else " "
            shown = ", ".join(f"{k} {_num(v)}" for k, v in metrics.items())
            lines.append(f"   {mark} {name}: {shown}")
        if info.get("note"):
            lines.append(f"    {info['note']}")
    return lines


def _json_default(v):
    if isinstance(v, (dt.datetime, dt.date, pd.Timestamp)):
        return v.isoformat()
    if isinstance(v, np.generic):
        return v.item()
    return str(v)


def _fmt(t) -> str:
    return t.strftime("%Y-%m-%d %H:%M") if isinstance(t, dt.datetime) else str(t)


def _num(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)
