"""Uplift: whom a campaign moved, learned from a measured export's exported and held-out shoppers.

Definitions (the Campaigns page and ``cartsight uplift`` state them):

- **campaign**: one export with a holdout whose outcome window has passed
  (:func:`core.campaigns.results.member_outcomes`: the window, the outcome "bought at least once in
  it", from the dataset's later events or an orders file). **Treatment**: exported (1) or held out (0).
- **features** of each member: the recency, frequency, monetary and recent-activity features of the
  model's gradient-boosting baseline (:func:`core.model.rfm_baseline.rfm_features_from_store`) read
  **as of the export's as-of time** (events after it are the outcome, never a feature), plus the
  purchase propensity the export's model gave the shopper, when the export had a model and the
  dataset still has a ready one to score with (missing propensities take the median).
- **learner**: two models (T-learner): gradient boosting of "bought in the window" on the exported
  shoppers, and another on the held-out ones; a shopper's **uplift** = chance to buy if contacted −
  chance if not, within the campaign's window (−1..1; shown in points).
- **cross-fitting**: the members are split into :data:`core.config.UPLIFT_FOLDS` folds stratified by
  group and outcome; each fold's estimates come from models fitted on the other folds, so the quality
  below is measured on shoppers the models did not see. Each fold is ranked and measured on its own
  (its model's scale is its own), and the folds' numbers are combined: coefficients averaged by the
  folds' sizes, curves summed at the same share of every fold; the whole is repeated with
  :data:`core.config.UPLIFT_REPEATS` different splits and averaged (one split moves the numbers by more
  than their interval says).
- **Qini curve** of a ranking (Radcliffe 2007): the shoppers ranked best first; at the top k,
  incremental buyers = buyers among the exported of the top k − buyers among the held-out of the
  top k × (exported ÷ held-out in the top k). **Random** targeting is the straight line to the whole
  campaign's incremental buyers. **Qini coefficient**: the area between a ranking's curve and the random
  line, ÷ shoppers² (so 0 = no better than random, whatever the sizes); its 95 % interval, and that of
  the difference to ranking by propensity, by a seeded Poisson bootstrap of the shoppers.
- **better than random** needs both the uplift ranking's interval above zero and a randomisation test:
  the campaign's exported / held-out labels shuffled within the propensity deciles the holdout was drawn
  in, the models fitted again :data:`core.config.UPLIFT_PERMUTATIONS` times; p = the share of those (and
  the campaign itself) whose coefficient reaches the campaign's, at most :data:`core.config.UPLIFT_ALPHA`.
  A fitted ranking's bootstrap interval alone is too narrow: it holds the fitted models fixed.
- **verdict**: "better than ranking by chance to buy" when better than random and the difference to the
  propensity ranking's coefficient has its interval above zero; "better than random, no better than
  ranking by chance to buy" when only better than random; else "no better than random".
- **scoring**: the final two models, fitted on every member, estimate every shopper of the dataset
  from their features at the data's end now (and the newest model's propensity). Stored per shopper in
  ``cs_uplift`` under a ``cs_uplift_runs`` row, so target lists rank ("persuadables": highest uplift
  first) and filter by it.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import config, store
from core.campaigns.exports import MEMBER_TARGET
from core.campaigns.results import STATUS_OPEN, Orders, member_outcomes
from core.errors import CartsightError, NotFittedError
from core.store import sql

LEARNER = "two models (T-learner), gradient boosting of 'bought in the window' on each group"
VERDICT_BETTER = "better than ranking by chance to buy"
VERDICT_RANDOM_ONLY = "better than random, no better than ranking by chance to buy"
VERDICT_NONE = "no better than random"
VERDICT_RANDOM_NO_PROPENSITY = "better than random (the list had no propensity to compare with)"
PROPENSITY_FEATURE = "propensity"
RANKINGS = ("uplift", "propensity", "random")
_BOOTSTRAP_CELLS = 2_000_000
_p = store.predictions.c
_u = store.uplift.c
_r = store.uplift_runs.c


# --- the learner ----------------------------------------------------------------------------------------


@dataclass
class TwoModelUplift:
    """Two gradient-boosting classifiers, one per group; ``predict`` gives P(buy | exported) − P(buy | held out).

    Parameters are stored as given; ``fit`` validates and returns ``self``; learned state ends in ``_``.
    """

    seed: int = config.UPLIFT_SEED
    max_iter: int = config.UPLIFT_TREES
    learning_rate: float = config.UPLIFT_LEARNING_RATE
    max_leaf_nodes: int = config.UPLIFT_TREE_LEAVES
    min_samples_leaf: int = config.UPLIFT_MIN_LEAF_SHOPPERS
    models_: dict = field(default_factory=dict, repr=False)

    def _classifier(self):
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=self.max_iter, learning_rate=self.learning_rate,
                                              max_leaf_nodes=self.max_leaf_nodes,
                                              min_samples_leaf=self.min_samples_leaf, early_stopping=False,
                                              random_state=self.seed)

    def fit(self, features: np.ndarray, treated: np.ndarray, converted: np.ndarray) -> TwoModelUplift:
        """Fit one model per group. ``CartsightError`` when a group has no buyer or only buyers."""
        from threadpoolctl import threadpool_limits

        treated, converted = np.asarray(treated, dtype=bool), np.asarray(converted, dtype=int)
        self.models_ = {}
        for group, mask in (("exported", treated), ("held out", ~treated)):
            y = converted[mask]
            if y.size == 0 or y.min() == y.max():
                raise CartsightError(f"The {group} shoppers of this fold are {y.size:,}, of whom {int(y.sum()):,} "
                                     "bought: a model of their chance to buy needs buyers and non-buyers.")
            with threadpool_limits(1):
                self.models_[group] = self._classifier().fit(np.asarray(features)[mask], y)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Estimated uplift per row (−1..1). ``NotFittedError`` before :meth:`fit`."""
        if not self.models_:
            raise NotFittedError("TwoModelUplift is not fitted yet: call fit(...) before asking it for uplift.")
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            treated = self.models_["exported"].predict_proba(features)[:, 1]
            control = self.models_["held out"].predict_proba(features)[:, 1]
        return treated - control


# --- Qini -----------------------------------------------------------------------------------------------


def _ranked(score: np.ndarray, seed: int) -> np.ndarray:
    """Order of the rows, highest score first, ties in a seeded random order (not the rows' own order)."""
    tie = np.random.default_rng(seed).random(len(score))
    return np.lexsort((tie, -np.asarray(score, dtype=float)))


def _incremental(weights: np.ndarray, treated: np.ndarray, converted: np.ndarray) -> np.ndarray:
    """Cumulative incremental buyers down a ranking, for each row of ``weights`` (resamples × shoppers)."""
    t, y = treated.astype(float), converted.astype(float)
    n_t, n_c = np.cumsum(weights * t, axis=1), np.cumsum(weights * (1 - t), axis=1)
    y_t, y_c = np.cumsum(weights * t * y, axis=1), np.cumsum(weights * (1 - t) * y, axis=1)
    scale = np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c > 0)
    return y_t - y_c * scale


def _coefficients(weights: np.ndarray, treated: np.ndarray, converted: np.ndarray) -> np.ndarray:
    """Qini coefficient per row of ``weights``: the area between the curve and the random line ÷ shoppers²."""
    gain = _incremental(weights, treated, converted)
    total = weights.sum(axis=1, keepdims=True)
    share = np.cumsum(weights, axis=1) / total
    return ((gain - share * gain[:, -1:]) * weights).sum(axis=1) / total[:, 0] ** 2


def qini_curve(score: np.ndarray, treated: np.ndarray, converted: np.ndarray, seed: int = config.UPLIFT_SEED,
               n_points: int = config.UPLIFT_CURVE_POINTS) -> pd.DataFrame:
    """The Qini curve of ranking by ``score``: ``share`` of shoppers targeted (0–1) and ``incremental`` buyers.

    Starts at (0, 0), ends at (1, the campaign's incremental buyers); ``n_points`` + 1 evenly spaced points.
    """
    order = _ranked(score, seed)
    gain = _incremental(np.ones((1, len(order))), np.asarray(treated)[order], np.asarray(converted)[order])[0]
    gain = np.concatenate([[0.0], gain])
    idx = np.unique(np.linspace(0, len(order), min(n_points, len(order)) + 1).round().astype(int))
    return pd.DataFrame({"share": idx / max(len(order), 1), "incremental": gain[idx]})


def qini_coefficient(score: np.ndarray, treated: np.ndarray, converted: np.ndarray,
                     seed: int = config.UPLIFT_SEED) -> float:
    """The Qini coefficient of ranking by ``score`` (0: random targeting; see the module docstring)."""
    order = _ranked(score, seed)
    return float(_coefficients(np.ones((1, len(order))), np.asarray(treated)[order],
                               np.asarray(converted)[order])[0])


def _fold_orders(score: np.ndarray, folds: np.ndarray, seed: int) -> list[np.ndarray]:
    """Per fold, the positions of its shoppers ranked by ``score`` within the fold (best first)."""
    out = []
    for f in np.unique(folds):
        rows = np.flatnonzero(folds == f)
        out.append(rows[_ranked(score[rows], seed)])
    return out


def _pooled(weights: np.ndarray, orders: list[np.ndarray], treated: np.ndarray, converted: np.ndarray) -> np.ndarray:
    """The folds' Qini coefficients (each on its own shoppers, ranked within it), averaged by the folds' weights."""
    sizes = np.stack([weights[:, o].sum(axis=1) for o in orders], axis=1)
    coefs = np.stack([_coefficients(weights[:, o], treated[o], converted[o]) for o in orders], axis=1)
    return (coefs * sizes).sum(axis=1) / sizes.sum(axis=1)


def _repeats(scores: dict, folds, n: int) -> tuple[list[np.ndarray], dict[str, list[np.ndarray]]]:
    """The fold arrays of each cross-fitting repeat and each ranking's score per repeat (one array: every repeat)."""
    folds = [np.zeros(n, dtype=int)] if folds is None else folds if isinstance(folds, list) else [np.asarray(folds)]
    per = {name: [np.asarray(x, dtype=float) for x in s] if isinstance(s, list) else [np.asarray(s, dtype=float)]
           * len(folds) for name, s in scores.items()}
    return folds, per


def compare_rankings(scores: dict, treated: np.ndarray, converted: np.ndarray, folds=None,
                     seed: int = config.UPLIFT_SEED, resamples: int = config.UPLIFT_BOOTSTRAP_RESAMPLES) -> dict:
    """Each ranking's Qini coefficient with a 95 % interval, and every ranking's difference to the first one's.

    ``scores``: ranking name → score per shopper (highest targeted first), or a list of them, one per
    cross-fitting repeat. ``folds``: the cross-fitting fold of each shopper, or a list of them, one per repeat
    (None: one fold). Each fold is ranked and measured on its own, with the model that did not see it, and the
    folds' coefficients are averaged by their sizes (pooled into one ranking, a fold whose shoppers responded
    more would meet a model fitted on the others' data, which expects less); the repeats are averaged, as one
    split of the shoppers into folds moves the number by more than its interval says. Returns ``{name: {"qini",
    "ci_low", "ci_high"}}`` plus ``{"<first> - <name>": {"difference", "ci_low", "ci_high"}}`` for the others,
    from the same seeded Poisson-bootstrap resamples of the shoppers for every ranking and repeat.
    """
    rng = np.random.default_rng(seed)
    treated, converted = np.asarray(treated), np.asarray(converted)
    splits, per = _repeats(scores, folds, len(treated))
    orders = {name: [_fold_orders(x, f, seed) for x, f in zip(s, splits)] for name, s in per.items()}

    def pooled(w: np.ndarray, name: str) -> np.ndarray:
        return np.mean([_pooled(w, o, treated, converted) for o in orders[name]], axis=0)

    draws = {name: [] for name in scores}
    batch = max(1, min(50, _BOOTSTRAP_CELLS // max(len(treated), 1)))  # resamples × shoppers held at once
    for start in range(0, resamples, batch):
        w = rng.poisson(1.0, size=(min(batch, resamples - start), len(treated))).astype(float)
        for name in orders:
            draws[name].append(pooled(w, name))
    draws = {name: np.concatenate(parts) for name, parts in draws.items()}
    point = {name: float(pooled(np.ones((1, len(treated))), name)[0]) for name in orders}
    out = {}
    for name in scores:
        low, high = np.percentile(draws[name], [2.5, 97.5])
        out[name] = {"qini": point[name], "ci_low": float(low), "ci_high": float(high)}
    first = next(iter(scores))
    for name in list(scores)[1:]:
        low, high = np.percentile(draws[first] - draws[name], [2.5, 97.5])
        out[f"{first} - {name}"] = {"difference": point[first] - point[name], "ci_low": float(low),
                                    "ci_high": float(high)}
    return out


def fold_curve(score: np.ndarray, treated: np.ndarray, converted: np.ndarray, folds: np.ndarray,
               seed: int = config.UPLIFT_SEED, n_points: int = config.UPLIFT_CURVE_POINTS) -> pd.DataFrame:
    """The Qini curve of targeting the same top share of every fold (each ranked within itself): ``share`` (0–1)
    and ``incremental`` buyers summed over the folds."""
    share = np.linspace(0.0, 1.0, n_points + 1)
    total = np.zeros(len(share))
    for order in _fold_orders(np.asarray(score, dtype=float), np.asarray(folds), seed):
        gain = np.concatenate([[0.0], _incremental(np.ones((1, len(order))), np.asarray(treated)[order],
                                                   np.asarray(converted)[order])[0]])
        total += gain[np.round(share * len(order)).astype(int)]
    return pd.DataFrame({"share": share, "incremental": total})


def verdict(qini: dict) -> str:
    """:data:`VERDICT_BETTER`, :data:`VERDICT_RANDOM_ONLY`, :data:`VERDICT_RANDOM_NO_PROPENSITY` (no propensity
    ranking to compare with) or :data:`VERDICT_NONE` from :func:`compare_rankings` (and, when its ``uplift`` has
    one, the randomisation test's ``p_value``: at most :data:`core.config.UPLIFT_ALPHA` is needed too)."""
    u = qini["uplift"]
    if u["ci_low"] <= 0 or u.get("p_value", 0.0) > config.UPLIFT_ALPHA:
        return VERDICT_NONE
    diff = qini.get("uplift - propensity")
    if diff is None:
        return VERDICT_RANDOM_NO_PROPENSITY
    return VERDICT_BETTER if diff["ci_low"] > 0 else VERDICT_RANDOM_ONLY


# --- the campaign's shoppers ----------------------------------------------------------------------------


def _shoppers(engine: Engine, dataset_id: int, before: dt.datetime) -> list[str]:
    """The dataset's shoppers with an event before ``before``, in the database's own order (for range chunks)."""
    e = store.events.c
    query = (sa.select(e.user_id).where(e.dataset_id == dataset_id, e.event_time < before)
             .group_by(e.user_id).order_by(e.user_id))
    with engine.connect() as conn:
        return [str(u) for u in conn.execute(query).scalars()]


def features_at(engine: Engine, dataset_id: int, cutoff: dt.datetime, propensity_version: str | None) -> pd.DataFrame:
    """Every shopper's features from their events before ``cutoff`` (indexed by user_id, database order), plus
    ``propensity`` from ``propensity_version``'s forecasts when given (the median where a shopper has none)."""
    from core.model.rfm_baseline import rfm_features_from_store
    from core.model.sequences import user_chunks

    users = _shoppers(engine, dataset_id, cutoff)
    parts = [rfm_features_from_store(engine, dataset_id, chunk, cutoff,
                                     users[i * config.UPLIFT_CHUNK_USERS:(i + 1) * config.UPLIFT_CHUNK_USERS])
             for i, chunk in enumerate(user_chunks(users, config.UPLIFT_CHUNK_USERS, exhaustive=True))]
    frame = pd.concat(parts) if parts else pd.DataFrame(index=pd.Index([], name="user_id", dtype=object))
    if propensity_version is not None:
        query = sa.select(_p.user_id, _p.purchase_propensity).where(_p.dataset_id == dataset_id,
                                                                    _p.model_version == propensity_version)
        with engine.connect() as conn:
            known = pd.Series(dict(conn.execute(query).all()), dtype=float)
        p = known.reindex(frame.index).astype(float)
        frame[PROPENSITY_FEATURE] = p.fillna(p.median()).fillna(0.0)
    return frame


def _check_sizes(frame: pd.DataFrame, export_id: int) -> None:
    """Refuse a campaign too small to learn from, naming its sizes and the minimums."""
    t = frame["treated"].astype(bool)
    n_t, n_c = int(t.sum()), int((~t).sum())
    b_t, b_c = int(frame.loc[t, "converted"].sum()), int(frame.loc[~t, "converted"].sum())
    need_n, need_b = config.UPLIFT_MIN_GROUP_SHOPPERS, config.UPLIFT_MIN_GROUP_BUYERS
    if min(n_t, n_c) < need_n or min(b_t, b_c) < need_b:
        raise CartsightError(
            f"Not enough shoppers in the campaign of export {export_id}: {n_t:,} treated ({b_t:,} bought), "
            f"{n_c:,} holdout ({b_c:,} bought); an uplift model needs >= {need_n:,} shoppers and >= {need_b:,} "
            "buyers in each group. Export a larger list, or keep a larger holdout share, and measure again.")


def campaign_frame(engine: Engine, dataset: str, export_id: int, days: int | None = None,
                   orders: Orders | None = None) -> tuple[pd.DataFrame, list[str], dict]:
    """The members of a measured export with their features as of its as-of time, treatment and outcome.

    Returns ``(frame, feature_names, measured)``: ``frame`` indexed by user_id with the features,
    ``treated`` (1 exported, 0 held out), ``converted`` (0/1 in the window) and ``stratum`` (the propensity
    decile the holdout was drawn in); ``measured`` is
    :func:`core.campaigns.results.member_outcomes`' dict. Errors: those of ``member_outcomes``;
    ``CartsightError`` while the window is still open, and when the groups are too small
    (:data:`core.config.UPLIFT_MIN_GROUP_SHOPPERS`, :data:`core.config.UPLIFT_MIN_GROUP_BUYERS`).
    """
    measured = member_outcomes(engine, dataset, export_id, days, orders)
    if measured["status"] == STATUS_OPEN:
        raise CartsightError(f"Export {export_id}'s campaign cannot be learned from yet: {measured['status_text']}")
    members = measured["frame"].set_index("user_id")
    row = measured["row"]
    did = int(row["dataset_id"])
    version = row["model_version"] if sql.newest_ready_model_version(engine, did) is not None else None
    cutoff = measured["as_of"] + dt.timedelta(microseconds=1)  # the as-of instant is in the list's data
    feats = features_at(engine, did, cutoff, version)
    frame = feats.reindex(members.index)
    frame = frame.fillna({c: 0.0 for c in frame.columns})
    frame["treated"] = (members["group_name"] == MEMBER_TARGET).astype(int)
    frame["converted"] = members["converted"].astype(int)
    frame["stratum"] = members["decile"]
    _check_sizes(frame, export_id)
    return frame, list(feats.columns), measured


# --- fitting, measuring, storing ------------------------------------------------------------------------


def randomisation_p_value(frame: pd.DataFrame, names: list[str], observed: float, seed: int = config.UPLIFT_SEED,
                          permutations: int = config.UPLIFT_PERMUTATIONS) -> float:
    """P-value of "the uplift ranking is no better than random": the share of re-randomised campaigns
    (:func:`null_qinis`) whose Qini coefficient reaches ``observed``, counting the campaign itself."""
    return p_value_among(observed, null_qinis(frame, names, seed, permutations))


def null_qinis(frame: pd.DataFrame, names: list[str], seed: int = config.UPLIFT_SEED,
               permutations: int = config.UPLIFT_PERMUTATIONS) -> np.ndarray:
    """The Qini coefficients of ``permutations`` re-randomised campaigns: exported / held-out labels shuffled within
    ``stratum``, the propensity deciles the holdout was drawn in; models fitted again, one cross-fitting each."""
    rng = np.random.default_rng(seed + 1)
    strata = frame["stratum"].to_numpy() if "stratum" in frame else np.zeros(len(frame))
    t, y = frame["treated"].to_numpy(), frame["converted"].to_numpy()
    nulls = np.zeros(permutations)
    for i in range(permutations):
        shuffled = t.copy()
        for key in np.unique(strata):
            rows = np.flatnonzero(strata == key)
            shuffled[rows] = rng.permutation(t[rows])
        estimates, folds = cross_fitted(frame.assign(treated=shuffled), names, seed + 100 + i)
        nulls[i] = compare_rankings({"uplift": estimates}, shuffled, y, folds, seed, resamples=1)["uplift"]["qini"]
    return nulls


def p_value_among(observed: float, nulls: np.ndarray) -> float:
    """The share of the re-randomised campaigns' Qini coefficients ``nulls`` that reach ``observed``, counting the
    campaign itself (so never below 1 / (1 + their number))."""
    return (1 + int(np.sum(np.asarray(nulls) >= observed))) / (1 + len(nulls))


def repeated_cross_fits(frame: pd.DataFrame, names: list[str], seed: int = config.UPLIFT_SEED,
                        repeats: int = config.UPLIFT_REPEATS) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(each repeat's cross-fitted estimates, each repeat's folds): :func:`cross_fitted` with seeds seed, seed+1, …"""
    fits = [cross_fitted(frame, names, seed + r) for r in range(repeats)]
    return [f[0] for f in fits], [f[1] for f in fits]


def cross_fitted(frame: pd.DataFrame, names: list[str], seed: int = config.UPLIFT_SEED,
                 folds: int = config.UPLIFT_FOLDS) -> tuple[np.ndarray, np.ndarray]:
    """(each row's uplift from models fitted on the other folds, each row's fold); the folds are stratified by
    ``treated`` × ``converted``."""
    from sklearn.model_selection import StratifiedKFold

    x = frame[names].to_numpy(dtype=float)
    t, y = frame["treated"].to_numpy(), frame["converted"].to_numpy()
    out, fold_of = np.zeros(len(frame)), np.zeros(len(frame), dtype=int)
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, t * 2 + y)
    for k, (fit_rows, held_rows) in enumerate(split):
        model = TwoModelUplift(seed=seed).fit(x[fit_rows], t[fit_rows], y[fit_rows])
        out[held_rows], fold_of[held_rows] = model.predict(x[held_rows]), k
    return out, fold_of


@dataclass
class UpliftFit:
    """A fitted uplift run: ``run_id`` (its ``cs_uplift_runs`` row), ``report`` (JSON-ready, see
    :func:`fit_uplift`) and ``held_out`` (one row per campaign member: user_id, treated, converted, uplift: the
    cross-fitted estimate averaged over the repeats, fold: the fold it was held out in by the first repeat,
    propensity: the export's, NaN without one)."""

    run_id: int
    report: dict
    held_out: pd.DataFrame


def _curves(scores: dict, t: np.ndarray, y: np.ndarray, folds: list[np.ndarray], seed: int) -> dict:
    """Each ranking's Qini curve over the folds, averaged over the repeats (shares in %), and the random line, as
    lists for JSON."""
    splits, per = _repeats(scores, folds, len(t))
    out = {}
    for name, repeats in per.items():
        parts = [fold_curve(x, t, y, f, seed) for x, f in zip(repeats, splits)]
        curve = parts[0].assign(incremental=np.mean([p["incremental"] for p in parts], axis=0))
        out[name] = {"share_pct": (curve["share"] * 100).round(4).tolist(), "incremental": curve["incremental"].tolist()}
    total = next(iter(out.values()))["incremental"][-1]
    out["random"] = {"share_pct": [0.0, 100.0], "incremental": [0.0, total]}
    return out


def _measure(frame: pd.DataFrame, names: list[str], seed: int) -> tuple[dict, pd.DataFrame]:
    """The cross-fitted estimates and the Qini numbers, curves and verdict on them."""
    repeats, folds = repeated_cross_fits(frame, names, seed)
    t, y = frame["treated"].to_numpy(), frame["converted"].to_numpy()
    scores = {"uplift": repeats}
    estimates = np.mean(repeats, axis=0)
    if PROPENSITY_FEATURE in names:
        scores["propensity"] = frame[PROPENSITY_FEATURE].to_numpy(dtype=float)
    qini = compare_rankings(scores, t, y, folds, seed)
    qini["uplift"]["p_value"] = randomisation_p_value(frame, names, qini["uplift"]["qini"], seed)
    held = pd.DataFrame({"user_id": frame.index.astype(str), "treated": t, "converted": y, "uplift": estimates,
                         "fold": folds[0], "propensity": scores.get("propensity", np.full(len(frame), np.nan))})
    return {"qini": qini, "curves": _curves(scores, t, y, folds, seed), "verdict": verdict(qini)}, held


def _score_everyone(engine: Engine, dataset_id: int, frame: pd.DataFrame, names: list[str],
                    seed: int) -> tuple[pd.Series, dt.datetime, str | None]:
    """The final models (fitted on every member) applied to every shopper's features at the data's end now."""
    model = TwoModelUplift(seed=seed).fit(frame[names].to_numpy(dtype=float), frame["treated"].to_numpy(),
                                          frame["converted"].to_numpy())
    version = sql.newest_ready_model_version(engine, dataset_id) if PROPENSITY_FEATURE in names else None
    e = store.events.c
    with engine.connect() as conn:
        end = conn.execute(sa.select(sa.func.max(e.event_time)).where(e.dataset_id == dataset_id)).scalar()
    now = features_at(engine, dataset_id, end + dt.timedelta(microseconds=1), version)
    uplift = model.predict(now[names].to_numpy(dtype=float)) if len(now) else np.zeros(0)
    return pd.Series(uplift, index=now.index.astype(str), name="uplift"), end, version


def _store_run(engine: Engine, dataset_id: int, report: dict, scores: pd.Series) -> int:
    """Insert the run's row and every shopper's estimate in one transaction; returns the run id."""
    with engine.begin() as conn:
        run_id = int(conn.execute(sa.select(store.uplift_run_id_seq.next_value())).scalar_one())
        conn.execute(store.uplift_runs.insert().values(
            run_id=run_id, dataset_id=dataset_id, export_id=report["export_id"], created_at=_now(),
            window_days=report["window_days"], scored_at=report["scored_at"], model_version=report["model_version"],
            verdict=report["verdict"], report_json=json.dumps(report, default=str)))
        rows = pd.DataFrame({"dataset_id": dataset_id, "run_id": run_id, "user_id": scores.index.astype(str),
                             "uplift": scores.to_numpy(dtype=float)})
        if len(rows):
            store.bulk_insert(conn, store.uplift, rows)
    return run_id


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def fit_uplift(engine: Engine, dataset: str, export_id: int, days: int | None = None, orders: Orders | None = None,
               seed: int = config.UPLIFT_SEED) -> UpliftFit:
    """Learn whom export ``export_id``'s campaign moved, measure that on shoppers the models did not see, and store
    every shopper's estimated uplift for the dataset's next lists (definitions: the module docstring).

    ``days`` / ``orders``: the outcome window's length and an orders file, as for
    :func:`core.campaigns.results.campaign_results`. The report (JSON-ready) holds: run_id, dataset,
    export_id, as_of, window_days, scored_at, model_version (of the propensity when scoring; None
    without), treated, holdout, converted_treated, converted_holdout, features, learner, folds, qini
    (per ranking: qini, ci_low, ci_high; "uplift - propensity": difference, ci_low, ci_high), curves
    (per ranking and "random": share_pct, incremental), verdict, verdict_text, n_scored,
    persuadable_share (scored shoppers with an estimate above zero), repeats, notes. Errors: as :func:`campaign_frame`.
    """
    frame, names, measured = campaign_frame(engine, dataset, export_id, days, orders)
    measured_part, held = _measure(frame, names, seed)
    did = int(measured["row"]["dataset_id"])
    scores, end, version = _score_everyone(engine, did, frame, names, seed)
    t = frame["treated"].astype(bool)
    report = {"dataset": dataset, "export_id": int(export_id), "as_of": measured["as_of"],
              "window_days": measured["window_days"], "scored_at": end, "model_version": version,
              "treated": int(t.sum()), "holdout": int((~t).sum()),
              "converted_treated": int(frame.loc[t, "converted"].sum()),
              "converted_holdout": int(frame.loc[~t, "converted"].sum()), "features": names, "learner": LEARNER,
              "folds": config.UPLIFT_FOLDS, "repeats": config.UPLIFT_REPEATS, **measured_part, "n_scored": int(len(scores)),
              "persuadable_share": float((scores > 0).mean()) if len(scores) else None,
              "notes": list(measured["notes"])}
    if PROPENSITY_FEATURE not in names:
        report["notes"].append("The export had no forecasts: the uplift ranking is compared with random targeting "
                               "only, and the propensity is no feature.")
    report["verdict_text"] = verdict_text(report)
    run_id = _store_run(engine, did, report, scores)
    report["run_id"] = run_id
    return UpliftFit(run_id=run_id, report=report, held_out=held)


def _pts(value: float) -> str:
    return f"{value * 100:+.2f}"


def verdict_text(report: dict) -> str:
    """The verdict in one sentence with the Qini numbers (coefficients in points of the shoppers)."""
    q = report["qini"]
    u = q["uplift"]
    text = (f"Ranking by estimated uplift is {report['verdict']} on the {report['treated'] + report['holdout']:,} "
            f"shoppers of export #{report['export_id']}, each estimated by models that did not see them: Qini "
            f"{_pts(u['qini'])} (95 % CI {_pts(u['ci_low'])} to {_pts(u['ci_high'])}; random targeting 0; "
            f"randomisation test p = {u['p_value']:.2f})")
    if "propensity" in q:
        d = q["uplift - propensity"]
        text += (f", ranking by chance to buy {_pts(q['propensity']['qini'])}; uplift minus chance to buy "
                 f"{_pts(d['difference'])} (95 % CI {_pts(d['ci_low'])} to {_pts(d['ci_high'])})")
    return text + "."


# --- what is stored -------------------------------------------------------------------------------------


def _run(engine: Engine, *where) -> dict | None:
    """The newest ``cs_uplift_runs`` row matching ``where`` (``report`` decoded), or None."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(store.uplift_runs).where(*where).order_by(_r.run_id.desc()).limit(1)
                           ).mappings().first()
    if row is None:
        return None
    out = dict(row)
    out["report"] = json.loads(out.pop("report_json"))
    return out


def latest_run(engine: Engine, dataset_id: int) -> dict | None:
    """The dataset's newest uplift run (its ``cs_uplift_runs`` columns, ``report`` decoded), or None: the one
    target lists rank and filter by."""
    return _run(engine, _r.dataset_id == dataset_id)


def latest_run_for_export(engine: Engine, dataset: str, export_id: int) -> dict | None:
    """The newest uplift run learned from ``export_id`` of ``dataset`` (as :func:`latest_run`), or None."""
    did = int(store.get_dataset(engine, dataset)["dataset_id"])
    return _run(engine, _r.dataset_id == did, _r.export_id == int(export_id))


def summary_lines(report: dict) -> list[str]:
    """The report as lines of text for the command line."""
    q = report["qini"]
    lines = [f"uplift model for export #{report['export_id']} of {report['dataset']} (run {report.get('run_id')}): "
             f"{report['treated']:,} exported ({report['converted_treated']:,} bought), {report['holdout']:,} held out "
             f"({report['converted_holdout']:,} bought) in a {report['window_days']}-day window",
             f"learner: {report['learner']}; {report['folds']}-fold cross-fitting repeated {report['repeats']} times; "
             "features: "
             f"{', '.join(report['features'])}",
             "Qini coefficient (area between the curve and random targeting ÷ shoppers², in points; 95 % CI):"]
    for name in RANKINGS[:2]:
        if name in q:
            test = f"; randomisation test p = {q[name]['p_value']:.2f}" if "p_value" in q[name] else ""
            lines.append(f"  by {name:<10} {_pts(q[name]['qini'])} ({_pts(q[name]['ci_low'])} to "
                         f"{_pts(q[name]['ci_high'])}{test})")
    lines.append("  random        +0.00")
    lines += [f"verdict: {report['verdict']}", report["verdict_text"],
              f"scored {report['n_scored']:,} shoppers at {report['scored_at']}; "
              f"{(report['persuadable_share'] or 0) * 100:.1f} % have an estimated uplift above zero"]
    return lines + [f"note: {n}" for n in report["notes"]]
