"""The rows a load quarantined, read back for the Data page's table and download and ``cartsight quarantine``."""
from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from core import store


def quarantined_rows(engine: sa.Engine, dataset: str, limit: int | None = None) -> pd.DataFrame:
    """The quarantined rows of ``dataset`` in file order: line_no, raw_line, reason, detail.

    Raises :class:`core.errors.DatasetNotFoundError` when there is no such dataset.
    """
    did = store.get_dataset(engine, dataset)["dataset_id"]
    q = store.quarantine
    query = (sa.select(q.c.line_no, q.c.raw_line, q.c.reason, q.c.detail)
             .where(q.c.dataset_id == did).order_by(q.c.line_no))
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame(rows, columns=["line_no", "raw_line", "reason", "detail"])
