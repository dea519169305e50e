"""The scale fixes must not change a number: the overview's price quantiles (computed from the events per distinct
price) against the database's own ``percentile_cont`` over every event, on DuckDB and PostgreSQL.

Prices are drawn with many ties (a shop has few distinct prices) and a few singletons, so ranks fall
inside runs of equal prices, on their edges, and between two prices (interpolation).
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from core import config
from core.analysis import preferences as prefs
from core import store
from core.analysis import product_queries
from tests.conftest import make_dataset

QUANTILES = (0.0, 0.1, 0.25, 0.333, 0.5, 0.75, 0.9, 0.99, 1.0)
T0 = dt.datetime(2024, 1, 1)


def _rows(seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    levels = np.round(rng.uniform(1, 500, size=40), 2)
    prices = list(rng.choice(levels, size=300)) + list(np.round(rng.uniform(1, 500, size=7), 2))
    cats = rng.choice(["a", "b", "c", None], size=len(prices), p=[0.5, 0.3, 0.15, 0.05])
    brands = rng.choice([f"b{j}" for j in range(9)], size=len(prices))
    kinds = rng.choice(["view", "cart", "purchase"], size=len(prices), p=[0.7, 0.2, 0.1])
    return [{"user_id": f"u{i % 17}", "event_time": T0 + dt.timedelta(minutes=i), "event_type": k,
             "item_id": f"i{i}", "category": c, "brand": b, "price": float(p), "session_id": f"s{i % 17}"}
            for i, (p, c, b, k) in enumerate(zip(prices, cats, brands, kinds))]


@pytest.fixture
def priced(engine):
    did = make_dataset(engine, "wq", _rows(3))
    return engine, did


def test_price_quantiles_of_the_overview_equal_percentile_cont(priced):
    engine, did = priced
    e = store.events.c
    summary = product_queries.price_distribution(engine, did).summary
    with engine.connect() as conn:
        want = conn.execute(sa.select(sa.func.avg(e.price), *[
            sa.func.percentile_cont(sa.literal(q, literal_execute=True)).within_group(e.price)
            for q in config.PRICE_QUANTILES]).where(e.dataset_id == did)).one()
    assert summary["mean"] == pytest.approx(float(want[0]), rel=1e-12)
    assert [summary[f"p{round(q * 100):g}"] for q in config.PRICE_QUANTILES] == [float(v) for v in want[1:]]


@pytest.mark.parametrize("group", [{}, {"user_id": "u3"}, {"event_types": ("purchase",)}])
def test_top_n_preferences_equal_the_head_of_the_full_ranking(priced, group):
    """preferences(top_n=k) ranks on a cheap pass and counts shoppers for the top k only: same rows as the full list."""
    engine, did = priced
    for dimension in ("category", "brand"):
        full = prefs.preferences(engine, did, dimension, **group)
        for k in (1, 3, 20):
            top = prefs.preferences(engine, did, dimension, top_n=k, **group)
            assert len(top) == min(k, len(full))
            pd.testing.assert_frame_equal(top, full.head(k).reset_index(drop=True), check_exact=False, rtol=1e-12)
