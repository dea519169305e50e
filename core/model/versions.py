"""A dataset's ready model versions as scoring reads them: which version (:func:`resolve_version`), the data's
time span (:func:`data_window`) and the baselines a version saved (:func:`baselines_from_saved`). Shared by
scoring in the app (:mod:`core.model.forecast`) and on executors (:mod:`core.model.executor_scoring`)."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import store
from core.errors import NotFittedError, SchemaError
from core.model import registry
from core.model.baselines import baseline_from_dict


def data_window(engine: Engine, dataset_id: int) -> tuple[dt.datetime, dt.datetime, int]:
    """``(first event, last event, events)`` of the dataset; :class:`SchemaError` when it has none."""
    ev = store.events
    q = sa.select(sa.func.min(ev.c.event_time), sa.func.max(ev.c.event_time), sa.func.count()).where(
        ev.c.dataset_id == dataset_id)
    with engine.connect() as conn:
        first, last, n = conn.execute(q).one()
    if not n:
        raise SchemaError("The dataset has no events to learn from.", column="event_time", reason="no_data")
    return first, last, int(n)


def baselines_from_saved(saved: dict) -> dict:
    """The baselines a version saved (``baselines.json``), as objects that forecast."""
    return {"rfm": {head: baseline_from_dict(s) for head, s in saved["rfm"].items()},
            "rankers": {name: baseline_from_dict(s) for name, s in saved["rankers"].items()}}


def resolve_version(engine: Engine, dataset_id: int, dataset: str, model_version: str | None) -> dict:
    """The ``cs_models`` row of ``model_version`` (the newest ready one when None); :class:`NotFittedError` names
    the versions there are when it is not among them."""
    rows = registry.model_rows(engine, dataset_id)
    if not rows:
        raise NotFittedError(f"Dataset {dataset!r} has no trained model yet: train one first.")
    if model_version is None:
        return rows[0]
    for row in rows:
        if row["model_version"] == model_version:
            return row
    raise NotFittedError(f"Dataset {dataset!r} has no ready model version {model_version!r}; versions: "
                         f"{[r['model_version'] for r in rows]}.")
