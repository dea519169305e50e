"""Value and churn forecasts (core.model.value): labels, metrics, the Gamma-Gamma fit, the saved trees, the choice."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from core.errors import ParameterError
from core.model import value
from core.model.rfm_baseline import BaselineConfig, rfm_features

T = dt.datetime(2024, 3, 1)


def _event(user, days, kind="view", price=None, quantity=None):
    return {"user_id": user, "event_time": T + dt.timedelta(days=days), "event_type": kind, "item_id": "i",
            "category": "c", "price": price, "quantity": quantity}


def test_window_labels_sum_the_windows_purchases_net_of_cancellations():
    history = pd.DataFrame([
        _event("a", -3, "purchase", 50.0, 1),  # before the cutoff: not in the label
        _event("a", 1, "purchase", 10.0, 2),
        _event("a", 2, "purchase", 5.0, None),  # no quantity: one
        _event("b", 3, "purchase", 20.0, 1),
        _event("b", 4, "purchase", 20.0, -2),  # a cancellation larger than the window's purchases: floored at 0
        _event("c", 6.9, "view"),
        _event("c", 7.0, "purchase", 99.0, 1),  # at cutoff + horizon: outside
        _event("d", 8, "purchase", 30.0, 1),
    ])
    targets = pd.DataFrame({"user_id": ["a", "b", "c", "d"], "cutoff": T,
                            "next_event_type": ["purchase", "purchase", "view", "none"]})
    labels = value.window_labels(history, targets, horizon_days=7)
    assert labels["revenue"].tolist() == [25.0, 0.0, 0.0, 0.0]
    assert labels["inactive"].tolist() == [0, 0, 0, 1]


def test_window_labels_read_each_rows_own_cutoff():
    history = pd.DataFrame([_event("a", 1, "purchase", 10.0, 1), _event("a", 9, "purchase", 7.0, 3)])
    targets = pd.DataFrame({"user_id": ["a", "a"], "cutoff": [T, T + dt.timedelta(days=7)],
                            "next_event_type": ["purchase", "purchase"]})
    assert value.window_labels(history, targets, 7)["revenue"].tolist() == [10.0, 21.0]


def test_spearman_matches_hand_ranks_and_is_none_when_flat():
    assert value.spearman([0, 0, 10, 40], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.9486832980505138)
    assert value.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert value.spearman([0, 0, 0], [1, 2, 3]) is None
    assert value.spearman([1, 2, 3], [5, 5, 5]) is None
    with pytest.raises(ParameterError, match="same length"):
        value.spearman([1, 2], [1, 2, 3])


def test_top_share_counts_the_tie_at_the_cut_in_proportion():
    revenue = np.array([100.0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 300.0])  # 20 rows: top 2
    exact = np.arange(20, 0, -1, dtype=float)  # row 0 first, row 1 second
    assert value.top_share(revenue, exact) == pytest.approx(0.25)
    best = exact.copy()
    best[19] = 99.0
    assert value.top_share(revenue, best) == pytest.approx(1.0)
    flat = np.ones(20)  # a forecast that ranks nobody: the expected share of a random 2 of 20
    assert value.top_share(revenue, flat) == pytest.approx(0.1)
    tie = np.array([5.0, 3, 3, 3] + [0.0] * 16)  # 1 place left for 3 tied rows holding 0 of the 400
    assert value.top_share(revenue, tie) == pytest.approx(0.25)
    assert value.top_share(np.zeros(5), np.arange(5)) is None


def test_evaluate_revenue_and_churn_report_what_they_measure():
    m = value.evaluate_revenue([0, 10, 30], [1.0, 5.0, 20.0])
    assert (m["n"], m["buyers"], m["spearman"], m["level"]) == (3, 2, pytest.approx(1.0), pytest.approx(26 / 40))
    assert m["top_decile_share"] == pytest.approx(0.75)
    c = value.evaluate_churn([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert c["roc_auc"] == pytest.approx(0.75) and c["inactive_rate"] == 0.5
    assert c["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)


def test_gamma_gamma_mean_shrinks_a_shoppers_own_mean_to_everyones():
    p, q, v = 6.0, 4.0, 15.0
    population = p * v / (q - 1)  # 30
    out = value.gamma_gamma_mean((p, q, v), [0, 1, 10], [0.0, 90.0, 90.0])
    assert out[0] == pytest.approx(population)
    assert out[1] == pytest.approx((p * (v + 90)) / (p + q - 1))  # 70: pulled towards 30
    assert population < out[1] < out[2] < 90


def test_gamma_gamma_fit_recovers_the_population_mean():
    rng = np.random.default_rng(0)
    p, q, v = 6.0, 4.0, 15.0
    n = 3000
    x = rng.integers(1, 6, n)
    nu = rng.gamma(q, 1 / v, n)  # each shopper's rate; a purchase value is Gamma(p, nu)
    mean_value = np.array([rng.gamma(p, 1 / r, k).mean() for r, k in zip(nu, x)])
    fitted = value.fit_gamma_gamma(x, mean_value)
    fp, fq, fv = fitted
    assert fp * fv / (fq - 1) == pytest.approx(p * v / (q - 1), rel=0.1)
    assert value.fit_gamma_gamma([1] * 5, [10.0] * 5) is None  # too few buyers


@pytest.mark.parametrize("loss", ["poisson", "gamma", "squared_error"])
def test_regression_trees_forecast_as_scikit_learn_does(loss):
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 4))
    X[rng.random(X.shape) < 0.05] = np.nan  # missing values take the side the tree learnt
    y = np.exp(0.5 * np.nan_to_num(X[:, 0]) - 0.3 * np.nan_to_num(X[:, 1])) * rng.gamma(2.0, 1.0, 600)
    model = HistGradientBoostingRegressor(loss=loss, max_iter=30, random_state=0).fit(X, y)
    trees = value.RegressionTrees.from_sklearn(model)
    again = value.RegressionTrees.from_dict(trees.to_dict())
    np.testing.assert_allclose(again.predict(X), model.predict(X), rtol=1e-10)


def _examples(n_users: int, seed: int) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Shoppers whose spend and activity follow their past: heavy buyers keep buying, the idle stay idle."""
    rng = np.random.default_rng(seed)
    rows, targets = [], []
    for c, cutoff in enumerate([T, T + dt.timedelta(days=7), T + dt.timedelta(days=14)]):
        labels = []
        for u in range(n_users):
            rate, price = (u % 10) / 10, 5.0 + 5 * (u % 7)
            for d in range(-20, 0) if c == 0 else ():
                if rng.random() < rate / 2:
                    rows.append({**_event(f"u{u}", d), "event_time": cutoff + dt.timedelta(days=d)})
                    if rng.random() < rate:
                        rows.append({**_event(f"u{u}", d, "purchase", price, 1),
                                     "event_time": cutoff + dt.timedelta(days=d)})
            active = rng.random() < rate
            if active:
                rows.append({**_event(f"u{u}", 0), "event_time": cutoff + dt.timedelta(days=1)})
                if rng.random() < rate:
                    rows.append({**_event(f"u{u}", 0, "purchase", price, 1),
                                 "event_time": cutoff + dt.timedelta(days=1)})
            labels.append("view" if active else "none")
        targets.append(pd.DataFrame({"user_id": [f"u{u}" for u in range(n_users)], "cutoff": cutoff,
                                     "next_event_type": labels}))
    history = pd.DataFrame(rows).sort_values(["user_id", "event_time"], kind="stable", ignore_index=True)
    return history, targets


def test_fitted_parts_rank_heavy_buyers_first_and_save_as_json():
    history, targets = _examples(300, seed=2)
    train = pd.concat(targets[:2], ignore_index=True)
    cfg = BaselineConfig()
    X = value._features(history, train, cfg)
    assert X.loc[0].equals(rfm_features(history, T, users=["u0"], cfg=cfg).iloc[0].rename(0))
    labels = value.window_labels(history, train, 7)
    latest = (train["cutoff"] == train["cutoff"].max()).to_numpy()
    vf = value._fit_parts(X, labels, latest, cfg, 7)
    assert vf.spend is not None and vf.revenue_trees is not None and vf.churn_trees is not None
    assert vf.gamma_gamma is not None and vf.gamma_gamma_scale > 0
    test = targets[2]
    X_test = value._features(history, test, cfg)
    y_test = value.window_labels(history, test, 7)
    propensity = np.linspace(0.1, 0.2, len(test))  # an uninformed propensity: the value must come from the past
    forecasts = vf.revenue_forecasts(X_test, propensity)
    assert value.spearman(y_test["revenue"], forecasts[value.GB]) > 0.3
    churn = vf.churn_forecasts(X_test, np.full(len(test), 0.5))
    assert value.evaluate_churn(y_test["inactive"], churn[value.RECENCY])["roc_auc"] > 0.6
    assert np.all(np.diff(np.asarray(vf.recency[1])) >= 0)  # longer unseen, likelier to stay away

    value._choose(vf, X_test, y_test, propensity, np.full(len(test), 0.5), has_prices=True)
    assert set(vf.card["expected_revenue"]["metrics"]) == {value.MODEL, value.SPEND_X_PROPENSITY, value.GB,
                                                           value.GAMMA_GAMMA, value.PAST_SPEND}
    assert vf.card["expected_revenue"]["reference"][value.PROPENSITY_ALONE]["level"] is None
    assert set(vf.card["p_inactive"]["metrics"]) == {value.MODEL, value.GB, value.RECENCY}
    churn_metrics = vf.card["p_inactive"]["metrics"]  # no stack fitted on a validation window: the trees alone
    assert churn_metrics[value.MODEL]["roc_auc"] == churn_metrics[value.GB]["roc_auc"]
    assert vf.card["p_inactive"]["calibration"] and "recency alone" in vf.card["p_inactive"]["note"]
    # scoring computes only what the forecast in use needs: the same numbers as computing them all
    vf.revenue_stack = (1.0, 0.5, 0.8, 0.3, 0.0, 0.2, 0.1)  # a zero weight: the Poisson trees are not walked
    full_revenue = vf.revenue_forecasts(X_test, propensity)
    full_churn = vf.churn_forecasts(X_test, np.full(len(test), 0.5))
    for name in full_revenue:
        for churn_name in full_churn:
            vf.used = {"expected_revenue": name, "p_inactive": churn_name}
            revenue, lapse = vf.predict(X_test, propensity, np.full(len(test), 0.5))
            np.testing.assert_allclose(revenue, full_revenue[name], rtol=1e-12)
            np.testing.assert_allclose(lapse, np.clip(full_churn[churn_name], 0, 1), rtol=1e-12)
    again = value.ValueForecast.from_dict(vf.to_dict())
    for a, b in zip(again.predict(X_test, propensity, np.full(len(test), 0.5)),
                    vf.predict(X_test, propensity, np.full(len(test), 0.5))):
        np.testing.assert_array_equal(a, b)


def test_no_prices_leaves_expected_revenue_empty():
    history, targets = _examples(100, seed=3)
    history["price"] = None
    cfg = BaselineConfig()
    X = value._features(history, targets[0], cfg)
    labels = value.window_labels(history, targets[0], 7)
    vf = value._fit_parts(X, labels, np.ones(len(X), dtype=bool), cfg, 7)
    value._choose(vf, X, labels, np.full(len(X), 0.1), np.full(len(X), 0.5), has_prices=False)
    assert vf.used["expected_revenue"] is None and "no purchase prices" in vf.card["expected_revenue"]["note"]
    revenue, churn = vf.predict(X, np.full(len(X), 0.1), np.full(len(X), 0.5))
    assert np.isnan(revenue).all() and np.isfinite(churn).all()


def test_revenue_stack_learns_which_forecast_to_trust():
    rng = np.random.default_rng(4)
    n = 2000
    truth = rng.gamma(0.3, 100.0, n)
    parts = {"propensity": rng.random(n), "spend": rng.random(n) * 80, value.GB: truth * rng.lognormal(0, 0.05, n),
             "value": rng.random(n) * 50, value.PAST_SPEND: rng.random(n) * 30}
    revenue = 2.0 * truth
    stack = value.fit_revenue_stack(revenue, parts)
    floor, _, *weights = stack
    assert floor == pytest.approx(1e-3 * revenue.mean())
    assert weights[2] == pytest.approx(1.0, abs=0.1)  # the trees' revenue carries it, the noise gets no weight
    assert max(abs(w) for i, w in enumerate(weights) if i != 2) < 0.1
    combined = value._combine(stack, parts)
    assert value.spearman(revenue, combined) > 0.95
    assert combined.sum() == pytest.approx(revenue.sum(), rel=0.02)  # a Poisson fit keeps the total
    assert value.fit_revenue_stack(np.r_[np.zeros(n - 5), np.ones(5)], parts) is None  # too few buyers to weigh


def test_revenue_stack_ranks_spend_at_least_as_well_as_the_propensity_it_is_given():
    """Most shoppers spend nothing: who buys at all decides most of the ranking, and a Poisson fit that weighs
    a noisy spend for the level must not scramble it; the shrink factor chosen keeps the propensity's order."""
    rng = np.random.default_rng(5)
    n = 4000
    p = rng.beta(0.5, 4.0, n)
    spend = rng.gamma(2.0, 50.0, n)
    revenue = (rng.random(n) < p) * spend * rng.lognormal(0, 0.3, n)
    parts = {"propensity": p, "spend": spend * rng.lognormal(0, 1.0, n), value.GB: rng.gamma(1.0, 10.0, n),
             "value": spend * rng.lognormal(0, 1.5, n), value.PAST_SPEND: rng.gamma(1.0, 5.0, n)}
    stack = value.fit_revenue_stack(revenue, parts)
    combined = value._combine(stack, parts)
    assert value.spearman(revenue, combined) >= value.spearman(revenue, p)
    assert value.top_share(revenue, combined) > value.top_share(revenue, p)
    assert combined.sum() == pytest.approx(revenue.sum())
