"""The scorings of a model version, kept side by side: the one published with the version and every rescore after.

``cs_predictions`` holds each version's latest scoring, which every reader of forecasts uses. A rescore first
moves the rows it replaces to ``cs_past_predictions`` under the id of the scoring that wrote them
(``cs_scorings``: its as-of time, when it ran, how many shoppers), so a shopper's forecasts then and now, and the
propensity distribution of two scorings, can be compared. A version keeps its newest
:data:`core.config.SCORINGS_KEPT_PER_VERSION` scorings; older ones go when a rescore passes that count.
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core import config, store

TRAINING, RESCORE = "training", "rescore"


def record_scoring(conn: Connection, dataset_id: int, version: str, as_of: dt.datetime | None, kind: str,
                   n_users: int) -> int:
    """Add the ``cs_scorings`` row of the predictions just written for ``version`` (in their transaction); returns
    its id. ``as_of``: the data's last event they were made at; ``kind``: :data:`TRAINING` or :data:`RESCORE`."""
    scoring_id = int(conn.execute(sa.select(store.scoring_id_seq.next_value())).scalar_one())
    conn.execute(store.scorings.insert().values(
        scoring_id=scoring_id, dataset_id=dataset_id, model_version=version, as_of=as_of, kind=kind,
        scored_at=dt.datetime.now(dt.UTC).replace(tzinfo=None), n_users=int(n_users)))
    return scoring_id


def current_scoring_id(conn: Connection, dataset_id: int, version: str) -> int | None:
    """The id of the scoring whose rows ``cs_predictions`` holds for ``version`` (its newest), None without one."""
    s = store.scorings.c
    return conn.execute(sa.select(sa.func.max(s.scoring_id))
                        .where(s.dataset_id == dataset_id, s.model_version == version)).scalar()


def retire_predictions(conn: Connection, dataset_id: int, version: str) -> int:
    """Move ``version``'s current predictions to ``cs_past_predictions`` (before a rescore writes new ones), in the
    caller's transaction, and drop the scorings past the kept count; returns the number of rows moved.

    Rows written before scorings were recorded get a scoring of their own (as-of time unknown) so they are kept.
    """
    p, past = store.predictions, store.past_predictions
    mine = sa.and_(p.c.dataset_id == dataset_id, p.c.model_version == version)
    n = conn.execute(sa.select(sa.func.count()).select_from(p).where(mine)).scalar_one()
    if n:
        scoring_id = current_scoring_id(conn, dataset_id, version)
        if scoring_id is None:
            scoring_id = record_scoring(conn, dataset_id, version, None, TRAINING, n)
        names = [c.name for c in p.columns]
        conn.execute(past.insert().from_select(
            ["scoring_id", *names], sa.select(sa.literal(scoring_id, sa.Integer), *[p.c[c] for c in names]).where(mine)))
        conn.execute(p.delete().where(mine))
    _trim(conn, dataset_id, version, config.SCORINGS_KEPT_PER_VERSION - 1)
    return int(n)


def _trim(conn: Connection, dataset_id: int, version: str, keep: int) -> None:
    """Drop all but the newest ``keep`` scorings of ``version`` (their rows in ``cs_past_predictions`` too)."""
    s, past = store.scorings.c, store.past_predictions
    ids = conn.execute(sa.select(s.scoring_id).where(s.dataset_id == dataset_id, s.model_version == version)
                       .order_by(s.scoring_id.desc())).scalars().all()
    old = ids[max(keep, 0):]
    if old:
        conn.execute(past.delete().where(past.c.dataset_id == dataset_id, past.c.scoring_id.in_(old)))
        conn.execute(store.scorings.delete().where(s.scoring_id.in_(old)))
