"""Campaign results: the statistics by hand and against published intervals, the outcome window on the hand-built
shop, and simulated campaigns with a known effect (and none) measured from later events and from an orders file,
on both stores."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from core import config, store
from core.campaigns import exports, results
from core.campaigns.targets import CampaignFilters, build_target_list
from core.errors import CartsightError, ParameterError
from tests.campaigns.test_campaigns import END, make_shop, uid
from tests.conftest import add_events, make_dataset, simulated_events


# --- the statistics -------------------------------------------------------------------------------------

# Newcombe (1998), "Interval estimation for the difference between independent proportions: comparison of eleven
# methods", Statistics in Medicine 17:873-890, Table II, method 10 (score interval, no continuity correction)
@pytest.mark.parametrize("x1, n1, x2, n2, low, high", [
    (56, 70, 48, 80, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.1705, 0.8090),
    (6, 7, 2, 7, 0.0582, 0.8062),
    (5, 56, 0, 29, -0.0381, 0.1926),
    (0, 10, 0, 20, -0.1611, 0.2775),
    (0, 10, 0, 10, -0.2775, 0.2775),
    (10, 10, 0, 20, 0.6791, 1.0000),
    (10, 10, 0, 10, 0.6075, 1.0000),
])
def test_newcombe_interval_matches_the_published_examples(x1, n1, x2, n2, low, high):
    d, lo, hi = results.newcombe_interval(x1, n1, x2, n2)
    assert d == pytest.approx(x1 / n1 - x2 / n2)
    assert (round(lo, 4), round(hi, 4)) == (low, high)


def test_wilson_interval_matches_newcombes_single_proportion_example():
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", example 81/263
    assert tuple(round(v, 4) for v in results.wilson_interval(81, 263)) == (0.2553, 0.3662)
    assert results.wilson_interval(0, 0) == (0.0, 1.0)


def test_p_value_is_the_pooled_z_test_for_large_counts():
    pooled = 104 / 150
    z = (56 / 70 - 48 / 80) / math.sqrt(pooled * (1 - pooled) * (1 / 70 + 1 / 80))
    p, method = results.two_proportion_p_value(56, 70, 48, 80)
    assert method == results.P_Z_TEST
    assert p == pytest.approx(math.erfc(z / math.sqrt(2))) and round(p, 4) == 0.0080


def test_p_value_is_fishers_exact_test_for_small_counts():
    # [[9, 1], [3, 7]]: the tables at least as unlikely have 9 or 10 (and, mirrored, 3 or 2) buyers in group 1
    total = math.comb(20, 12)
    hand = 2 * (math.comb(10, 9) * math.comb(10, 3) + math.comb(10, 10) * math.comb(10, 2)) / total
    p, method = results.two_proportion_p_value(9, 10, 3, 10)
    assert method == results.P_FISHER
    assert p == pytest.approx(hand) and round(p, 4) == 0.0198


@pytest.mark.parametrize("n1, n2, baseline", [(1000, 1000, 0.10), (3000, 300, 0.05), (200, 200, 0.0)])
def test_min_detectable_lift_gives_the_power_asked_for(n1, n2, baseline):
    d = results.min_detectable_lift(n1, n2, baseline)
    p1, p2 = baseline + d, baseline
    pooled = (n1 * p1 + n2 * p2) / (n1 + n2)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    se1 = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    power = 0.5 * math.erfc(-((d - 1.959964 * se0) / se1) / math.sqrt(2))
    assert power == pytest.approx(config.OUTCOME_POWER, abs=1e-4)
    assert results.min_detectable_lift(0, 10, 0.1) is None


def test_bootstrap_of_buyers_only_matches_resampling_every_shopper():
    rng = np.random.default_rng(4)
    treated = np.where(rng.random(3000) < 0.12, rng.gamma(2.0, 30.0, 3000), 0.0)
    holdout = np.where(rng.random(3000) < 0.09, rng.gamma(2.0, 30.0, 3000), 0.0)
    low, high = results.bootstrap_difference(treated, holdout)
    assert (low, high) == results.bootstrap_difference(treated, holdout)  # seeded
    plain = np.random.default_rng(9)
    diffs = [plain.choice(treated, treated.size).mean() - plain.choice(holdout, holdout.size).mean()
             for _ in range(2000)]
    p_low, p_high = np.percentile(diffs, [2.5, 97.5])
    width = p_high - p_low
    assert abs(low - p_low) < 0.08 * width and abs(high - p_high) < 0.08 * width
    assert low < treated.mean() - holdout.mean() < high


def test_newcombe_refuses_an_empty_group():
    with pytest.raises(ParameterError, match="x2=0 of n=0"):
        results.newcombe_interval(3, 10, 0, 0)


# --- the hand-built shop --------------------------------------------------------------------------------


@pytest.fixture
def shop(engine, tmp_path, monkeypatch):
    monkeypatch.setenv(config.HOME_ENV, str(tmp_path / "home"))
    make_shop(engine)
    return engine


def _purchase(user: str, when: dt.datetime, price: float | None = 10.0, quantity: int | None = 1) -> dict:
    return {"user_id": user, "event_time": when, "event_type": "purchase", "item_id": "it-x", "category": "c",
            "brand": None, "price": price, "quantity": quantity, "session_id": f"later-{user}-{when:%j%H}"}


def _export_half(engine) -> tuple[int, list[str], list[str]]:
    built = build_target_list(engine, "shop", CampaignFilters(), holdout_share=0.5, seed=2)
    record = exports.save_export(engine, built, "csv")
    return record["export_id"], sorted(built.targets["user_id"]), sorted(built.holdout["user_id"])


def test_window_is_open_until_later_data_arrives(shop):
    export_id, _, _ = _export_half(shop)
    out = results.campaign_results(shop, "shop", export_id)
    assert out["status"] == results.STATUS_OPEN and out["window_days"] == 7  # the model's horizon
    assert out["as_of"] == END and out["window_end"] == END + dt.timedelta(days=7)
    assert "ends 2024-02-07 12:00" in out["status_text"] and "not enough data yet" in out["status_text"]
    assert (out["converted_treated"], out["converted_holdout"]) == (0, 0)


def test_outcomes_count_purchases_inside_the_window_only(shop):
    export_id, treated, holdout = _export_half(shop)
    later = [
        # u00 bought at END, the as-of time itself: in the list's data, not in the window
        _purchase(treated[0], END + dt.timedelta(days=1), 30.0, 2),  # 60
        _purchase(treated[0], END + dt.timedelta(days=2), 10.0),  # same shopper: one buyer, 70 in all
        _purchase(treated[1], END + dt.timedelta(days=3), 40.0),
        _purchase(treated[2], END + dt.timedelta(days=8), 99.0),  # after the 7-day window
        _purchase(holdout[0], END + dt.timedelta(days=6, hours=23), 20.0),
        _purchase(holdout[1], END + dt.timedelta(days=1), 15.0, -1),  # a cancellation: no buyer, -15
        {**_purchase(holdout[2], END + dt.timedelta(days=2)), "event_type": "view"},
    ]
    add_events(shop, "shop", pd.DataFrame(later))
    out = results.campaign_results(shop, "shop", export_id)
    assert (out["treated"], out["holdout"]) == (20, 20)
    assert (out["converted_treated"], out["converted_holdout"]) == (2, 1)
    assert out["conversion_treated"] == pytest.approx(0.10) and out["conversion_holdout"] == pytest.approx(0.05)
    assert out["revenue_per_treated"] == pytest.approx(110 / 20) and out["revenue_per_holdout"] == pytest.approx(5 / 20)
    assert out["lift_abs"] == pytest.approx(0.05)
    assert out["incremental_buyers"] == pytest.approx(1.0) and out["incremental_revenue"] == pytest.approx(105.0)
    assert out["relative_lift"] == pytest.approx(1.0) and out["p_value_method"] == results.P_FISHER
    assert out["status"] == results.STATUS_SMALL  # 20 and 20 shoppers: under 30 each
    assert out["lift_ci_low"] < 0 < out["lift_ci_high"]
    # a 9-day window takes the later purchase in
    assert results.campaign_results(shop, "shop", export_id, days=9)["converted_treated"] == 3
    segments = {row["segment"]: row for row in out["by_segment"]}
    assert set(segments) == {"Bargain hunters", "Premium fans"}
    assert sum(r["converted_treated"] for r in segments.values()) == 2
    assert sum(r["treated"] + r["holdout"] for r in out["by_decile"]) == 40
    assert [r["decile"] for r in out["by_decile"]] == [str(d) for d in range(1, 11)]
    assert results.headline(out).startswith("The list converted at 10.0 % against 5.0 % in the holdout: +5.0 points")


def test_an_orders_file_gives_the_same_outcomes(shop, tmp_path):
    export_id, treated, holdout = _export_half(shop)
    path = tmp_path / "orders.csv"
    path.write_text("Customer ID,Order Date,Total\n"
                    f"{treated[0]},2024-02-01 10:00:00,60.00\n"
                    f"{treated[0]},2024-02-02 10:00:00,10.00\n"
                    f"{treated[1]},2024-02-03 09:00:00,40.00\n"
                    f"{holdout[0]},2024-02-07 11:00:00,20.00\n"
                    "stranger,2024-02-03 09:00:00,5.00\n"
                    f"{holdout[1]},someday,5.00\n"
                    f"{treated[3]},2024-02-08 13:00:00,7.00\n")
    orders = results.read_orders(path)
    assert (orders.rows_read, orders.rows_loaded, orders.rows_quarantined) == (7, 6, 1)
    out = results.campaign_results(shop, "shop", export_id, orders=orders)
    assert (out["converted_treated"], out["converted_holdout"]) == (2, 1)
    assert out["revenue_per_treated"] == pytest.approx(110 / 20) and out["revenue_per_holdout"] == pytest.approx(1.0)
    assert out["status"] == results.STATUS_SMALL  # the file reaches the window's last day
    assert out["orders"]["rows_quarantined"] == 1 and out["source"] == "orders file orders.csv"
    assert any("stranger" in note for note in out["notes"])


def test_exports_that_cannot_be_measured_say_why(shop):
    built = build_target_list(shop, "shop", CampaignFilters(top_k=10), holdout_share=0.0)
    export_id = exports.save_export(shop, built, "csv")["export_id"]
    with pytest.raises(CartsightError, match=f"Export {export_id} has no holdout"):
        results.campaign_results(shop, "shop", export_id)
    with pytest.raises(CartsightError, match=rf"No export with id 999 in dataset 'shop'; its exports are \[{export_id}\]"):
        results.campaign_results(shop, "shop", 999)
    with pytest.raises(ParameterError, match="window days 0"):
        results.campaign_results(shop, "shop", export_id, days=0)


# --- simulated campaigns with a known effect ------------------------------------------------------------

SIM_USERS, SIM_WEEKS, LIST_WEEKS, WINDOW_DAYS = 4000, 10, 8, 14
#: the share of the exported shoppers the injected campaign makes buy (each of them a buyer it made)
INJECTED_EFFECT = 0.06


def simulated_campaign(engine, seed: int, effect: float) -> dict:
    """Weeks 1-8 of simulated shoppers loaded, a list of everyone exported with a half holdout, then weeks 9-10
    added with ``effect`` × the exported shoppers given one more purchase in the window (none in the holdout).

    Returns the export id, the exact injected effect (buyers made ÷ exported) and the window's purchases."""
    events = simulated_events(SIM_USERS, SIM_WEEKS, seed)
    cutoff = events["event_time"].min().normalize() + pd.Timedelta(weeks=LIST_WEEKS)
    make_dataset(engine, "sim", [])
    add_events(engine, "sim", events[events["event_time"] < cutoff])
    built = build_target_list(engine, "sim", CampaignFilters(), holdout_share=0.5, seed=seed)
    export_id = exports.save_export(engine, built, "csv")["export_id"]
    later = events[events["event_time"] >= cutoff]
    end = built.as_of + pd.Timedelta(days=WINDOW_DAYS)
    in_window = later[(later["event_time"] > built.as_of) & (later["event_time"] < end)]
    natural = set(in_window.loc[in_window["event_type"] == "purchase", "user_id"])
    treated = sorted(built.targets["user_id"])
    rng = np.random.default_rng(seed)
    made = rng.choice([u for u in treated if u not in natural], size=round(effect * len(treated)), replace=False)
    offsets = pd.to_timedelta(rng.integers(3600, (WINDOW_DAYS - 1) * 86400, len(made)), unit="s")
    extra = pd.DataFrame({"user_id": made, "event_time": built.as_of + offsets, "event_type": "purchase",
                          "item_id": "campaign-item", "category": "campaign", "brand": None, "price": 25.0,
                          "session_id": [f"campaign-{u}" for u in made]})
    add_events(engine, "sim", pd.concat([later, extra], ignore_index=True))
    purchases = pd.concat([in_window[in_window["event_type"] == "purchase"], extra], ignore_index=True)
    return {"export_id": export_id, "effect": len(made) / len(treated), "purchases": purchases,
            "shoppers": events.loc[events["event_time"] < cutoff, "user_id"].nunique()}


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv(config.HOME_ENV, str(tmp_path / "home"))


@pytest.mark.slow
def test_injected_effect_is_covered_by_the_interval(engine, home, tmp_path):
    sim = simulated_campaign(engine, seed=31, effect=INJECTED_EFFECT)
    out = results.campaign_results(engine, "sim", sim["export_id"], days=WINDOW_DAYS)
    assert out["status"] == results.STATUS_MEASURED
    assert out["treated"] == out["holdout"] == sim["shoppers"] // 2 > 1_900
    assert out["lift_ci_low"] <= sim["effect"] <= out["lift_ci_high"]
    assert out["lift_ci_low"] > 0 and out["p_value"] < 0.05  # this effect is well above what 2,000 a side detect
    assert out["min_detectable_lift"] < sim["effect"]
    assert out["revenue_ci_low"] < out["revenue_diff"] < out["revenue_ci_high"]
    # the same purchases uploaded as an orders file give the same figures
    path = tmp_path / "orders.csv"
    sim["purchases"].rename(columns={"user_id": "customer_id", "event_time": "order_date", "price": "amount"})[
        ["customer_id", "order_date", "amount"]].to_csv(path, index=False)
    from_file = results.campaign_results(engine, "sim", sim["export_id"], days=WINDOW_DAYS,
                                         orders=results.read_orders(path))
    for key in ("converted_treated", "converted_holdout", "lift_ci_low", "lift_ci_high", "p_value"):
        assert from_file[key] == pytest.approx(out[key]), key
    assert from_file["revenue_per_treated"] == pytest.approx(out["revenue_per_treated"], abs=0.01)


@pytest.mark.slow
def test_no_injected_effect_is_covered_by_an_interval_around_zero(engine, home):
    sim = simulated_campaign(engine, seed=57, effect=0.0)
    out = results.campaign_results(engine, "sim", sim["export_id"], days=WINDOW_DAYS)
    assert out["status"] == results.STATUS_MEASURED and sim["effect"] == 0.0
    assert out["lift_ci_low"] <= 0.0 <= out["lift_ci_high"]
    assert out["revenue_ci_low"] <= 0.0 <= out["revenue_ci_high"]


def test_an_estimated_as_of_time_is_said(shop):
    export_id, _, _ = _export_half(shop)
    assert results.campaign_results(shop, "shop", export_id)["notes"] == []
    with shop.begin() as conn:
        conn.execute(sa.update(store.exports).values(as_of_basis=store.AS_OF_MODEL))
    notes = results.campaign_results(shop, "shop", export_id)["notes"]
    assert notes[0].startswith("This export was made before cartsight recorded as-of times: its window starts at the "
                               "end of the data its model was trained on.")


def test_an_uploaded_orders_file_is_read_from_its_bytes(shop):
    export_id, treated, _ = _export_half(shop)
    data = f"Email;Created at;Total\n{treated[0]};2024-02-02 08:00:00;12,50\n".encode()
    orders = results.read_orders_bytes(data, "shopify orders.csv")
    assert (orders.rows_read, orders.rows_loaded, orders.name) == (1, 1, "shopify orders.csv")
    out = results.campaign_results(shop, "shop", export_id, orders=orders)
    assert out["converted_treated"] == 1 and out["revenue_per_treated"] == pytest.approx(12.5 / 20)
