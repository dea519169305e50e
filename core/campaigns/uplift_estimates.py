"""The stored uplift estimates as target lists read them: the dataset's newest uplift run and its estimates joined
to the shoppers (the runs are fitted and stored by :mod:`core.campaigns.uplift`)."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import store


def newest_uplift_run(engine: Engine, dataset_id: int) -> int | None:
    """The id of the dataset's newest uplift run (core.campaigns.uplift), or None."""
    r = store.uplift_runs.c
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.max(r.run_id)).where(r.dataset_id == dataset_id)).scalar()


def join_uplift(from_clause, users, ctx: dict):
    """(the from clause joined to the newest uplift run's estimates, the uplift column: NULL without a run)."""
    if ctx["uplift_run_id"] is None:
        return from_clause, sa.cast(sa.null(), sa.Float)
    u = store.uplift.c
    joined = from_clause.outerjoin(store.uplift, sa.and_(u.dataset_id == ctx["dataset_id"],
                                                         u.run_id == ctx["uplift_run_id"], u.user_id == users.c.user_id))
    return joined, u.uplift
