"""The Forecasts page's table in the store: options, counts and the first rows the filters keep, on every store."""
from __future__ import annotations

import datetime as dt

from core import store
from core.model.forecast_rows import ForecastFilter, count_forecasts, forecast_options, matching_forecasts
from tests.conftest import make_dataset


def _version(engine, name: str, version: str, rows: list[tuple]) -> int:
    """A dataset and a version's forecasts: ``rows`` of (user, chance to buy, next step, next category)."""
    did = make_dataset(engine, name, [{"user_id": u, "event_time": dt.datetime(2024, 3, 1), "event_type": "view"}
                                      for u, *_ in rows])
    with engine.begin() as conn:
        conn.execute(store.predictions.insert(), [{
            "dataset_id": did, "model_version": version, "user_id": u, "purchase_propensity": p,
            "next_event_type": step, "next_category": category, "p_view": 0.5, "p_cart": 0.1, "p_purchase": 0.2,
            "p_remove": 0.0, "p_none": 0.2, "next_category_p": 0.3} for u, p, step, category in rows])
    return did


ROWS = [("b", 0.8, "cart", "shoes"), ("a", 0.8, "view", "bags"), ("c", 0.5, "view", None),
        ("d", 0.2, "purchase", "shoes"), ("e", 0.1, "none", "bags")]


def test_the_filters_the_count_and_the_first_rows_come_from_the_store(engine):
    did = _version(engine, "shop", "v1", ROWS)
    _version(engine, "other", "v1", [("z", 0.99, "cart", "toys")])  # another dataset's forecasts stay out
    assert forecast_options(engine, did, "v1") == {"shoppers": 5, "types": ["cart", "none", "purchase", "view"],
                                                   "categories": ["bags", "shoes"]}
    everyone = ForecastFilter()
    assert count_forecasts(engine, did, "v1", everyone) == 5
    first = matching_forecasts(engine, did, "v1", everyone, limit=3)
    assert first["user_id"].tolist() == ["a", "b", "c"]  # a tie at 0.8 by shopper id
    assert list(first.columns)[:2] == ["user_id", "purchase_propensity"] and first.columns[-1] == "model_version"
    chosen = ForecastFilter((0.2, 0.8), ("view", "purchase"), ())
    assert count_forecasts(engine, did, "v1", chosen) == 3  # both ends of the range kept
    assert matching_forecasts(engine, did, "v1", chosen, limit=10)["user_id"].tolist() == ["a", "c", "d"]
    shoes = ForecastFilter((0.0, 1.0), (), ("shoes",))
    assert matching_forecasts(engine, did, "v1", shoes, limit=10)["user_id"].tolist() == ["b", "d"]
    assert count_forecasts(engine, did, "v2", everyone) == 0
    assert forecast_options(engine, did, "v2") == {"shoppers": 0, "types": [], "categories": []}
