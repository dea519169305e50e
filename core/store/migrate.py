"""The table layout on disk: created on first use, its version recorded, a store written by an older cartsight upgraded in place."""
from __future__ import annotations

import datetime as dt
import json

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core import config
from core.errors import StoreUnavailableError
from core.store import datasets as dataset_rows, derived, segment_totals, summaries
from core.store.event_views import leave_out_unreadable, write_events_view
from core.store.schema import (AS_OF_DATASET, AS_OF_MODEL, datasets, exports, stored_events, metadata, models,
                               predictions, schema_info, scoring_id_seq, scorings)
from core.store.url import _first_line


def ensure_schema(engine: Engine) -> None:
    """Create the tables on first use and record the schema version; refuse a newer schema."""
    with engine.begin() as conn:
        if conn.dialect.name == "spark":
            from core.store.spark import recover_rewrites

            recover_rewrites(conn)  # a rewrite a killed process left half done (Spark has no transactions)
        known = sa.inspect(conn).has_table(schema_info.name)
        found = conn.execute(sa.select(sa.func.max(schema_info.c.version))).scalar() if known else None
        try:
            if conn.dialect.name == "spark":  # one SHOW TABLES, not one per table (each is a round trip to Spark)
                present = set(conn.dialect.get_table_names(conn))
                metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t.name not in present],
                                    checkfirst=False)
            else:
                metadata.create_all(conn, checkfirst=True)
        except sa.exc.ProgrammingError as exc:
            if found is not None and found < config.SCHEMA_VERSION:
                raise _upgrade_refused(found, exc) from exc
            raise
        if conn.dialect.name == "postgresql":
            # PostgreSQL scans per dataset and per shopper; DuckDB's zone maps need no index
            # (and an index would slow its bulk loads).
            # Asked first, not "IF NOT EXISTS": a team's app role that only reads and writes (the
            # README's set-up) may not run CREATE INDEX at all, even when the index is there.
            names = {ix["name"] for ix in sa.inspect(conn).get_indexes(stored_events.name)}
            if "cs_events_dataset_user" not in names:
                conn.execute(sa.text(
                    "CREATE INDEX cs_events_dataset_user ON cs_events (dataset_id, user_id, event_time)"
                ))
        version = conn.execute(sa.select(sa.func.max(schema_info.c.version))).scalar()
        if version is None:
            write_events_view(conn)
            conn.execute(schema_info.insert().values(version=config.SCHEMA_VERSION, created_at=_now()))
        elif version > config.SCHEMA_VERSION:
            raise StoreUnavailableError(
                f"The database was written by a newer cartsight (schema {version}, this one reads "
                f"{config.SCHEMA_VERSION}); upgrade cartsight."
            )
        elif version < config.SCHEMA_VERSION:
            _upgrade(conn, version)
    leave_out_unreadable(engine)  # a team's table dropped or changed must not fail every dataset's queries


def _upgrade(conn: Connection, version: int) -> None:
    """Bring a store written by an older cartsight to :data:`core.config.SCHEMA_VERSION`, in the caller's transaction.

    Schema 2 added ``cs_events.price_band`` and the derived tables ``cs_price_edges`` and
    ``cs_session_days`` (``create_all`` made the tables): each existing dataset gets them from
    its events once (:func:`core.store.derived.derive_dataset`). Schema 3 added
    ``cs_exports.consent_column`` and ``consent_basis`` (NULL for older exports). Schema 4 added
    ``cs_exports.as_of`` and ``as_of_basis``: older exports get the best known as-of time
    (:func:`_backfill_as_of`). Schema 5 computes price bands over each category's distinct items
    (``cs_price_edges.n_items`` and ``edges_from``): each dataset's edges and event bands are
    rewritten. Schema 6 added ``cs_predictions.expected_revenue`` and ``p_inactive`` (NULL for the forecasts of
    older versions). Schema 7 added the events' and quarantined rows' source (``file_no``, ``line_no``: NULL for
    older rows, read as file 1 with its lines unknown) and the file history ``cs_dataset_files``, where each older
    dataset's one file is recorded from its dataset row. Schema 8 added the scorings of each version
    (``cs_scorings``) and the forecasts a rescore replaced (``cs_past_predictions``): every older version gets
    the scoring of its predictions (:func:`_backfill_scorings`). Schema 9 added the uplift tables
    ``cs_uplift_runs`` and ``cs_uplift`` and ``cs_exports.ranking`` and ``uplift_run_id``: an older export's
    ranking is read from its filters (:func:`_backfill_ranking`). Schema 10 added each brand's spellings
    (``cs_brand_spellings``, :mod:`core.store.brand_names`); an older dataset's events kept only the lower-cased
    brand, so none is recorded for them (a spelling made up from it would outvote the files' own): their
    brands show as stored until an appended file spells them. Schema 11 added the summaries of
    :func:`_write_summaries`. Schema 12 reads events through the view ``cs_all_events``
    (:mod:`core.store.event_views`), written first, so that a dataset may be a team's table connected in place. Schema
13 added the per-value totals ``cs_value_totals``, 14 the same per segment of the newest run (``cs_segment_value_totals``). A role that may not alter the tables gets a message saying who must open the store once.
    """
    try:
        _events_columns_and_view(conn, version)
        if version < 2:
            for did in _dataset_ids(conn):
                derived.derive_dataset(conn, did)
        if version < 3:
            conn.exec_driver_sql("ALTER TABLE cs_exports ADD COLUMN IF NOT EXISTS consent_column VARCHAR")
            conn.exec_driver_sql("ALTER TABLE cs_exports ADD COLUMN IF NOT EXISTS consent_basis TEXT")
        if version < 4:
            conn.exec_driver_sql("ALTER TABLE cs_exports ADD COLUMN IF NOT EXISTS as_of TIMESTAMP")
            conn.exec_driver_sql("ALTER TABLE cs_exports ADD COLUMN IF NOT EXISTS as_of_basis VARCHAR")
            _backfill_as_of(conn)
        if version < 5:
            conn.exec_driver_sql("ALTER TABLE cs_price_edges ADD COLUMN IF NOT EXISTS n_items BIGINT")
            conn.exec_driver_sql("ALTER TABLE cs_price_edges ADD COLUMN IF NOT EXISTS edges_from VARCHAR")
            if version >= 2:  # older stores were derived above, with these bands already
                for did in _dataset_ids(conn):
                    derived.rewrite_bands(conn, did)
        if version < 6:
            conn.exec_driver_sql("ALTER TABLE cs_predictions ADD COLUMN IF NOT EXISTS expected_revenue DOUBLE PRECISION")
            conn.exec_driver_sql("ALTER TABLE cs_predictions ADD COLUMN IF NOT EXISTS p_inactive DOUBLE PRECISION")
        if version < 7:
            conn.exec_driver_sql("ALTER TABLE cs_quarantine ADD COLUMN IF NOT EXISTS file_no INTEGER")
            dataset_rows.record_first_files(conn)
        if version < 8:
            _backfill_scorings(conn)
        if version < 9:
            conn.exec_driver_sql("ALTER TABLE cs_exports ADD COLUMN IF NOT EXISTS ranking VARCHAR")
            conn.exec_driver_sql("ALTER TABLE cs_exports ADD COLUMN IF NOT EXISTS uplift_run_id INTEGER")
            _backfill_ranking(conn)
        if version < 14:
            _write_summaries(conn, version)
    except sa.exc.ProgrammingError as exc:
        raise _upgrade_refused(version, exc) from exc
    conn.execute(sa.update(schema_info).values(version=config.SCHEMA_VERSION))


def _events_columns_and_view(conn: Connection, version: int) -> None:
    """The events' columns added since ``version`` (schemas 2 and 7), then the readers' view over them (schema 12),
    before any upgrade step reads the events."""
    if version < 2:
        conn.exec_driver_sql("ALTER TABLE cs_events ADD COLUMN IF NOT EXISTS price_band VARCHAR")
    if version < 7:
        conn.exec_driver_sql("ALTER TABLE cs_events ADD COLUMN IF NOT EXISTS file_no INTEGER")
        conn.exec_driver_sql("ALTER TABLE cs_events ADD COLUMN IF NOT EXISTS line_no BIGINT")
    write_events_view(conn)


def _write_summaries(conn: Connection, version: int) -> None:
    """Write the summaries of every dataset that a store of schema ``version`` lacks: before schema 11 all of them
    (``cs_shoppers``, the per-dimension ``cs_shopper_*`` tables, ``cs_value_totals``, ``cs_type_days``,
    ``cs_price_counts``: :mod:`core.store.summaries`, from its session days and events), before 13 the totals, before
    14 the newest segmentation run's totals per segment (``cs_segment_value_totals``)."""
    for did in _dataset_ids(conn):
        if version < 11:
            summaries.write_summaries(conn, did)
            continue
        if version < 13:
            summaries.write_totals(conn, did)
        segment_totals.rewrite_newest(conn, did)


def _backfill_scorings(conn: Connection) -> None:
    """Give every model version a ``cs_scorings`` row for the predictions it holds (kind ``training``).

    Its as-of time is the end of the data the version was trained on (its card's ``data_window``), else the
    dataset's last event; a version re-scored before scorings were recorded keeps no trace of that, so its
    forecasts read as made at its training.
    """
    m, d, p = models.c, datasets.c, predictions.c
    rows = conn.execute(sa.select(m.model_version, m.dataset_id, m.created_at, m.metrics_json, d.last_event)
                        .select_from(models.outerjoin(datasets, d.dataset_id == m.dataset_id))
                        .order_by(m.created_at)).all()
    counts = dict(conn.execute(sa.select(p.model_version, sa.func.count()).group_by(p.model_version)).all())
    for version, dataset_id, created_at, card, last_event in rows:  # read first: DuckDB re-runs a result still open
        scoring_id = conn.execute(sa.select(scoring_id_seq.next_value())).scalar_one()
        conn.execute(scorings.insert().values(
            scoring_id=scoring_id, dataset_id=dataset_id, model_version=version, scored_at=created_at,
            as_of=_model_data_end(card) or last_event, kind="training", n_users=counts.get(version, 0)))


def _dataset_ids(conn: Connection) -> list[int]:
    """Every dataset's id, read whole first: DuckDB re-runs a result still open when the connection runs another."""
    return conn.execute(sa.select(datasets.c.dataset_id).order_by(datasets.c.dataset_id)).scalars().all()


def _backfill_as_of(conn: Connection) -> None:
    """Give every export without an as-of time the best known one, and say which in ``as_of_basis``.

    An export with a model gets the end of the data that model was trained on (its card's
    ``data_window``): the data its list's forecasts saw. Without one (a list from segments and
    behaviour only), the dataset's last event: before as-of times were recorded a dataset never
    changed after its load, so that is the data's end when the list was built.
    """
    x, m, d = exports.c, models.c, datasets.c
    rows = conn.execute(sa.select(x.export_id, x.model_version, d.last_event)
                        .select_from(exports.outerjoin(datasets, d.dataset_id == x.dataset_id))
                        .where(x.as_of.is_(None))).all()
    cards = dict(conn.execute(sa.select(m.model_version, m.metrics_json)).all())
    for export_id, version, last_event in rows:  # read first: DuckDB re-runs a result still open
        end = _model_data_end(cards.get(version))
        as_of, basis = (end, AS_OF_MODEL) if end is not None else (last_event, AS_OF_DATASET)
        conn.execute(sa.update(exports).where(x.export_id == export_id).values(as_of=as_of, as_of_basis=basis))


def _backfill_ranking(conn: Connection) -> None:
    """Record what ordered each older export: its filters' ``rank_by``, else the propensity when it had forecasts."""
    x = exports.c
    rows = conn.execute(sa.select(x.export_id, x.model_version, x.filters_json).where(x.ranking.is_(None))).all()
    for export_id, version, filters_json in rows:  # read first: DuckDB re-runs a result still open
        try:
            rank_by = json.loads(filters_json or "{}").get("rank_by")
        except ValueError:
            rank_by = None
        ranking = rank_by or ("propensity" if version is not None else None)
        if ranking is not None:
            conn.execute(sa.update(exports).where(x.export_id == export_id).values(ranking=ranking))


def _model_data_end(card_json: str | None) -> dt.datetime | None:
    """The end of the data a model was trained on (its card's ``data_window``), None when unknown."""
    try:
        end = json.loads(card_json)["data_window"][1]
        return dt.datetime.fromisoformat(end) if end else None
    except (TypeError, ValueError, KeyError, IndexError):
        return None


def _upgrade_refused(version: int, exc: sa.exc.DBAPIError) -> StoreUnavailableError:
    return StoreUnavailableError(
        f"The database holds cartsight's schema {version} and this cartsight needs schema "
        f"{config.SCHEMA_VERSION}: this role could not upgrade it ({_first_line(exc.orig or exc)}). Open it once "
        f"as the role that owns the tables (e.g. `cartsight datasets --db URL`), which upgrades it."
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
