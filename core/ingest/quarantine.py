"""The rows a load quarantined, read back for the Data page's table and download and ``cartsight quarantine``."""
from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from core import store


def quarantined_rows(engine: sa.Engine, dataset: str, limit: int | None = None, file_no: int | None = None,
                     with_file: bool = False) -> pd.DataFrame:
    """The quarantined rows of ``dataset`` (of its file ``file_no`` only, when given) in file order: line_no,
    raw_line, reason, detail, and with ``with_file`` the file_no of the dataset's file the line is in (1: its
    first file; see :func:`core.store.dataset_file_history`).

    Raises :class:`core.errors.DatasetNotFoundError` when there is no such dataset.
    """
    did = store.get_dataset(engine, dataset)["dataset_id"]
    q = store.quarantine
    file_of = sa.func.coalesce(q.c.file_no, 1)
    columns = [q.c.line_no, q.c.raw_line, q.c.reason, q.c.detail] + ([file_of.label("file_no")] if with_file else [])
    query = (sa.select(*columns).where(q.c.dataset_id == did, *([file_of == file_no] if file_no is not None else []))
             .order_by(file_of, q.c.line_no))
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame(rows, columns=[c.name for c in columns])
