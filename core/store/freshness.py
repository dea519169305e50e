"""Whether what was built from a dataset (a forecast, a segment run, an exported list) has seen all its data.

A dataset grows by appends (its files in ``cs_dataset_files``); what was built before an append was built
on the older data. The pages ask here and say so beside what they show, with the way to include the rest.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core.store.datasets import dataset_file_history
from core.store.schema import exports, models, scorings, segment_runs


@dataclass(frozen=True)
class DataSince:
    """What was added to a dataset after something was built from it."""

    data_end: dt.datetime | None  # the last event of the data it was built on
    events_added: int  # events loaded by the files appended after it was built
    files_added: int
    last_append: dt.datetime  # when the last of those files was loaded (UTC)

    def note(self, action: str) -> str:
        """The sentence the pages show: ``action`` is what includes the new events (retrain, re-run...)."""
        end = f"{self.data_end:%Y-%m-%d %H:%M}" if self.data_end else "its first load"
        added = "1 event was" if self.events_added == 1 else f"{self.events_added:,} events were"
        return f"Built on the data up to {end}; {added} added since: {action} to include them."


def data_added_since(engine_or_conn: Engine | Connection, dataset_id: int,
                     built_at: dt.datetime | None) -> DataSince | None:
    """What files appended to dataset ``dataset_id`` after ``built_at`` (naive UTC, as the store keeps times)
    added; None when none added an event (an append whose every line was already there adds none), or when
    ``built_at`` is unknown."""
    if built_at is None:
        return None
    history = dataset_file_history(engine_or_conn, dataset_id)
    after = [f for f in history if f["loaded_at"] > built_at]
    added = sum(f["rows_loaded"] for f in after)
    if not added:
        return None
    before = [f["last_event"] for f in history if f["loaded_at"] <= built_at and f["last_event"] is not None]
    return DataSince(data_end=max(before, default=None), events_added=int(added), files_added=len(after),
                     last_append=max(f["loaded_at"] for f in after))


def model_data_since(engine: Engine, model_version: str) -> DataSince | None:
    """:func:`data_added_since` the forecasts of model ``model_version`` were made: its latest scoring (a rescore
    after an append brings them up to date), else its training (None for an unknown version)."""
    m, s = models.c, scorings.c
    with engine.connect() as conn:
        row = conn.execute(sa.select(m.dataset_id, m.created_at).where(m.model_version == model_version)).first()
        if row is None:
            return None
        scored = conn.execute(sa.select(sa.func.max(s.scored_at)).where(s.model_version == model_version)).scalar()
        return data_added_since(conn, row.dataset_id, max(t for t in (row.created_at, scored) if t is not None))


def segment_run_data_since(engine: Engine, run_id: int) -> DataSince | None:
    """:func:`data_added_since` the segment run ``run_id`` was made (None for an unknown run)."""
    return _since_built(engine, segment_runs, segment_runs.c.run_id, run_id)


def export_data_since(engine: Engine, export_id: int) -> DataSince | None:
    """:func:`data_added_since` the list ``export_id`` was exported (None for an unknown export)."""
    return _since_built(engine, exports, exports.c.export_id, export_id)


def _since_built(engine: Engine, table: sa.Table, key: sa.Column, value) -> DataSince | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(table.c.dataset_id, table.c.created_at).where(key == value)).first()
        return data_added_since(conn, row.dataset_id, row.created_at) if row else None
