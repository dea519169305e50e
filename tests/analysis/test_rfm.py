"""core.analysis.rfm: quintile scores, the R × FM group rules, and per-shopper aggregates in SQL (DuckDB and PostgreSQL)."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from core.analysis import rfm
from tests.conftest import make_dataset

END = pd.Timestamp("2024-03-31 12:00")


def _aggregates() -> pd.DataFrame:
    day = pd.Timedelta(days=1)
    return pd.DataFrame({
        "user_id": ["u1", "u2", "u3", "u4", "u5", "u6"],
        "n_orders": [1, 1, 2, 3, 5, 0],
        "revenue": [10.0, 20.0, 30.0, 40.0, 50.0, float("nan")],
        "last_purchase": [END - day, END - 2 * day, END - 10 * day, END - 20 * day, END - 30 * day, pd.NaT],
        "last_event": [END - day, END - 2 * day, END - 10 * day, END - 20 * day, END - 30 * day, END],
    })


def test_scores_and_groups_by_hand():
    out = rfm.score(_aggregates()).set_index("user_id")
    assert out["recency_days"].tolist()[:5] == [1.0, 2.0, 10.0, 20.0, 30.0]
    assert out["r_score"].tolist()[:5] == [5, 4, 3, 2, 1]
    assert out["f_score"].tolist()[:5] == [1, 1, 3, 4, 5]  # the two one-order buyers tie at the lowest rank
    assert out["m_score"].tolist()[:5] == [1, 2, 3, 4, 5]
    assert out["fm_score"].tolist()[:5] == [1, 2, 3, 4, 5]  # (1+2)/2 = 1.5 rounds up to 2
    assert out["rfm_group"].to_dict() == {
        "u1": "new customers", "u2": "potential loyalists", "u3": "need attention", "u4": "at risk",
        "u5": "can't lose them", "u6": rfm.NEVER_BOUGHT,
    }
    assert out.loc["u6", ["r_score", "f_score", "m_score", "fm_score"]].isna().all()


def test_quintiles_of_ten_distinct_values():
    scores = rfm.quintile_scores(pd.Series([float(v) for v in range(1, 11)]))
    assert scores.tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert rfm.quintile_scores(pd.Series([3.0, 1.0, 2.0]), higher_is_better=False).tolist() == [2, 5, 4]


@pytest.mark.parametrize(("r", "fm", "group"), [
    (5, 5, "champions"), (5, 4, "champions"), (4, 5, "loyal customers"), (3, 4, "loyal customers"),
    (5, 3, "potential loyalists"), (4, 2, "potential loyalists"), (5, 1, "new customers"), (4, 1, "promising"),
    (3, 3, "need attention"), (3, 2, "about to sleep"), (3, 1, "about to sleep"), (2, 5, "can't lose them"),
    (1, 5, "can't lose them"), (2, 4, "at risk"), (1, 3, "at risk"), (2, 2, "hibernating"), (1, 2, "hibernating"),
    (2, 1, "hibernating"), (1, 1, "lost"),
])
def test_group_rules(r, fm, group):
    assert rfm.group_of(r, fm) == group


def test_every_cell_has_one_of_the_eleven_groups():
    names = {rfm.group_of(r, fm) for r in range(1, 6) for fm in range(1, 6)}
    assert names == set(rfm.GROUPS) - {rfm.NEVER_BOUGHT}


def test_without_prices_m_follows_f():
    agg = _aggregates().assign(revenue=float("nan"))
    out = rfm.score(agg)
    assert out["m_score"].tolist()[:5] == out["f_score"].tolist()[:5]


def test_grid_and_summary():
    table = rfm.score(_aggregates())
    grid = rfm.grid(table)
    assert len(grid) == 25 and grid["shoppers"].sum() == 5
    cell = grid.set_index(["r_score", "fm_score"])
    assert cell.loc[(5, 1), "shoppers"] == 1 and cell.loc[(5, 1), "rfm_group"] == "new customers"
    assert cell.loc[(1, 5), "revenue"] == 50.0 and cell.loc[(3, 3), "shoppers"] == 1
    summary = rfm.summary(table).set_index("rfm_group")
    assert summary.index.tolist() == ["potential loyalists", "new customers", "need attention", "can't lose them",
                                      "at risk", rfm.NEVER_BOUGHT]
    assert summary.loc[rfm.NEVER_BOUGHT, "share_shoppers"] == pytest.approx(1 / 6)
    assert summary.loc["can't lose them", "share_revenue"] == pytest.approx(50 / 150)


T0 = dt.datetime(2024, 3, 1, 9, 0)


def _ev(user, days, kind, price, session, quantity=None):
    return {"user_id": user, "event_time": T0 + dt.timedelta(days=days), "event_type": kind, "item_id": "i",
            "category": "c", "brand": None, "price": price, "quantity": quantity, "session_id": session}


def test_rfm_table_in_the_database(engine):
    rows = [
        _ev("a", 0, "purchase", 10.0, "s1"), _ev("a", 0.01, "purchase", 5.0, "s1"),  # one order of 15
        _ev("a", 4, "purchase", 20.0, "s2", quantity=2),  # second order: 40
        _ev("b", 1, "purchase", 8.0, "s3"), _ev("b", 2, "purchase", 8.0, "s4", quantity=-1),  # a cancellation
        _ev("c", 10, "view", 3.0, "s5"),  # never bought; holds the dataset's last event
    ]
    did = make_dataset(engine, "rfm", rows)
    out = rfm.rfm_table(engine, did).set_index("user_id")
    assert out.loc["a", "frequency"] == 2 and out.loc["a", "monetary"] == pytest.approx(55.0)
    assert out.loc["a", "recency_days"] == pytest.approx(6.0)
    assert out.loc["b", "frequency"] == 1 and out.loc["b", "monetary"] == pytest.approx(0.0)  # 8 - 8
    assert out.loc["b", "recency_days"] == pytest.approx(9.0)  # the cancellation is no purchase
    assert out.loc["c", "rfm_group"] == rfm.NEVER_BOUGHT
    # two buyers: a ranks 2 of 2 everywhere (score 5), b 1 of 2 (ceil(2.5) = 3)
    assert (out.loc["a", "r_score"], out.loc["a", "f_score"], out.loc["a", "m_score"]) == (5, 5, 5)
    assert (out.loc["b", "r_score"], out.loc["b", "f_score"], out.loc["b", "m_score"]) == (3, 3, 3)
    assert out.loc["a", "rfm_group"] == "champions" and out.loc["b", "rfm_group"] == "need attention"
