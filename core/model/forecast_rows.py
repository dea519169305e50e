"""Every shopper's forecast as the Forecasts page shows it: filtered, counted and cut in the store.

The page used to read every shopper's row into the app and filter it there: 77,443 rows took 1.0-1.2 s on a local
Spark server at 5 M events, and a lakehouse's tens of millions of shoppers would not fit in the app at all. Here the
filters (a range of the chance to buy, the next steps, the next categories) are a WHERE clause, the count is one
grouped query, and only the first rows by chance to buy come back (ties by shopper id), as many as the page shows or
a download holds.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import store
from core.model.registry import PREDICTION_COLUMNS


@dataclass(frozen=True)
class ForecastFilter:
    """Which shoppers' forecasts: chance to buy within ``propensity`` (a closed range of fractions), and when
    given, a next step in ``types`` and a next category in ``categories`` (empty: any)."""

    propensity: tuple[float, float] = (0.0, 1.0)
    types: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()


def forecast_options(engine: Engine, dataset_id: int, version: str) -> dict:
    """``{"shoppers": n, "types": [...], "categories": [...]}`` of a version's forecasts: how many shoppers have one
    and the next steps and next categories they hold (sorted), from one grouped query."""
    from core.model.sequences import read_frame

    p = store.predictions.c
    query = (sa.select(p.next_event_type, p.next_category, sa.func.count().label("n"))
             .where(p.dataset_id == dataset_id, p.model_version == version)
             .group_by(p.next_event_type, p.next_category))
    frame = read_frame(engine, query)
    return {"shoppers": int(frame["n"].sum()) if len(frame) else 0,
            "types": sorted(frame["next_event_type"].dropna().unique()),
            "categories": sorted(frame["next_category"].dropna().unique())}


def _where(dataset_id: int, version: str, chosen: ForecastFilter) -> list:
    p = store.predictions.c
    lo, hi = chosen.propensity
    where = [p.dataset_id == dataset_id, p.model_version == version, p.purchase_propensity >= float(lo),
             p.purchase_propensity <= float(hi)]
    if chosen.types:
        where.append(p.next_event_type.in_(list(chosen.types)))
    if chosen.categories:
        where.append(p.next_category.in_(list(chosen.categories)))
    return where


def count_forecasts(engine: Engine, dataset_id: int, version: str, chosen: ForecastFilter) -> int:
    """How many shoppers' forecasts ``chosen`` keeps."""
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(store.predictions)
                                .where(*_where(dataset_id, version, chosen))).scalar() or 0)


def matching_forecasts(engine: Engine, dataset_id: int, version: str, chosen: ForecastFilter,
                       limit: int) -> pd.DataFrame:
    """The first ``limit`` forecasts ``chosen`` keeps, highest chance to buy first, ties by shopper id (in the store's
    order of ids to cut, then in code point order as every store shows them); the columns of
    :func:`core.model.forecast.load_predictions`."""
    from core.model.sequences import read_frame

    p = store.predictions
    cols = [c for c in PREDICTION_COLUMNS if c not in ("dataset_id", "model_version")] + ["model_version"]
    query = (sa.select(*[p.c[c] for c in cols]).where(*_where(dataset_id, version, chosen))
             .order_by(p.c.purchase_propensity.desc(), p.c.user_id).limit(int(limit)))
    frame = read_frame(engine, query)
    return frame.sort_values(["purchase_propensity", "user_id"], ascending=[False, True], kind="stable",
                             ignore_index=True).loc[:, cols]


__all__ = ["ForecastFilter", "count_forecasts", "forecast_options", "matching_forecasts"]
