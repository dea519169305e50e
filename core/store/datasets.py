"""Dataset bookkeeping: list, look up, name, number and delete the datasets of a store."""
from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core import config
from core.errors import DatasetExistsError, DatasetNotFoundError
from core.store.dataset_names import check_dataset_name
from core.store.housekeeping import OWNER_SUFFIX
from core.store.event_views import (CONNECTED_LAYOUT, connected_view_name, drop_view, unreadable_connected,
                                    write_events_view)
from core.store.schema import (brand_spellings, dataset_files, dataset_id_seq, datasets, export_members,
                               exports, models, past_predictions, predictions, price_edges, quarantine, scorings,
                               segment_runs, segment_value_totals, segments, session_days, shopper_values, shoppers, type_days,
                               price_counts, stored_events, uplift, uplift_runs, value_totals)


def list_datasets(engine: Engine) -> list[dict]:
    """All datasets, newest first, as dicts of the ``cs_datasets`` columns (report decoded)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(datasets).order_by(datasets.c.created_at.desc())).mappings().all()
    return [_decode(dict(r)) for r in rows]


def get_dataset(engine_or_conn: Engine | Connection, name: str) -> dict:
    """The dataset row for ``name``; raises :class:`DatasetNotFoundError` listing the names that exist."""
    query = sa.select(datasets).where(datasets.c.name == name)
    if isinstance(engine_or_conn, Engine):
        with engine_or_conn.connect() as conn:
            row = conn.execute(query).mappings().first()
            names = conn.execute(sa.select(datasets.c.name)).scalars().all() if row is None else []
    else:
        row = engine_or_conn.execute(query).mappings().first()
        names = engine_or_conn.execute(sa.select(datasets.c.name)).scalars().all() if row is None else []
    if row is None:
        raise DatasetNotFoundError(f"No dataset named {name!r}. Datasets in the store: {sorted(names)}")
    return _decode(dict(row))


def dataset_file_history(engine_or_conn: Engine | Connection, dataset_id: int) -> list[dict]:
    """The files of dataset ``dataset_id`` in load order: ``file_no``, ``name``, ``loaded_at``, ``rows_read``,
    ``rows_loaded``, ``rows_quarantined``, ``rows_repeated``, ``first_event``, ``last_event``.

    A dataset stored without a file history (inserted by code) reads as one file made of its dataset row.
    """
    f = dataset_files.c
    cols = [f.file_no, f.name, f.loaded_at, f.rows_read, f.rows_loaded, f.rows_quarantined, f.rows_repeated,
            f.first_event, f.last_event]
    query = sa.select(*cols).where(f.dataset_id == dataset_id).order_by(f.file_no)
    if isinstance(engine_or_conn, Engine):
        with engine_or_conn.connect() as conn:
            return dataset_file_history(conn, dataset_id)
    rows = [dict(r) for r in engine_or_conn.execute(query).mappings()]
    if rows:
        return rows
    d = datasets.c
    first = engine_or_conn.execute(sa.select(
        sa.literal(1).label("file_no"), d.source.label("name"), d.created_at.label("loaded_at"), d.rows_read,
        d.rows_loaded, d.rows_quarantined, sa.literal(0).label("rows_repeated"), d.first_event, d.last_event,
    ).where(d.dataset_id == dataset_id)).mappings().first()
    return [dict(first)] if first else []


def record_first_files(conn: Connection, dataset_id: int | None = None) -> None:
    """Record each dataset (or only ``dataset_id``) that has no file history as its one file (file 1), from its
    dataset row: the datasets of a store written before files were numbered, and those inserted by code."""
    d = datasets.c
    recorded = sa.select(dataset_files.c.dataset_id)
    if dataset_id is not None:
        recorded = sa.union(recorded, sa.select(d.dataset_id).where(d.dataset_id != dataset_id))
    conn.execute(dataset_files.insert().from_select(
        ["dataset_id", "file_no", "name", "loaded_at", "rows_read", "rows_loaded", "rows_quarantined",
         "rows_repeated", "first_event", "last_event", "report_json"],
        sa.select(d.dataset_id, sa.literal(1, sa.Integer), d.source, d.created_at, d.rows_read, d.rows_loaded,
                  d.rows_quarantined, sa.literal(0, sa.BigInteger), d.first_event, d.last_event, d.report_json)
        .where(d.dataset_id.not_in(recorded))))


def _decode(row: dict) -> dict:
    for key in ("mapping_json", "report_json"):
        if row.get(key):
            row[key.removesuffix("_json")] = json.loads(row[key])
    return row


def check_name_free(conn: Connection, name: str) -> None:
    """Check ``name`` for a new dataset: :class:`ParameterError` when it is not a usable name
    (:func:`core.store.dataset_names.check_dataset_name`), :class:`DatasetExistsError` when it is taken."""
    check_dataset_name(name)
    if conn.execute(sa.select(datasets.c.dataset_id).where(datasets.c.name == name)).first():
        raise DatasetExistsError(
            f"A dataset named {name!r} exists already: choose another name or delete the old one first."
        )


def next_dataset_id(conn: Connection) -> int:
    """A fresh dataset id from the store's sequence.

    On Spark, which has no sequence, the id is claimed (:mod:`core.store.spark_claims`: one more than the largest
    recorded or claimed, so that two loads at once never share one), inside :func:`new_dataset`, which lets the
    claim go. Rows a killed load left under the id taken are removed first (a probe finds none in the usual
    case and rewrites nothing).
    """
    if conn.dialect.name == "spark":
        from core.store.spark_claims import claim_dataset_id

        return claim_dataset_id(conn, clear_dataset_rows)
    return int(conn.execute(sa.select(dataset_id_seq.next_value())).scalar_one())


@contextlib.contextmanager
def new_dataset(conn: Connection, name: str) -> Iterator[None]:
    """The block in which a new dataset ``name`` is written: the name checked free at its start
    (:class:`DatasetExistsError`), and on Spark, which has no unique key and no sequence, the name and any id
    :func:`next_dataset_id` takes in the block claimed (:mod:`core.store.spark_claims`) until it ends, the dataset
    recorded or its rows taken out again. Elsewhere the store's unique name and sequence do it."""
    from core.store import spark_claims

    check_name_free(conn, name)
    with spark_claims.claimed_name(conn, name), spark_claims.holding_ids(conn):
        yield


#: Every table whose rows belong to one dataset, the ones that refer to others first (the dataset's row apart).
DATASET_TABLES = (dataset_files, uplift, uplift_runs, export_members, exports, segment_value_totals, segments,
                  segment_runs, past_predictions, scorings, predictions, models, quarantine, session_days, price_edges,
                  shoppers, *shopper_values.values(), value_totals, type_days, price_counts, brand_spellings,
                  stored_events)


def clear_dataset_rows(conn: Connection, did: int) -> None:
    """Delete every row of dataset ``did`` but its row in ``cs_datasets``."""
    for table in DATASET_TABLES:
        conn.execute(table.delete().where(table.c.dataset_id == did))


def drop_dataset(engine: Engine, name: str) -> int:
    """Delete a dataset and everything derived from it in one transaction; returns its id."""
    unreadable = unreadable_connected(engine)
    with engine.begin() as conn:
        ds = get_dataset(conn, name)
        did = ds["dataset_id"]
        model_dirs = conn.execute(sa.select(models.c.path).where(models.c.dataset_id == did)).scalars().all()
        export_files = [
            config.exports_dir() / f"{export_id}-{file_name}"
            for export_id, file_name in conn.execute(
                sa.select(exports.c.export_id, exports.c.file_name).where(exports.c.dataset_id == did)
            )
        ]
        clear_dataset_rows(conn, did)
        conn.execute(datasets.delete().where(datasets.c.dataset_id == did))
        if ds["layout"] == CONNECTED_LAYOUT:  # the team's table stays; only cartsight's view of it goes
            write_events_view(conn, leave_out=unreadable)
            drop_view(conn, connected_view_name(did))
    # files go only once the rows are gone for good, so a failed delete keeps a usable dataset
    for folder in model_dirs:
        shutil.rmtree(folder, ignore_errors=True)
        Path(f"{folder}{OWNER_SUFFIX}").unlink(missing_ok=True)
    for path in export_files:
        path.unlink(missing_ok=True)
    return did
