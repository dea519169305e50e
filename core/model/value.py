"""Value and churn of each shopper within the horizon, as GA4 and Klaviyo show them, beside their baselines.

For a cutoff ``T`` and horizon ``H`` days (the same cutoffs as the other heads, see
:mod:`core.model.labels`):

- ``revenue``: the shopper's purchase revenue in ``[T, T + H)``, price × quantity (a missing
  quantity is 1), cancellations subtracted, floored at 0;
- ``inactive``: 1 when the shopper has no event at all in ``[T, T + H)`` (the ``none`` class of
  the next-event-type target).

Forecasts of ``expected_revenue`` (currency of the file, within the horizon):

- ``model``: a Poisson regression, fitted on the validation window, of the window's revenue on
  the logarithms of what the forecasts below are made of (the propensity in use, a buyer's
  spend, the Poisson trees' revenue, the Gamma-Gamma value, the past spend rate): a learnt
  combination, since none of them is best everywhere. The amounts' weights are then shrunk by
  the factor (of :data:`AMOUNT_SHRINK`) that ranks the validation window's spend best, and the
  level refitted to its total: a Poisson fit weighs the amounts for the level of revenue, which
  a ranking dominated by who buys at all (most shoppers spend nothing) rewards less. The
  propensity × spend forecast alone when the validation window has too few buyers to weigh them;
- ``propensity_x_spend``: the purchase propensity in use × the spend expected if they buy
  (gradient boosting with a gamma loss on the recency/frequency/monetary features, fitted on
  the training cutoffs' buyers);
- ``gradient_boosting_rfm``: gradient boosting with a Poisson loss on the same features,
  predicting the window's revenue directly;
- ``gamma_gamma_x_propensity``: the propensity in use × the shopper's Gamma-Gamma mean
  purchase value (their own mean shrunk towards everyone's by how many purchases they made),
  scaled to a buyer's window spend;
- ``past_spend_rate``: the shopper's past spend per horizon over their tenure.

Forecasts of ``p_inactive`` (a probability):

- ``model``: the sequence model's chance of no event in the horizon stacked with gradient
  boosting's on the validation window (logistic regression on both logits), then calibrated;
- ``gradient_boosting_rfm``: gradient boosting classifier on the features;
- ``recency``: the share of shoppers with the same days since their last event who did
  nothing in the horizon, on the training cutoffs (isotonic in the days).

Each head uses the forecast with the best main metric on the held-out window (Spearman's
rank correlation with the window's revenue; ROC-AUC of inactivity), as the other heads do;
the card reports every candidate, the propensity alone as a revenue ranking, top-decile
revenue share and calibration. A fitted :class:`ValueForecast` is plain JSON (trees as
:class:`~core.model.rfm_baseline.TreeEnsemble`), saved with its version.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core import config
from core.errors import ParameterError
from core.model.value_metrics import (NONE_CLASS, _amounts, evaluate_churn, evaluate_revenue, spearman, top_share,
                                      window_labels)
from core.model.rfm_baseline import BaselineConfig, TreeEnsemble, _hgb, _threads, rfm_features

MODEL = "model"
GB = "gradient_boosting_rfm"
GAMMA_GAMMA = "gamma_gamma_x_propensity"
PAST_SPEND = "past_spend_rate"
SPEND_X_PROPENSITY = "propensity_x_spend"
RECENCY = "recency"
PROPENSITY_ALONE = "propensity_alone"
#: The two heads, the metric that decides each, and whether higher is better.
VALUE_HEAD_METRICS = {"expected_revenue": ("spearman", True), "p_inactive": ("roc_auc", True)}
#: Words for the forecasts of these heads (the other names are in ``core.model.baselines.BASELINE_LABELS``).
VALUE_LABELS = {
    SPEND_X_PROPENSITY: "Propensity × spend if they buy (gradient boosting)",
    GAMMA_GAMMA: "Gamma-Gamma purchase value × propensity",
    PAST_SPEND: "Past spend per horizon",
    RECENCY: "Recency alone (days since last seen)",
    PROPENSITY_ALONE: "Purchase propensity alone (a ranking, not an amount)",
}
#: What each prediction column means, in the words every page, the card and the CSV's readers use.
VALUE_COLUMN_TEXT = {
    "expected_revenue": "expected revenue within the horizon (currency of the file)",
    "p_inactive": "chance of no activity at all within the horizon (likely to lapse)",
}
#: The parts the combination weighs (see ``ValueForecast._revenue_parts``), in the order of its weights.
STACKED = ("propensity", "spend", GB, "value", PAST_SPEND)


# --- the fitted parts -----------------------------------------------------------------------------------


def fit_gamma_gamma(n_purchases, mean_value) -> tuple[float, float, float] | None:
    """Gamma-Gamma spend parameters (p, q, v) fitted by maximum likelihood (Fader, Hardie & Lee 2005).

    ``n_purchases`` and ``mean_value`` are the shoppers' purchase counts and mean purchase
    values; only shoppers with a purchase of positive value count. None when fewer than
    ``config.MIN_BUYERS_TO_MEASURE`` such shoppers, or when the fit does not converge.
    """
    from scipy.optimize import minimize
    from scipy.special import gammaln

    x = np.asarray(n_purchases, dtype=float)
    m = np.asarray(mean_value, dtype=float)
    ok = (x > 0) & (m > 0)
    if int(ok.sum()) < config.MIN_BUYERS_TO_MEASURE:
        return None
    x, scale = x[ok], float(np.median(m[ok]))
    m = m[ok] / scale  # in units of the median value: the optimiser's start suits every currency

    def nll(theta):
        p, q, v = np.exp(theta[0]), 1.0 + np.exp(theta[1]), np.exp(theta[2])  # q > 1: the mean exists
        ll = (gammaln(p * x + q) - gammaln(p * x) - gammaln(q) + q * np.log(v) + (p * x - 1) * np.log(m)
              + p * x * np.log(x) - (p * x + q) * np.log(x * m + v))
        return -float(ll.sum())

    res = minimize(nll, np.zeros(3), method="Nelder-Mead", options={"maxiter": 2000, "xatol": 1e-6, "fatol": 1e-8})
    if not np.isfinite(res.fun):
        return None
    return float(np.exp(res.x[0])), float(1.0 + np.exp(res.x[1])), float(np.exp(res.x[2]) * scale)


def gamma_gamma_mean(params: Sequence[float], n_purchases, mean_value) -> np.ndarray:
    """Expected purchase value of each shopper: ``p (v + x m) / (p x + q - 1)`` (everyone's mean for x = 0)."""
    p, q, v = params
    x = np.asarray(n_purchases, dtype=float)
    m = np.nan_to_num(np.asarray(mean_value, dtype=float))
    return p * (v + x * m) / (p * x + q - 1.0)


class RegressionTrees:
    """A fitted ``HistGradientBoostingRegressor`` kept as its trees (plain JSON, no pickle), with its link.

    ``link`` is "exp" for the Poisson and gamma losses (scikit-learn sums the trees on the log
    scale), "identity" for squared error; predictions equal scikit-learn's.
    """

    def __init__(self, trees: TreeEnsemble, link: str):
        if link not in ("exp", "identity"):
            raise ParameterError(f"link must be 'exp' or 'identity'; got {link!r}.", parameter="link")
        self.trees, self.link = trees, link

    @classmethod
    def from_sklearn(cls, model) -> RegressionTrees:
        """The trees of a fitted ``HistGradientBoostingRegressor`` (numeric features only)."""
        trees = [{"class": 0, **{f: p.nodes[f].tolist() for f in TreeEnsemble._FIELDS}}
                 for per_iteration in model._predictors for p in per_iteration]
        link = "exp" if model.loss in ("poisson", "gamma") else "identity"
        return cls(TreeEnsemble([0], np.ravel(model._baseline_prediction).tolist(), trees), link)

    def predict(self, X) -> np.ndarray:
        """The regression forecast of each row of ``X`` (features in the fitted order)."""
        raw = self.trees.raw_scores(np.asarray(X, dtype=np.float64))[:, 0]
        return np.exp(raw) if self.link == "exp" else raw

    def to_dict(self) -> dict:
        """JSON-able state."""
        return {"link": self.link, "trees": self.trees.to_dict()}

    @classmethod
    def from_dict(cls, state: dict) -> RegressionTrees:
        """Inverse of :meth:`to_dict`."""
        return cls(TreeEnsemble.from_dict(state["trees"]), state["link"])


def _fit_regressor(X: pd.DataFrame, y: np.ndarray, loss: str, cfg: BaselineConfig) -> RegressionTrees | None:
    """Gradient boosting of ``y`` on ``X`` with ``loss``; None when there are too few rows to learn from."""
    if len(y) < config.MIN_BUYERS_TO_MEASURE or np.ptp(y) == 0:
        return None
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(loss=loss, max_iter=cfg.max_iter, learning_rate=cfg.learning_rate,
                                          max_leaf_nodes=cfg.max_leaf_nodes, min_samples_leaf=cfg.min_samples_leaf,
                                          early_stopping=False, random_state=cfg.seed)
    with _threads(cfg):
        return RegressionTrees.from_sklearn(model.fit(X, y))


def _fit_classifier(X: pd.DataFrame, y: np.ndarray, cfg: BaselineConfig) -> TreeEnsemble | None:
    if y.min(initial=0) == y.max(initial=0):
        return None
    with _threads(cfg):
        return TreeEnsemble.from_sklearn(_hgb(cfg).fit(X, y))


def _fit_recency(recency_days: np.ndarray, inactive: np.ndarray) -> tuple[list, list]:
    """Isotonic (non-decreasing) share inactive by days since the last event, as interpolation points."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(recency_days, inactive)
    return iso.X_thresholds_.tolist(), iso.y_thresholds_.tolist()


# --- the forecast ---------------------------------------------------------------------------------------


@dataclass
class ValueForecast:
    """The fitted value and churn forecasts of a version, which of each it uses, and their card entries.

    Built by :func:`fit_value`; :meth:`predict` gives ``(expected_revenue, p_inactive)`` of
    shoppers from their :func:`~core.model.rfm_baseline.rfm_features`, the propensity in use
    and the sequence model's chance of no event. ``used[head]`` is None for a head that cannot be
    forecast (no purchase prices in the data: ``expected_revenue`` is then left empty).
    """

    horizon_days: int
    features: list
    spend: RegressionTrees | None = None  # spend of a shopper who buys in the window
    spend_mean: float = 0.0
    revenue_trees: RegressionTrees | None = None  # the window's revenue, Poisson loss
    revenue_mean: float = 0.0
    gamma_gamma: tuple | None = None
    gamma_gamma_scale: float = 1.0
    churn_trees: TreeEnsemble | None = None
    inactive_rate: float = 0.0
    recency: tuple = ((0.0,), (0.0,))
    churn_calibrator: object = None  # core.model.evaluation.Calibrator (stack_: the sequence model with the trees)
    revenue_stack: tuple | None = None  # (floor, intercept, weight per base forecast) of the Poisson combination
    used: dict = field(default_factory=lambda: {"expected_revenue": MODEL, "p_inactive": MODEL})
    card: dict = field(default_factory=dict)

    def revenue_forecasts(self, X: pd.DataFrame, propensity, names: Sequence[str] | None = None) -> dict:
        """The expected-revenue forecasts ``names`` (default all) of the rows of ``X`` given their propensity in use.

        Only the parts those forecasts need are computed: scoring asks for the one in use, and each
        set of trees walked costs as much as the gradient-boosting propensity.
        """
        names = list(names or (MODEL, SPEND_X_PROPENSITY, GB, GAMMA_GAMMA, PAST_SPEND))
        parts = self._revenue_parts(X, propensity, set().union(*(self._revenue_needs(n) for n in names)))
        out = {}
        for name in names:
            if name == MODEL and self.revenue_stack:
                out[name] = _combine(self.revenue_stack, parts)
            elif name in (MODEL, SPEND_X_PROPENSITY):
                out[name] = parts["propensity"] * parts["spend"]
            elif name == GAMMA_GAMMA:
                out[name] = parts["propensity"] * parts["value"] * self.gamma_gamma_scale
            else:
                out[name] = parts[name]
        return out

    def _revenue_needs(self, name: str) -> tuple[str, ...]:
        if name == MODEL and self.revenue_stack:
            return tuple(n for n, w in zip(STACKED, self.revenue_stack[2:]) if w != 0.0)
        return {MODEL: ("propensity", "spend"), SPEND_X_PROPENSITY: ("propensity", "spend"), GB: (GB,),
                GAMMA_GAMMA: ("propensity", "value"), PAST_SPEND: (PAST_SPEND,)}[name]

    def _revenue_parts(self, X: pd.DataFrame, propensity, names=STACKED) -> dict[str, np.ndarray]:
        """What the revenue forecasts are made of (those of ``names``): the propensity, a buyer's spend, the Poisson
        trees' revenue, the Gamma-Gamma purchase value and the past spend rate."""
        X = X[self.features]
        n = len(X)
        make = {
            "propensity": lambda: np.asarray(propensity, dtype=float),
            "spend": lambda: self.spend.predict(X) if self.spend is not None else np.full(n, self.spend_mean),
            GB: lambda: self.revenue_trees.predict(X) if self.revenue_trees is not None else np.full(
                n, self.revenue_mean),
            "value": lambda: gamma_gamma_mean(self.gamma_gamma, X["n_purchases"], _mean_value(X))
            if self.gamma_gamma is not None else np.full(n, self.spend_mean),
            PAST_SPEND: lambda: X["monetary"].clip(lower=0).to_numpy() * self.horizon_days / np.maximum(
                X["tenure_days"].to_numpy(), self.horizon_days),
        }
        return {name: make[name]() for name in names}

    def churn_forecasts(self, X: pd.DataFrame, p_none, names: Sequence[str] | None = None) -> dict:
        """The chance-of-no-activity forecasts ``names`` (default all) of the rows of ``X`` given the sequence
        model's ``p_none``; the trees are walked only when one of them needs them."""
        names = list(names or (MODEL, GB, RECENCY))
        X = X[self.features]
        stacked = self.churn_calibrator is not None and self.churn_calibrator.stack_ is not None
        gb = None
        if GB in names or (MODEL in names and (stacked or self.churn_calibrator is None)):
            gb = self.churn_trees.predict_proba(X)[:, 1] if self.churn_trees is not None else np.full(
                len(X), self.inactive_rate)
        make = {MODEL: lambda: gb if self.churn_calibrator is None else self.churn_calibrator(
                    np.asarray(p_none, dtype=float), gb),
                GB: lambda: gb, RECENCY: lambda: np.interp(X["recency_days"], *self.recency)}
        return {name: make[name]() for name in names}

    def predict(self, X: pd.DataFrame, propensity, p_none) -> tuple[np.ndarray, np.ndarray]:
        """``(expected_revenue, p_inactive)`` of the rows of ``X`` from the forecast each head uses (NaN: none)."""
        rev_used, churn_used = self.used["expected_revenue"], self.used["p_inactive"]
        rev = self.revenue_forecasts(X, propensity, [rev_used])[rev_used] if rev_used else np.full(len(X), np.nan)
        churn = self.churn_forecasts(X, p_none, [churn_used])[churn_used] if churn_used else np.full(len(X), np.nan)
        return np.asarray(rev, dtype=float), np.clip(np.asarray(churn, dtype=float), 0.0, 1.0)

    def to_dict(self) -> dict:
        """JSON-able state (the trees as plain arrays)."""
        tree = lambda t: None if t is None else t.to_dict()  # noqa: E731
        return {"horizon_days": self.horizon_days, "features": list(self.features), "spend": tree(self.spend),
                "spend_mean": self.spend_mean, "revenue_trees": tree(self.revenue_trees),
                "revenue_mean": self.revenue_mean, "gamma_gamma": self.gamma_gamma,
                "gamma_gamma_scale": self.gamma_gamma_scale, "churn_trees": tree(self.churn_trees),
                "inactive_rate": self.inactive_rate, "recency": [list(v) for v in self.recency],
                "churn_calibrator": None if self.churn_calibrator is None else self.churn_calibrator.to_dict(),
                "revenue_stack": self.revenue_stack, "used": dict(self.used), "card": self.card}

    @classmethod
    def from_dict(cls, state: dict) -> ValueForecast:
        """The forecast saved by :meth:`to_dict`; it predicts as the fitted one did."""
        from core.model.evaluation import Calibrator

        reg = lambda s: None if s is None else RegressionTrees.from_dict(s)  # noqa: E731
        return cls(horizon_days=int(state["horizon_days"]), features=list(state["features"]), spend=reg(state["spend"]),
                   spend_mean=state["spend_mean"], revenue_trees=reg(state["revenue_trees"]),
                   revenue_mean=state["revenue_mean"],
                   gamma_gamma=None if state["gamma_gamma"] is None else tuple(state["gamma_gamma"]),
                   gamma_gamma_scale=state["gamma_gamma_scale"],
                   churn_trees=None if state["churn_trees"] is None else TreeEnsemble.from_dict(state["churn_trees"]),
                   inactive_rate=state["inactive_rate"], recency=tuple(tuple(v) for v in state["recency"]),
                   churn_calibrator=None if state["churn_calibrator"] is None
                   else Calibrator.from_dict(state["churn_calibrator"]),
                   revenue_stack=None if state.get("revenue_stack") is None else tuple(state["revenue_stack"]),
                   used=dict(state["used"]), card=state.get("card", {}))


#: Added to a propensity before its logarithm (an amount gets its own floor, see :func:`fit_revenue_stack`).
PROPENSITY_FLOOR = 1e-6
#: Factors tried on the amounts' weights of the combination, the Poisson fit's own (1) first.
AMOUNT_SHRINK = (1.0, 0.75, 0.5, 0.3, 0.2, 0.1, 0.05, 0.0)


def _log_part(name: str, values, floor: float) -> np.ndarray:
    return np.log(np.maximum(np.asarray(values, dtype=float), 0.0) + (PROPENSITY_FLOOR if name == "propensity"
                                                                       else floor))


def _stack_inputs(floor: float, parts: dict[str, np.ndarray]) -> np.ndarray:
    return np.column_stack([_log_part(name, parts[name], floor) for name in STACKED])


def _combine(stack: Sequence[float], parts: dict[str, np.ndarray]) -> np.ndarray:
    """The Poisson combination ``exp(intercept + Σ weight × log(part + floor))`` of the revenue parts (a part of
    weight 0 may be absent)."""
    floor, intercept, *weights = stack
    total = np.full(len(next(iter(parts.values()))), float(intercept))
    for name, w in zip(STACKED, weights):
        if w != 0.0:
            total += w * _log_part(name, parts[name], floor)
    return np.exp(total)


def fit_revenue_stack(revenue, parts: dict[str, np.ndarray]) -> tuple | None:
    """Weights of a Poisson regression of ``revenue`` on the logarithms of the revenue parts.

    ``parts``: the propensity, a buyer's spend, the Poisson trees' revenue, the Gamma-Gamma
    value and the past spend rate of each shopper (:data:`STACKED`), on a window none of them
    was fitted on (validation): the regression learns how far to trust each, e.g. the
    propensity to tell buyers from the rest and the spend to order the buyers. The amounts'
    weights are then multiplied by the factor of :data:`AMOUNT_SHRINK` that gives the best
    Spearman correlation with ``revenue`` (the first of equals), and the intercept refitted so
    that the forecasts sum to the window's revenue. The floor added to an amount before the
    logarithm is a thousandth of the mean revenue, so 0 stays finite. Returns ``(floor,
    intercept, *weights)``; None when fewer than ``config.MIN_BUYERS_TO_MEASURE`` shoppers spent.
    """
    revenue = np.asarray(revenue, dtype=float)
    if int((revenue > 0).sum()) < config.MIN_BUYERS_TO_MEASURE:
        return None
    from sklearn.linear_model import PoissonRegressor

    floor = 1e-3 * float(revenue.mean())
    scale = float(revenue.mean())  # fitted in units of the mean: the solver's tolerance suits every currency
    inputs = _stack_inputs(floor, parts)
    fit = PoissonRegressor(alpha=1e-4, max_iter=1000).fit(inputs, revenue / scale)
    is_amount = np.array([name != "propensity" for name in STACKED])
    best, weights = None, fit.coef_
    for shrink in AMOUNT_SHRINK:
        tried = np.where(is_amount, fit.coef_ * shrink, fit.coef_)
        rho = spearman(revenue, inputs @ tried)
        if rho is not None and (best is None or rho > best):
            best, weights = rho, tried
    intercept = float(np.log(revenue.sum() / np.exp(inputs @ weights).sum()))
    return (floor, intercept, *[float(w) for w in weights])


def _mean_value(X: pd.DataFrame) -> np.ndarray:
    n = X["n_purchases"].to_numpy(dtype=float)
    return np.divide(X["monetary"].clip(lower=0).to_numpy(dtype=float), n, out=np.zeros(len(X)), where=n > 0)


# --- fitting and choosing ------------------------------------------------------------------------------


def _features(history: pd.DataFrame, targets: pd.DataFrame, cfg: BaselineConfig) -> pd.DataFrame:
    """:func:`rfm_features` of each row of ``targets`` at its own cutoff, one row per target row, in order."""
    cutoffs = pd.to_datetime(targets["cutoff"]).to_numpy()
    users = targets["user_id"].astype(str).to_numpy(dtype=object)
    parts = []
    for cutoff in pd.unique(cutoffs):
        idx = np.flatnonzero(cutoffs == cutoff)
        part = rfm_features(history, pd.Timestamp(cutoff), users=users[idx].tolist(), cfg=cfg)
        parts.append(part.reset_index(drop=True).set_index(pd.Index(idx)))
    if not parts:
        return rfm_features(history.iloc[:0], dt.datetime(1970, 1, 1), users=[], cfg=cfg).reset_index(drop=True)
    return pd.concat(parts).sort_index()


def _fit_parts(X: pd.DataFrame, labels: pd.DataFrame, latest: np.ndarray, cfg: BaselineConfig,
               horizon_days: int) -> ValueForecast:
    """Every forecast's fitted part, on the training cutoffs (``latest``: the rows of the last one)."""
    revenue, inactive = labels["revenue"].to_numpy(), labels["inactive"].to_numpy()
    buyers = revenue > 0
    vf = ValueForecast(horizon_days=horizon_days, features=list(X.columns))
    vf.spend = _fit_regressor(X[buyers], revenue[buyers], "gamma", cfg)
    vf.spend_mean = float(revenue[buyers].mean()) if buyers.any() else 0.0
    if int(buyers.sum()) >= config.MIN_BUYERS_TO_MEASURE:
        vf.revenue_trees = _fit_regressor(X, revenue, "poisson", cfg)
    vf.revenue_mean = float(revenue.mean()) if len(revenue) else 0.0
    recent = X[latest]
    vf.gamma_gamma = fit_gamma_gamma(recent["n_purchases"], _mean_value(recent))
    if vf.gamma_gamma is not None and buyers.any():
        expected = gamma_gamma_mean(vf.gamma_gamma, X["n_purchases"][buyers], _mean_value(X[buyers]))
        vf.gamma_gamma_scale = float(revenue[buyers].sum() / max(expected.sum(), 1e-12))
    vf.churn_trees = _fit_classifier(X, inactive, cfg)
    vf.inactive_rate = float(inactive.mean()) if len(inactive) else 0.0
    if len(inactive):
        vf.recency = _fit_recency(X["recency_days"].to_numpy(), inactive)
    return vf


def _fit_churn_calibrator(vf: ValueForecast, X: pd.DataFrame, inactive: np.ndarray, p_none: np.ndarray):
    """Stack the sequence model's chance of no event with gradient boosting's on the validation window, then
    calibrate the blend (the sequence model alone, calibrated, when the window cannot weigh the two)."""
    from core.model.evaluation import fit_calibrator, fit_stacker

    gb = vf.churn_forecasts(X, p_none)[GB] if len(X) else np.zeros(0)
    stack = fit_stacker(inactive, p_none, gb) if len(X) else None
    if stack is None:
        return fit_calibrator(inactive, p_none)
    blend = fit_calibrator(inactive, p_none)
    blend.stack_ = stack
    calibrator = fit_calibrator(inactive, blend.blend(p_none, gb))
    calibrator.stack_ = stack
    return calibrator


def fit_value(history: pd.DataFrame, train_targets: Sequence[pd.DataFrame], valid, valid_pred, test, test_pred, *,
              calibrator, rfm_propensity, propensity_used: str, horizon_days: int, seed: int = 0) -> ValueForecast:
    """Fit the value and churn forecasts, measure them on the held-out window, choose one per head.

    Inputs: the sampled shoppers' ``history`` (every event up to the data's end); the targets of
    the training cutoffs (``core.model.labels.make_targets``); the validation and held-out
    examples with the sequence model's predictions on them (``core.model.training``); the
    propensity ``calibrator``, the gradient-boosting propensity and the name of the propensity
    forecast in use (to rebuild the propensity each shopper is scored with). Output: a fitted
    :class:`ValueForecast` whose ``card`` holds every candidate's metrics and the choice.
    """
    cfg = BaselineConfig(seed=seed, max_iter=config.VALUE_TREES, max_leaf_nodes=config.VALUE_TREE_LEAVES)
    targets = pd.concat([t for t in train_targets if len(t)], ignore_index=True) if any(
        len(t) for t in train_targets) else test.targets.iloc[:0]
    X = _features(history, targets, cfg)
    latest = pd.to_datetime(targets["cutoff"]).to_numpy() == pd.to_datetime(targets["cutoff"]).max() \
        if len(targets) else np.zeros(0, dtype=bool)
    vf = _fit_parts(X, window_labels(history, targets, horizon_days), latest, cfg, horizon_days)
    p_cfg = rfm_propensity.config or BaselineConfig()  # the propensity's trees may read other windows

    def propensity_of(X: pd.DataFrame, targets: pd.DataFrame, pred) -> np.ndarray:  # the propensity scored with
        X_p = X if tuple(p_cfg.recent_days) == tuple(cfg.recent_days) else _features(history, targets, p_cfg)
        p_rfm = rfm_propensity.predict_from_features(X_p)
        return calibrator(pred.propensity, p_rfm) if propensity_used == MODEL else p_rfm

    valid_targets = valid.targets.reset_index(drop=True)
    X_valid, valid_labels = _features(history, valid_targets, cfg), window_labels(history, valid_targets, horizon_days)
    vf.churn_calibrator = _fit_churn_calibrator(vf, X_valid, valid_labels["inactive"].to_numpy(), p_none_of(valid_pred))
    if len(X_valid):
        vf.revenue_stack = fit_revenue_stack(valid_labels["revenue"],
                                             vf._revenue_parts(X_valid, propensity_of(X_valid, valid_targets, valid_pred)))
    test_targets = test.targets.reset_index(drop=True)
    X_test = _features(history, test_targets, cfg)
    propensity = propensity_of(X_test, test_targets, test_pred)
    has_prices = bool((_amounts(history) != 0).any())
    _choose(vf, X_test, window_labels(history, test_targets, horizon_days), propensity, p_none_of(test_pred),
            has_prices)
    return vf


def p_none_of(pred) -> np.ndarray:
    """The sequence model's chance of no event in the horizon, from its next-event-type probabilities."""
    from core.model.config import EVENT_CLASSES

    return np.asarray(pred.type_proba, dtype=float)[:, EVENT_CLASSES.index(NONE_CLASS)]


def _choose(vf: ValueForecast, X: pd.DataFrame, labels: pd.DataFrame, propensity: np.ndarray, p_none: np.ndarray,
            has_prices: bool) -> None:
    """Measure every forecast of both heads on the held-out window and keep the best of each (in place)."""
    vf.card = {"expected_revenue": _revenue_entry(vf, X, labels["revenue"].to_numpy(), propensity, has_prices),
               "p_inactive": _churn_entry(vf, X, labels["inactive"].to_numpy(), p_none)}
    vf.used = {head: entry["used"] for head, entry in vf.card.items()}


def _revenue_entry(vf: ValueForecast, X: pd.DataFrame, revenue: np.ndarray, propensity: np.ndarray,
                   has_prices: bool) -> dict:
    from core.model.evaluation import pick_forecast

    if not has_prices:
        return {"metrics": {}, "used": None, "reference": {}, "oracle_top_decile_share": None,
                "note": "The data has no purchase prices, so expected revenue is not forecast (the column is empty)."}
    metrics = {name: evaluate_revenue(revenue, f) for name, f in vf.revenue_forecasts(X, propensity).items()}
    alone = evaluate_revenue(revenue, propensity)
    alone["level"] = None  # a probability, not an amount
    buyers = int((revenue > 0).sum())
    if buyers < config.MIN_BUYERS_TO_MEASURE:
        used, note = MODEL, (f"Too few buyers to measure: {buyers} of {len(revenue)} shoppers spent in the held-out "
                             f"window (at least {config.MIN_BUYERS_TO_MEASURE} are needed); the model's forecast is "
                             "used.")
    else:
        used, note = pick_forecast(metrics, "spearman", True)
        mine = metrics[used]
        note += (f" Ranking the held-out window's spend, the forecast in use has Spearman {_num(mine['spearman'])} "
                 f"and its top 10 % hold {_pct(mine['top_decile_share'])} of the revenue; the purchase propensity "
                 f"alone: Spearman {_num(alone['spearman'])}, top 10 % {_pct(alone['top_decile_share'])}.")
    return {"metrics": metrics, "used": used, "note": note, "reference": {PROPENSITY_ALONE: alone},
            "oracle_top_decile_share": top_share(revenue, revenue)}


def _churn_entry(vf: ValueForecast, X: pd.DataFrame, inactive: np.ndarray, p_none: np.ndarray) -> dict:
    from core.model.evaluation import calibration_table, pick_forecast

    forecasts = vf.churn_forecasts(X, p_none)
    metrics = {name: evaluate_churn(inactive, f) for name, f in forecasts.items()}
    n_inactive = int(inactive.sum())
    if min(n_inactive, len(inactive) - n_inactive) < config.MIN_BUYERS_TO_MEASURE:
        return {"metrics": metrics, "used": MODEL, "calibration": [],
                "note": (f"Too few shoppers to measure: {n_inactive} of {len(inactive)} did nothing in the held-out "
                         f"window (at least {config.MIN_BUYERS_TO_MEASURE} of each kind are needed); the model's "
                         "forecast is used.")}
    used, note = pick_forecast(metrics, "roc_auc", True)
    rec = metrics[RECENCY]
    note += (f" Calibration error (mean gap between forecast and observed share, by tenths): "
             f"{_num(metrics[used]['calibration_error'])} for the forecast in use, {_num(rec['calibration_error'])} "
             f"for recency alone (ROC-AUC {_num(rec['roc_auc'])}).")
    return {"metrics": metrics, "used": used, "note": note,
            "calibration": calibration_table(inactive, forecasts[used]).to_dict("records")}


def _num(v) -> str:
    return "—" if v is None else f"{v:.3f}"


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f} %"
