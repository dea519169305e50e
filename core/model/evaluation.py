"""Metrics of the forecasts on the held-out window, and the propensity calibrator.

Propensity: ROC-AUC, PR-AUC (average precision), lift by decile, a calibration table.
Next category / next items: accuracy@k and NDCG@k over the full catalogue (one relevant
answer per shopper; shoppers without a target are skipped). Next event type: log loss.
scikit-learn is imported inside the functions that need it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from core import config
from core.errors import ParameterError, SchemaError
from core.model.baselines import BASELINE_LABELS
from core.present import formats

#: Probabilities are clipped to [EPS, 1 - EPS] before taking logs.
EPS = 1e-15


def _arrays(y, p) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=float).ravel()
    p = np.asarray(p, dtype=float).ravel()
    if y.shape != p.shape:
        raise ParameterError(f"y and p must have the same length; got {len(y)} labels and {len(p)} scores.",
                             parameter="p")
    if y.size and not np.isin(y, (0.0, 1.0)).all():
        bad = sorted(set(y[~np.isin(y, (0.0, 1.0))].tolist()))[:5]
        raise ParameterError(f"y must hold 0/1 labels; found {bad}.", parameter="y", cases=bad)
    if np.isnan(p).any():
        raise ParameterError(f"p holds {int(np.isnan(p).sum())} missing scores; every shopper needs a score.",
                             parameter="p")
    return y, p


def _one_class(y: np.ndarray) -> bool:
    return y.size == 0 or y.min() == y.max()


def roc_auc(y, p) -> float | None:
    """Area under the ROC curve of scores ``p`` for 0/1 labels ``y``; None when only one class is present."""
    y, p = _arrays(y, p)
    if _one_class(y):
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def pr_auc(y, p) -> float | None:
    """Average precision (area under the precision-recall curve); None when only one class is present."""
    y, p = _arrays(y, p)
    if _one_class(y):
        return None
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y, p))


def _rank_order(p: np.ndarray) -> np.ndarray:
    """Indices from the highest score to the lowest; equal scores keep their given order."""
    return np.argsort(-p, kind="stable")


def lift_by_decile(y, p, n_groups: int = config.LIFT_GROUPS) -> pd.DataFrame:
    """Buyers by score decile: decile 1 holds the top 10 % of scores.

    Shoppers are ranked by ``p`` (ties keep their order) and shopper number ``r``
    (0-based) falls in decile ``floor(r * n_groups / n) + 1``. Returns one row per
    non-empty decile with ``decile``, ``n``, ``buyers``, ``rate`` (buyers / n), ``lift``
    (rate / overall rate; NaN when nobody bought), ``cum_share`` (share of shoppers in
    deciles 1..d) and ``cum_gain`` (share of all buyers in deciles 1..d; NaN when nobody bought).
    """
    y, p = _arrays(y, p)
    cols = ["decile", "n", "buyers", "rate", "lift", "cum_share", "cum_gain"]
    n = y.size
    if n == 0:
        return pd.DataFrame(columns=cols)
    ranked = y[_rank_order(p)]
    decile = np.arange(n) * n_groups // n + 1
    df = pd.DataFrame({"decile": decile, "y": ranked}).groupby("decile")["y"].agg(["size", "sum"]).reset_index()
    df.columns = ["decile", "n", "buyers"]
    df["buyers"] = df["buyers"].astype(int)
    total = ranked.sum()
    overall = total / n
    df["rate"] = df["buyers"] / df["n"]
    df["lift"] = df["rate"] / overall if overall > 0 else np.nan
    df["cum_share"] = df["n"].cumsum() / n
    df["cum_gain"] = df["buyers"].cumsum() / total if total > 0 else np.nan
    return df[cols]


def calibration_table(y, p, n_bins: int = config.CALIBRATION_BINS) -> pd.DataFrame:
    """Observed purchase rate against the mean forecast, in ``n_bins`` equal-width bins of [0, 1].

    A score ``p`` falls in bin ``min(floor(p * n_bins), n_bins - 1)`` (so 1.0 is in the last
    bin). Returns one row per non-empty bin: ``bin`` (0-based), ``lower``, ``upper``,
    ``mean_predicted``, ``observed_rate``, ``n``. A calibrated forecast has
    ``observed_rate`` close to ``mean_predicted`` in every bin.
    """
    y, p = _arrays(y, p)
    if n_bins < 1:
        raise ParameterError(f"n_bins must be >= 1; got {n_bins}.", parameter="n_bins")
    cols = ["bin", "lower", "upper", "mean_predicted", "observed_rate", "n"]
    if y.size == 0:
        return pd.DataFrame(columns=cols)
    b = np.minimum(np.floor(np.clip(p, 0.0, 1.0) * n_bins).astype(int), n_bins - 1)
    df = pd.DataFrame({"bin": b, "p": p, "y": y}).groupby("bin").agg(
        mean_predicted=("p", "mean"), observed_rate=("y", "mean"), n=("y", "size")).reset_index()
    df["lower"] = df["bin"] / n_bins
    df["upper"] = (df["bin"] + 1) / n_bins
    return df[cols]


def expected_calibration_error(y, p, n_bins: int = config.CALIBRATION_BINS) -> float | None:
    """Mean |observed rate - mean forecast| over the bins of :func:`calibration_table`, weighted by size."""
    table = calibration_table(y, p, n_bins)
    if table.empty:
        return None
    w = table["n"] / table["n"].sum()
    return float((w * (table["observed_rate"] - table["mean_predicted"]).abs()).sum())


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _pairs(true: Sequence, ranked: Sequence[Sequence]) -> list[tuple[str, list[str]]]:
    true, ranked = list(true), list(ranked)
    if len(true) != len(ranked):
        raise ParameterError(f"true and ranked must have the same length; got {len(true)} and {len(ranked)}.",
                             parameter="ranked")
    return [(str(t), [str(x) for x in r]) for t, r in zip(true, ranked) if not _missing(t)]


def _check_k(k: int) -> None:
    if int(k) != k or k < 1:
        raise ParameterError(f"k must be a whole number >= 1; got {k!r}.", parameter="k")


def accuracy_at_k(true: Sequence, ranked: Sequence[Sequence], k: int) -> float | None:
    """Share of rows whose true value is among the first ``k`` of its ranked list.

    Rows whose true value is None/NaN (no target) are skipped; None when no row is left.
    """
    _check_k(k)
    pairs = _pairs(true, ranked)
    if not pairs:
        return None
    return float(np.mean([t in r[:k] for t, r in pairs]))


def ndcg_at_k(true: Sequence, ranked: Sequence[Sequence], k: int) -> float | None:
    """Mean NDCG@k with one relevant answer per row: ``1 / log2(rank + 1)`` when it is at rank <= k, else 0.

    Ranks are 1-based; rows without a target are skipped; None when no row is left.
    """
    _check_k(k)
    pairs = _pairs(true, ranked)
    if not pairs:
        return None
    gains = []
    for t, r in pairs:
        top = r[:k]
        gains.append(1.0 / math.log2(top.index(t) + 2) if t in top else 0.0)
    return float(np.mean(gains))


def multiclass_log_loss(y_true: Sequence[str], proba: np.ndarray, classes: list[str]) -> float | None:
    """Mean negative log probability given to the true class.

    ``proba`` has one row per example and one column per entry of ``classes``; rows are
    renormalised to sum to 1 and clipped to [EPS, 1 - EPS]. None for no rows. Raises
    :class:`ParameterError` when a label is not one of ``classes`` or the shapes disagree.
    """
    y_true = [str(v) for v in y_true]
    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2 or proba.shape != (len(y_true), len(classes)):
        raise ParameterError(
            f"proba must have shape ({len(y_true)}, {len(classes)}) (examples x classes); got {proba.shape}.",
            parameter="proba",
        )
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({v for v in y_true if v not in index})
    if unknown:
        raise ParameterError(f"y_true holds labels {unknown[:5]} that are not in classes {classes}.",
                             parameter="y_true", cases=unknown[:5])
    if not y_true:
        return None
    proba = proba / np.clip(proba.sum(axis=1, keepdims=True), EPS, None)
    picked = np.clip(proba[np.arange(len(y_true)), [index[v] for v in y_true]], EPS, 1 - EPS)
    return float(-np.mean(np.log(picked)))


def evaluate_propensity(y, p, min_buyers: int = config.MIN_BUYERS_TO_MEASURE) -> dict:
    """ROC-AUC and PR-AUC of a propensity forecast, or a note when there are too few buyers.

    Returns ``{"n", "buyers", "base_rate", "roc_auc", "pr_auc", "top_decile_lift", "measurable",
    "note"}``; ``top_decile_lift`` is how many times as often as average the top 10 % by ``p``
    bought. When fewer than ``min_buyers`` shoppers bought (or everybody did) the metrics are
    None, ``measurable`` is False and ``note`` says why in plain words.
    """
    y, p = _arrays(y, p)
    n, buyers = int(y.size), int(y.sum())
    out = {"n": n, "buyers": buyers, "base_rate": (buyers / n) if n else None,
           "roc_auc": None, "pr_auc": None, "top_decile_lift": None, "measurable": False, "note": ""}
    if buyers < min_buyers:
        out["note"] = (
            f"Too few buyers to measure: {buyers} of {n} shoppers bought in the held-out window "
            f"(at least {min_buyers} are needed)."
        )
    elif buyers == n:
        out["note"] = f"Every one of the {n} shoppers bought in the held-out window, so there is nothing to rank."
    else:
        out.update(roc_auc=roc_auc(y, p), pr_auc=pr_auc(y, p), measurable=True,
                   top_decile_lift=float(lift_by_decile(y, p)["lift"].iloc[0]))
    return out


def evaluate_ranking(true: Sequence, ranked: Sequence[Sequence], ks: Sequence[int] = (1, 5),
                     ndcg_k: int = 10) -> dict:
    """Accuracy@k for each k in ``ks`` and NDCG@``ndcg_k`` of ranked lists.

    Returns ``{"n": rows with a target, "accuracy@1": …, "accuracy@5": …, "ndcg@10": …}``
    (values None when no row has a target).
    """
    out: dict = {"n": len(_pairs(true, ranked))}
    for k in ks:
        out[f"accuracy@{k}"] = accuracy_at_k(true, ranked, k)
    out[f"ndcg@{ndcg_k}"] = ndcg_at_k(true, ranked, ndcg_k)
    return out


def evaluate_next_type(y_true: Sequence[str], proba: np.ndarray, classes: list[str]) -> dict:
    """Log loss and accuracy (arg-max class) of a next-event-type forecast: ``{"n", "log_loss", "accuracy"}``."""
    loss = multiclass_log_loss(y_true, proba, classes)
    proba = np.asarray(proba, dtype=float)
    acc = float(np.mean([classes[i] == t for i, t in zip(proba.argmax(axis=1), y_true)])) if len(y_true) else None
    return {"n": len(y_true), "log_loss": loss, "accuracy": acc}


def pick_forecast(metrics: dict[str, dict], key: str, higher_is_better: bool = True,
                  model_name: str = "model") -> tuple[str, str]:
    """Which forecast a head uses: the model unless a baseline beat it on ``key``.

    ``metrics`` maps a forecast name ("model", "most_popular", …) to its metrics dict.
    Forecasts whose ``key`` is None are not compared. Returns ``(name, note)``: the model
    when it scores best or nothing could be measured, else the best baseline, with a
    plain-words note such as "The model did not beat most_popular on the held-out window
    (accuracy@1 0.21 vs 0.30), so most_popular's forecast is used."
    """
    scored = {name: m.get(key) for name, m in metrics.items() if m.get(key) is not None}
    if model_name not in scored:
        if metrics.get(model_name) is not None:
            return model_name, f"The model's {formats.label(key)} could not be measured on the held-out window, so the model is used."
        best = max(scored, key=lambda n: scored[n] if higher_is_better else -scored[n]) if scored else None
        if best is None:
            raise SchemaError(f"No forecast named {model_name!r} and none with a {key!r} metric; "
                              f"forecasts: {sorted(metrics)}.", column=key, reason="missing_column")
        return best, f"No model forecast for this head, so {best}'s forecast is used."
    mine = scored[model_name]
    rivals = {n: v for n, v in scored.items() if n != model_name}
    metric = formats.label(key)
    if not rivals:
        return model_name, f"The model is used ({metric} {mine:.3f}; no baseline could be measured)."
    best = max(rivals, key=lambda n: rivals[n] if higher_is_better else -rivals[n])
    beaten = rivals[best] > mine if higher_is_better else rivals[best] < mine
    if beaten:
        return best, (
            f"The model did not beat {forecast_name(best)} on the held-out window ({metric} {mine:.3f} vs "
            f"{rivals[best]:.3f}), so {forecast_name(best)}'s forecast is used."
        )
    return model_name, (
        f"The model is used: it beat every baseline on the held-out window ({metric} {mine:.3f}; best baseline "
        f"{forecast_name(best)} {rivals[best]:.3f})."
    )


def forecast_name(name: str) -> str:
    """The words for a forecast's name in the card (a baseline's label, else its name in words)."""
    return BASELINE_LABELS.get(name) or formats.label(name)


def explain_choice(info: dict, key: str, higher_is_better: bool = True, labels: dict[str, str] | None = None,
                   model_name: str = "model") -> str:
    """One plain sentence saying which forecast a head uses and why, from the head's card entry.

    ``info`` is ``{"metrics": {name: {...}}, "used": name, "note": str}`` as a model card
    holds it; ``labels`` maps forecast names to the words shown (default: the names).
    Examples: "The model did not beat Most popular on the held-out window (accuracy@1 0.210
    vs 0.300), so Most popular's forecast is used." / "The sequence model's forecast is
    used: it beat every baseline on the held-out window (roc_auc 0.812; best baseline ...)."
    """
    labels = labels or {}
    name = lambda n: labels.get(n) or forecast_name(n)  # noqa: E731
    metric = formats.label(key)
    metrics, used = info.get("metrics", {}), info.get("used", model_name)
    mine = (metrics.get(model_name) or {}).get(key)
    if used != model_name:
        theirs = (metrics.get(used) or {}).get(key)
        if mine is not None and theirs is not None:
            return (f"The model did not beat {name(used)} on the held-out window ({metric} {mine:.3f} vs "
                    f"{theirs:.3f}), so {name(used)}'s forecast is used.")
        return f"The model did not beat {name(used)} on the held-out window, so {name(used)}'s forecast is used."
    if mine is None:
        why = (metrics.get(model_name) or {}).get("note") or info.get("note") or "its quality could not be measured"
        return f"The sequence model's forecast is used; {why[0].lower() + why[1:] if why else why}".rstrip(".") + "."
    rivals = {n: m.get(key) for n, m in metrics.items() if n != model_name and m.get(key) is not None}
    if not rivals:
        return f"The sequence model's forecast is used ({metric} {mine:.3f}; no baseline could be measured)."
    best = max(rivals, key=lambda n: rivals[n] if higher_is_better else -rivals[n])
    return (f"The sequence model's forecast is used: it beat every baseline on the held-out window ({metric} "
            f"{mine:.3f}; best baseline, {name(best)}, {rivals[best]:.3f}).")


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p / (1 - p))


#: Calibration maps fitted by :func:`fit_calibrator`; "isotonic" (flat steps) is only read from older versions.
CALIBRATION_KINDS = ("identity", "interpolated", "beta", "platt", "isotonic")


class Calibrator:
    """A fitted, strictly increasing map from raw propensity scores to calibrated probabilities.

    ``kind`` is "identity", "interpolated" (isotonic regression made strictly increasing:
    piecewise-linear through the middle of each isotonic step, ``x_``/``y_``, and on to
    (0, 0) and (1, 1) at the ends), "beta" (``sigmoid(a_ * ln p - b_ * ln(1 - p) + c_)``,
    a_, b_ >= 0), "platt" (``sigmoid(a_ * logit(p) + b_)``) or "isotonic" (flat steps,
    written by older versions: read back as "interpolated" through the same steps). Every
    kind adds ``config.TIE_BREAK`` times the raw score, so two different raw scores never
    share a calibrated value, wherever a fitted map is flat. With ``stack`` = (w_model,
    w_other, bias) the raw score is first blended with a second model's probability
    (``sigmoid(w_model * logit(p) + w_other * logit(other) + bias)``, see :func:`fit_stacker`)
    and the blend is calibrated. Call it on an array of scores; :meth:`to_dict` /
    :meth:`from_dict` store it as JSON with the model.
    """

    def __init__(self, kind: str = "identity", x: Sequence[float] = (), y: Sequence[float] = (),
                 a: float = 1.0, b: float = 0.0, stack: Sequence[float] | None = None, c: float = 0.0):
        if kind not in CALIBRATION_KINDS:
            raise ParameterError(f"kind must be one of {list(CALIBRATION_KINDS)}; got {kind!r}.", parameter="kind")
        if stack is not None and len(stack) != 3:
            raise ParameterError(f"stack must be (w_model, w_other, bias); got {stack!r}.", parameter="stack")
        if kind == "isotonic":  # older versions' steps: the same steps, joined through their middles
            kind, x, y = "interpolated", *step_midpoints(x, y)
        self.kind = kind
        self.x_ = np.asarray(x, dtype=float)
        self.y_ = np.asarray(y, dtype=float)
        bent = self.x_.size < 2 or (np.diff(self.x_) <= 0).any() or (np.diff(self.y_) < 0).any()
        if kind == "interpolated" and bent:
            raise ParameterError(f"an interpolated calibration needs at least 2 knots with increasing x and "
                                 f"non-decreasing y; got x={self.x_.tolist()[:6]}, y={self.y_.tolist()[:6]}.",
                                 parameter="x")
        self.a_ = float(a)
        self.b_ = float(b)
        self.c_ = float(c)
        self.stack_ = None if stack is None else tuple(float(v) for v in stack)

    def blend(self, p, other=None) -> np.ndarray:
        """The raw score the calibration reads: ``p`` itself, or its stacked blend with ``other``."""
        p = np.asarray(p, dtype=float)
        if self.stack_ is None:
            return p.copy()
        if other is None:
            raise ParameterError("This calibrator stacks two models: pass the second model's probabilities (other=).",
                                 parameter="other")
        w_m, w_o, bias = self.stack_
        return 1.0 / (1.0 + np.exp(-(w_m * _logit(p) + w_o * _logit(other) + bias)))

    def _map(self, p: np.ndarray) -> np.ndarray:
        if self.kind == "interpolated":
            return np.interp(p, self.x_, self.y_)
        if self.kind == "beta":
            q = np.clip(p, EPS, 1 - EPS)
            return 1.0 / (1.0 + np.exp(-(self.a_ * np.log(q) - self.b_ * np.log1p(-q) + self.c_)))
        if self.kind == "platt":
            return 1.0 / (1.0 + np.exp(-(self.a_ * _logit(p) + self.b_)))
        return p

    def __call__(self, p, other=None) -> np.ndarray:
        p = self.blend(p, other)
        if self.kind == "identity":
            return p
        return (1.0 - config.TIE_BREAK) * self._map(p) + config.TIE_BREAK * np.clip(p, 0.0, 1.0)

    def to_dict(self) -> dict:
        """JSON-ready parameters."""
        return {"kind": self.kind, "x": self.x_.tolist(), "y": self.y_.tolist(), "a": self.a_, "b": self.b_,
                "c": self.c_, "stack": None if self.stack_ is None else list(self.stack_)}

    @classmethod
    def from_dict(cls, data: dict) -> Calibrator:
        """Inverse of :meth:`to_dict`; also reads older versions' dicts (no ``c``; "isotonic" steps)."""
        return cls(data["kind"], data.get("x", ()), data.get("y", ()), data.get("a", 1.0), data.get("b", 0.0),
                   data.get("stack"), data.get("c", 0.0))

    def __repr__(self) -> str:
        return (f"Calibrator(kind={self.kind!r}, points={self.x_.size}, a={self.a_:.3g}, b={self.b_:.3g}, "
                f"c={self.c_:.3g}, stack={self.stack_})")


def break_ties(p, runner_up) -> np.ndarray:
    """``p`` with its ties broken by ``runner_up``: ``(1 - TIE_BREAK) * p + TIE_BREAK * runner_up``.

    A baseline's propensity (gradient boosting's trees) gives whole groups of shoppers the
    same value; a list cut through such a tie would pick among them at random. The runner-up
    (the model's calibrated propensity) orders them, moving no value by more than TIE_BREAK.
    """
    return (1.0 - config.TIE_BREAK) * np.asarray(p, dtype=float) + config.TIE_BREAK * np.asarray(runner_up, dtype=float)


def step_midpoints(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Knots of a strictly increasing piecewise-linear map through the middle of each step of a step function.

    ``x``/``y`` are isotonic regression's thresholds (sklearn's ``X_thresholds_`` /
    ``y_thresholds_``: each flat step as its first and last point). Each step becomes one
    knot at its middle, so scores inside a step are told apart by how far along it they
    are; (0, 0) and (1, 1) close the ends when they keep the knots increasing, so the
    lowest and highest steps slope too. Raises :class:`ParameterError` for unequal lengths.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ParameterError(f"x and y must have the same length; got {x.size} and {y.size}.", parameter="y")
    if x.size == 0:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0])
    new_step = np.r_[True, np.diff(y) != 0]
    ids = np.cumsum(new_step) - 1
    lo = np.full(ids[-1] + 1, np.inf)
    hi = np.full(ids[-1] + 1, -np.inf)
    np.minimum.at(lo, ids, x)
    np.maximum.at(hi, ids, x)
    kx, ky = (lo + hi) / 2, y[new_step]
    if kx[0] > 0 and ky[0] > 0:
        kx, ky = np.r_[0.0, kx], np.r_[0.0, ky]
    if kx[-1] < 1 and ky[-1] < 1:
        kx, ky = np.r_[kx, 1.0], np.r_[ky, 1.0]
    if kx.size == 1:  # one step at 0 or 1: a flat line through it
        kx, ky = np.array([0.0, 1.0]), np.r_[ky, ky]
    return kx, ky


def fit_stacker(y, p_model, p_other) -> tuple[float, float, float] | None:
    """Weights (w_model, w_other, bias) of a logistic regression of ``y`` on both models' logits.

    Fitted on validation labels ``y`` (0/1); None when the validation window has a single
    class or fewer than ``config.STACK_MIN_POSITIVES`` buyers (too few to weigh two models).
    """
    y = np.asarray(y, dtype=float)
    pos = int(y.sum())
    if _one_class(y) or min(pos, int(y.size - pos)) < config.STACK_MIN_POSITIVES:
        return None
    from sklearn.linear_model import LogisticRegression

    x = np.column_stack([_logit(p_model), _logit(p_other)])
    lr = LogisticRegression(C=config.STACK_C).fit(x, y.astype(int))
    return float(lr.coef_[0, 0]), float(lr.coef_[0, 1]), float(lr.intercept_[0])


def _fit_interpolated(y: np.ndarray, p: np.ndarray) -> Calibrator:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(p, y)
    return Calibrator("interpolated", *step_midpoints(iso.X_thresholds_, iso.y_thresholds_))


def _logistic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=config.CALIBRATION_C).fit(x, y.astype(int))
    return lr.coef_[0], float(lr.intercept_[0])


def _level_only(y: np.ndarray) -> Calibrator:
    """Scores that rank backwards on a tiny validation set: keep their order, fit the level only."""
    return Calibrator("platt", a=0.0, b=float(_logit(np.array([y.mean()]))[0]))


def _fit_platt(y: np.ndarray, p: np.ndarray) -> Calibrator:
    (a,), b = _logistic(_logit(p).reshape(-1, 1), y)
    return _level_only(y) if a < 0 else Calibrator("platt", a=float(a), b=b)


def _fit_beta(y: np.ndarray, p: np.ndarray) -> Calibrator:
    """Beta calibration (Kull et al. 2017): a logistic regression on ln p and -ln(1 - p), both weights >= 0."""
    q = np.clip(p, EPS, 1 - EPS)
    x = np.column_stack([np.log(q), -np.log1p(-q)])
    (a, b), c = _logistic(x, y)
    if a < 0 or b < 0:  # a negative weight would bend the map backwards: drop that term and refit
        keep = 1 if a < 0 else 0
        (w,), c = _logistic(x[:, [keep]], y)
        if w < 0:
            return _level_only(y)
        a, b = (0.0, w) if keep == 1 else (w, 0.0)
    return Calibrator("beta", a=float(a), b=float(b), c=c)


#: The calibration methods :func:`fit_calibrator` can fit.
CALIBRATION_METHODS = {"interpolated": _fit_interpolated, "beta": _fit_beta, "platt": _fit_platt}


def fit_calibrator(y, p, method: str = config.CALIBRATION_METHOD) -> Calibrator:
    """Fit a strictly increasing calibrator on validation labels ``y`` (0/1) and raw scores ``p``.

    ``method``: "beta" (beta calibration, the default: three parameters, smooth, strictly
    increasing, and the lowest calibration error on held-out simulated shoppers, see
    ``config.CALIBRATION_METHOD``), "platt" (logistic on the logit) or "interpolated"
    (isotonic regression joined through its steps' middles). "interpolated" needs at least
    ``config.ISOTONIC_MIN_EXAMPLES`` examples and ``config.ISOTONIC_MIN_POSITIVES`` buyers
    (and as many non-buyers), else Platt scaling is fitted. Identity when only one class is
    present. The result is a callable :class:`Calibrator` that never maps two different raw
    scores to the same value. Raises :class:`ParameterError` for an unknown ``method``.
    """
    if method not in CALIBRATION_METHODS:
        raise ParameterError(f"method must be one of {sorted(CALIBRATION_METHODS)}; got {method!r}.",
                             parameter="method")
    y, p = _arrays(y, p)
    if _one_class(y):
        return Calibrator("identity")
    pos = int(y.sum())
    few = y.size < config.ISOTONIC_MIN_EXAMPLES or min(pos, int(y.size - pos)) < config.ISOTONIC_MIN_POSITIVES
    if method == "interpolated" and few:
        method = "platt"
    return CALIBRATION_METHODS[method](y, p)
