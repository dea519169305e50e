"""The holdout of a target list: a random share of it kept back, stratified by the list's own propensity deciles, so
that the kept-back shoppers resemble the exported ones at every level of propensity and the campaign can be measured
against them (:mod:`core.campaigns.results`)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core import config
from core.errors import ParameterError


def assign_deciles(propensity: pd.Series, n_groups: int = config.HOLDOUT_STRATA) -> pd.Series:
    """Propensity decile of each row within the list: 1 (lowest) … ``n_groups`` (highest); NA without propensity.

    Ranks (ties by position, so the caller's order decides) are cut into ``n_groups`` groups
    of equal size (differing by at most one).
    """
    out = pd.Series(pd.NA, index=propensity.index, dtype="Int64")
    known = propensity.dropna()
    if known.empty:
        return out
    order = known.rank(method="first", ascending=True).astype(int) - 1
    out.loc[known.index] = (order * n_groups // len(known) + 1).astype(int)
    return out


def split_holdout(frame: pd.DataFrame, share: float, seed: int) -> pd.Series:
    """Boolean mask of the holdout: a random ``share`` of the rows, stratified by ``propensity_decile``.

    round(share × n) rows in all, allocated to the deciles in proportion to their size
    (largest remainder); inside each decile the rows are drawn with ``numpy.random.default_rng(seed)``
    from the user ids in sorted order, so the same list and seed always give the same holdout.
    Rows without a decile form one stratum of their own. ``ParameterError`` for a share outside
    [0, config.MAX_HOLDOUT_SHARE].
    """
    if not 0.0 <= share <= config.MAX_HOLDOUT_SHARE:
        raise ParameterError(f"holdout share {share!r} is outside 0–{config.MAX_HOLDOUT_SHARE}", parameter="holdout")
    mask = pd.Series(False, index=frame.index)
    n = len(frame)
    total = int(round(share * n))
    if total == 0:
        return mask
    strata = frame["propensity_decile"].fillna(0).astype(int)
    sizes = strata.value_counts().sort_index()
    exact = sizes * total / n
    alloc = np.floor(exact).astype(int)
    remainder = (exact - alloc).sort_values(ascending=False, kind="mergesort")
    for key in remainder.index[: total - int(alloc.sum())]:
        alloc[key] += 1
    rng = np.random.default_rng(seed)
    for key in sizes.index:
        members = frame.loc[strata == key, "user_id"].sort_values(kind="mergesort")
        k = int(alloc[key])
        if k:
            chosen = rng.choice(len(members), size=k, replace=False)
            mask.loc[members.index[np.sort(chosen)]] = True
    return mask
