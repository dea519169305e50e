"""The stored uplift estimates as target lists read them: the newest uplift run's estimates joined to the shoppers
(the runs are fitted and stored by :mod:`core.campaigns.uplift`; which run is newest: :mod:`core.campaigns.current`)."""
from __future__ import annotations

import sqlalchemy as sa

from core import store


def join_uplift(from_clause, users, ctx: dict):
    """(the from clause joined to the newest uplift run's estimates, the uplift column: NULL without a run)."""
    if ctx["uplift_run_id"] is None:
        return from_clause, sa.cast(sa.null(), sa.Float)
    u = store.uplift.c
    joined = from_clause.outerjoin(store.uplift, sa.and_(u.dataset_id == ctx["dataset_id"],
                                                         u.run_id == ctx["uplift_run_id"], u.user_id == users.c.user_id))
    return joined, u.uplift
