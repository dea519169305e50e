"""A load into a Spark SQL store: the checked rows sent from the load's in-memory DuckDB, a failed load undone.

Spark's Parquet tables have no transactions, so a load's all-or-nothing comes from its order and its undo:
a new dataset's row in ``cs_datasets`` is the last thing written, and every query reaches a dataset through
that row, so until then nothing of the load is visible; a load that fails removes what it wrote
(:func:`undo_load`), and one killed leaves rows under an id no dataset has, removed when that id is taken
again (:func:`core.store.datasets.next_dataset_id`). An append that fails takes its file's rows out again and
derives the dataset's tables anew, as they were before it.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pandas as pd
import sqlalchemy as sa

from core import store
from core.store import derived, executors

#: Rows read from the load's DuckDB per chunk sent to Spark: the app holds one chunk at a time.
CHUNK_ROWS = 20_000
#: Rows per Arrow batch sent through Spark Connect. Each batch travels inside its plan, which the server holds in
#: memory while it runs: 500,000 events made a 46 MB task, and a 2 GB driver ran out of heap within a few loads
#: (with the server's plan cache on; :func:`core.store.executors.spark_session` turns it off for our sessions).
ARROW_CHUNK_ROWS = 100_000


def is_spark(conn: sa.Connection | sa.Engine) -> bool:
    """True when the store is Spark SQL (:mod:`core.store.spark`)."""
    return conn.dialect.name == "spark"


@contextlib.contextmanager
def undone_if_failed(conn: sa.Connection, job, target) -> Iterator[None]:
    """On Spark, remove what the load ``job`` (its dataset id in ``job.did`` once taken) wrote if the block fails
    or is cancelled; ``target``: the dataset appended to (None: a new dataset). Elsewhere the transaction does."""
    if not is_spark(conn):
        yield
        return
    before = dataset_before(conn, target.dataset_id) if target else None
    try:
        yield
    except BaseException:
        undo_load(conn, getattr(job, "did", None), target.file_no if target else None, target is not None, before)
        raise


def write_rows(conn: sa.Connection, duck, did: int, file_no: int, events: tuple[str, tuple[str, ...]], q_sql: str,
               banded: bool, progress: Callable[[float, str], None] | None) -> None:
    """A load's good rows (``events``: the DuckDB query and its columns after ``dataset_id``) into ``cs_events``,
    banded for a new dataset, and its bad ones (``q_sql``) into ``cs_quarantine`` as file ``file_no``."""
    events_sql, columns = events
    if banded:
        send_banded_events(conn, duck, events_sql, did, columns)
    else:
        send_rows(conn, duck, f"SELECT ?, * FROM ({events_sql})", store.stored_events, ("dataset_id",) + columns, [did])
    if progress is not None:
        progress(0.85, "writing the quarantine")
    send_rows(conn, duck, f"SELECT ?, ?, * FROM ({q_sql})", store.quarantine,
              ("dataset_id", "file_no", "line_no", "raw_line", "reason", "detail"), [did, file_no])


def send_rows(conn: sa.Connection, duck, select: str, table: sa.Table, columns: tuple[str, ...],
              params: list | None = None) -> int:
    """Insert the rows of the DuckDB query ``select`` (its columns in the order of ``columns``) into ``table``; returns
    the number of rows. Through Spark Connect as Arrow batches of :data:`ARROW_CHUNK_ROWS` when the store has a
    Connect URL (the cluster writes the Parquet files), else as multi-row INSERTs of :data:`CHUNK_ROWS` through
    the Thrift Server, which parses every value as SQL text."""
    result = duck.execute(select, params or [])
    session = executors.spark_session(conn.engine)
    per_chunk = ARROW_CHUNK_ROWS if session is not None else CHUNK_ROWS
    n = 0
    while True:
        chunk = result.fetch_df_chunk(max(1, per_chunk // 2048))
        if chunk.empty:
            return n
        chunk.columns = list(columns)
        if session is not None:
            executors.insert_frame(conn.engine, table, chunk)
            n += len(chunk)
        else:
            n += store.bulk_insert(conn, table, _plain(chunk))


def send_banded_events(conn: sa.Connection, duck, events_sql: str, dataset_id: int, columns: tuple[str, ...]) -> None:
    """A new dataset's events (the DuckDB query ``events_sql``, ``columns`` after ``dataset_id``) into ``cs_events``
    with their price bands, through a staging table on Spark.

    The rows go to ``cs_events__load_<id>`` first; the price edges are computed from it and the events inserted
    banded in one ``INSERT … SELECT`` (:func:`core.store.derived.banded_events_sql`). Updating the bands after
    the insert would rewrite the whole ``cs_events`` table, every dataset's events, three times per load.
    """
    stage = load_stage(dataset_id)
    stage.drop(conn, checkfirst=True)
    stage.create(conn)
    try:
        send_rows(conn, duck, f"SELECT ?, * FROM ({events_sql})", stage, ("dataset_id",) + columns, [dataset_id])
        derived.write_price_edges(conn, dataset_id, stage.alias("staged"))
        names = ", ".join(("dataset_id",) + columns)
        banded = derived.banded_events_sql(conn, dataset_id, f"SELECT {names} FROM {stage.name}")
        # sorted by shopper: Parquet keeps each file's and row group's range of user_id, so the reads of one
        # shopper or of a chunk of shoppers (the Shopper page, training's chunks, scoring) skip the rest
        conn.exec_driver_sql(f"INSERT INTO cs_events ({names}, price_band) SELECT * FROM ({banded}) AS banded_rows "
                             "ORDER BY user_id, event_time")
    finally:
        stage.drop(conn, checkfirst=True)


def load_stage(dataset_id: int) -> sa.Table:
    """The staging table of a Spark load's events for dataset ``dataset_id`` (the events' columns but the band)."""
    return sa.Table(f"{store.stored_events.name}__load_{int(dataset_id)}", sa.MetaData(),
                    *[sa.Column(c.name, c.type) for c in store.stored_events.columns if c.name != "price_band"])


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamps as naive ``datetime`` objects and integers with missing values as objects (None for NULL)."""
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = pd.Series(out[col].dt.to_pydatetime(), index=out.index, dtype=object)
        elif str(out[col].dtype) in ("Int64", "Int32"):
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out


def stage_prior_events(conn: sa.Connection, duck, table: str, dataset_id: int, first, last,
                       types: dict[str, str]) -> None:
    """The dataset's stored events from ``first`` to ``last`` (``types``' columns) into the DuckDB table
    ``table``, read from Spark a chunk at a time."""
    e = store.events.c
    cols = [sa.func.coalesce(e.file_no, 1).label("file_no") if c == "file_no" else e[c] for c in types]
    duck.execute(f"CREATE TEMP TABLE {table} ({', '.join(f'{c} {t}' for c, t in types.items())})")
    result = conn.execution_options(stream_results=True).execute(
        sa.select(*cols).where(e.dataset_id == dataset_id, e.event_time.between(first, last)))
    for rows in result.partitions(CHUNK_ROWS):
        frame = pd.DataFrame(rows, columns=list(types))
        duck.register("cs_prior_chunk", frame)
        try:
            duck.execute(f"INSERT INTO {table} SELECT * FROM cs_prior_chunk")
        finally:
            duck.unregister("cs_prior_chunk")


def undo_load(conn: sa.Connection, dataset_id: int | None, file_no: int | None, appended: bool,
              before: tuple[dict, pd.DataFrame] | None) -> None:
    """Remove what a failed load wrote: every row of a new dataset; an append's events and quarantined lines,
    with the dataset's row and brand spellings put back as they were (``before``, :func:`dataset_before`) and
    its derived tables derived again from the events left."""
    if dataset_id is None:
        return
    if not appended:  # its row too: a cancel after the dataset was recorded (the load's last step) leaves nothing
        store.clear_dataset_rows(conn, dataset_id)
        conn.execute(store.datasets.delete().where(store.datasets.c.dataset_id == dataset_id))
        return
    for table in (store.stored_events, store.quarantine, store.dataset_files):
        conn.execute(table.delete().where(table.c.dataset_id == dataset_id, table.c.file_no == file_no))
    if before is not None:
        row, spellings = before
        d, t = store.datasets, store.brand_spellings
        conn.execute(d.update().where(d.c.dataset_id == dataset_id).values(
            {k: v for k, v in row.items() if k != "dataset_id"}))
        conn.execute(t.delete().where(t.c.dataset_id == dataset_id))
        store.bulk_insert(conn, t, spellings)
    derived.derive_dataset(conn, dataset_id)


def dataset_before(conn: sa.Connection, dataset_id: int) -> tuple[dict, pd.DataFrame]:
    """The dataset's row and brand spellings as they are, to put back if an append fails."""
    d, t = store.datasets, store.brand_spellings
    row = dict(conn.execute(sa.select(d).where(d.c.dataset_id == dataset_id)).mappings().one())
    spellings = pd.DataFrame(conn.execute(sa.select(t).where(t.c.dataset_id == dataset_id)).mappings().all(),
                             columns=[c.name for c in t.columns])
    return row, spellings
