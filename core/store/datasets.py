"""Dataset bookkeeping: list, look up, name, number and delete the datasets of a store."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core import config
from core.errors import DatasetExistsError, DatasetNotFoundError
from core.store.dataset_names import check_dataset_name
from core.store.housekeeping import OWNER_SUFFIX
from core.store.schema import (dataset_id_seq, datasets, events, export_members, exports, models, predictions,
                               price_edges, quarantine, segment_runs, segments, session_days)


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
    """A fresh dataset id from the store's sequence."""
    return int(conn.execute(sa.select(dataset_id_seq.next_value())).scalar_one())


def drop_dataset(engine: Engine, name: str) -> int:
    """Delete a dataset and everything derived from it in one transaction; returns its id."""
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
        for table in (export_members, exports, segments, segment_runs, predictions, models, quarantine,
                      session_days, price_edges, events):
            conn.execute(table.delete().where(table.c.dataset_id == did))
        conn.execute(datasets.delete().where(datasets.c.dataset_id == did))
    # files go only once the rows are gone for good, so a failed delete keeps a usable dataset
    for folder in model_dirs:
        shutil.rmtree(folder, ignore_errors=True)
        Path(f"{folder}{OWNER_SUFFIX}").unlink(missing_ok=True)
    for path in export_files:
        path.unlink(missing_ok=True)
    return did
