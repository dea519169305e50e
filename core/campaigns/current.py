"""What a dataset's target lists build on, read in one statement: its current model, segmentation and uplift run.

The Campaigns page asks this on every view and every count. Read one by one these were five
statements (the newest ready model, its horizon, the newest segmentation, its profiles, the
newest uplift run): on a Spark SQL endpoint each is a job of its own, 0.1-0.2 s whatever its size,
so the page's filter options alone took over a second at 5 M events. Here they are scalar
subqueries of one SELECT, each ordered as the single lookups order it.
"""
from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import store
from core.store import sql


def _newest_run(column, dataset_id: int):
    return sql.segment_runs_newest_first(dataset_id, column).limit(1).scalar_subquery()


def current_state(engine: Engine, dataset_id: int, profiles: bool = False) -> dict:
    """``model_version`` (the newest ready model, None without one) and its ``horizon_days``, ``run_id`` (the
    newest segmentation) and, with ``profiles``, ``segments`` (number → name from its profiles), and
    ``uplift_run_id`` (the newest uplift run)."""
    m, u = store.models.c, store.uplift_runs.c
    columns = [
        sql.ready_models(dataset_id, m.model_version).limit(1).scalar_subquery().label("model_version"),
        sql.ready_models(dataset_id, m.horizon_days).limit(1).scalar_subquery().label("horizon_days"),
        _newest_run(store.segment_runs.c.run_id, dataset_id).label("run_id"),
        sa.select(sa.func.max(u.run_id)).where(u.dataset_id == dataset_id).scalar_subquery().label("uplift_run_id"),
    ]
    if profiles:
        columns.append(_newest_run(store.segment_runs.c.profiles_json, dataset_id).label("profiles_json"))
    with engine.connect() as conn:
        row = dict(conn.execute(sa.select(*columns)).mappings().one())
    out = {"model_version": row["model_version"], "run_id": None if row["run_id"] is None else int(row["run_id"]),
           "uplift_run_id": None if row["uplift_run_id"] is None else int(row["uplift_run_id"]),
           "horizon_days": None if row["horizon_days"] is None else int(row["horizon_days"])}
    if profiles:
        out["segments"] = dict(sorted((int(p["segment"]), p["name"]) for p in json.loads(row["profiles_json"] or "[]")))
    return out
