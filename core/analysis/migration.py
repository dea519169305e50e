"""How shoppers moved between two segmentation runs of a dataset: a migration matrix, as an RFM movement report.

Segment numbers are not comparable across runs (each run numbers its own clusters), so each later segment is
matched to the earlier segment it continues: the one with the same name when the name is unique in both runs,
else the one that gave it the most shoppers. The matrix puts matched pairs on its diagonal; shoppers new in the
later run have their own row and shoppers gone from it their own column.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy.engine import Engine

from core.errors import NotFittedError, ParameterError
from core.analysis import segments

NEW_ROW = "New in the later run"
GONE_COLUMN = "Gone from the later run"


@dataclass
class SegmentMigration:
    """Shoppers of run ``run_from`` (rows, earlier) against run ``run_to`` (columns, later).

    ``counts``: shoppers per (earlier segment, later segment), plus the :data:`NEW_ROW` row and the
    :data:`GONE_COLUMN` column; labels are "number. name". ``shares``: each row's counts over its total.
    ``matches``: later segment number → the earlier segment number it continues. ``stayed``: shoppers in a matched
    pair; ``moved``: shoppers in both runs who did not stay.
    """

    run_from: int | None
    run_to: int | None
    counts: pd.DataFrame
    shares: pd.DataFrame
    matches: dict[int, int]
    stayed: int
    moved: int
    new: int
    gone: int


def _labels(frame: pd.DataFrame) -> dict[int, str]:
    pairs = frame[["segment", "segment_name"]].drop_duplicates("segment").sort_values("segment")
    return {int(s): f"{int(s)}. {n}" for s, n in zip(pairs["segment"], pairs["segment_name"])}


def match_segments(before: pd.DataFrame, after: pd.DataFrame, overlap: pd.DataFrame) -> dict[int, int]:
    """Later segment → earlier segment it continues: the same name when unique in both runs, then greedily the
    largest overlap (``overlap``: shoppers by earlier segment rows, later segment columns) among the rest."""
    names_b = before.drop_duplicates("segment").set_index("segment")["segment_name"]
    names_a = after.drop_duplicates("segment").set_index("segment")["segment_name"]
    unique_b = names_b[~names_b.duplicated(keep=False)]
    unique_a = names_a[~names_a.duplicated(keep=False)]
    by_name = {name: int(seg) for seg, name in unique_b.items()}
    matches = {int(seg): by_name[name] for seg, name in unique_a.items() if name in by_name}
    pairs = overlap.stack()
    for (b, a), n in pairs[pairs > 0].sort_values(ascending=False, kind="stable").items():
        if int(a) not in matches and int(b) not in matches.values():
            matches[int(a)] = int(b)
    return matches


def migration_matrix(before: pd.DataFrame, after: pd.DataFrame, run_from: int | None = None,
                     run_to: int | None = None) -> SegmentMigration:
    """The :class:`SegmentMigration` of two runs' assignments (each with columns user_id, segment, segment_name)."""
    for name, frame in (("before", before), ("after", after)):
        missing = {"user_id", "segment", "segment_name"} - set(frame.columns)
        if missing:
            raise ParameterError(f"{name}: assignments need the columns user_id, segment, segment_name; missing "
                                 f"{sorted(missing)} (columns found: {list(frame.columns)})", parameter=name)
    b = before.set_index(before["user_id"].astype(str))["segment"].astype(int)
    a = after.set_index(after["user_id"].astype(str))["segment"].astype(int)
    rows, cols = _labels(before), _labels(after)
    both = b.index.intersection(a.index)
    overlap = pd.crosstab(b.reindex(both), a.reindex(both)).reindex(index=list(rows), columns=list(cols), fill_value=0)
    matches = match_segments(before, after, overlap)
    continued = {v: k for k, v in matches.items()}
    order = [continued[r] for r in rows if r in continued] + [c for c in cols if c not in matches]
    counts = overlap.loc[:, order].copy()
    counts[GONE_COLUMN] = b.drop(both).value_counts().reindex(list(rows), fill_value=0)
    new = a.drop(both).value_counts().reindex(order, fill_value=0)
    counts.loc[NEW_ROW] = [*new.tolist(), 0]
    counts = counts.astype(int)
    counts.index = [rows.get(r, r) for r in counts.index]
    counts.columns = [cols.get(c, c) for c in counts.columns]
    totals = counts.sum(axis=1).replace(0, 1)
    stayed = int(sum(overlap.loc[bb, aa] for aa, bb in matches.items()))
    return SegmentMigration(run_from=run_from, run_to=run_to, counts=counts, shares=counts.div(totals, axis=0),
                            matches=matches, stayed=stayed, moved=len(both) - stayed, new=int(new.sum()),
                            gone=int(len(b) - len(both)))


def segment_migration(engine: Engine, dataset: str, run_from: int | None = None,
                      run_to: int | None = None) -> SegmentMigration:
    """The migration of ``dataset``'s shoppers from run ``run_from`` to run ``run_to`` (by default the two newest).

    Errors: :class:`NotFittedError` when the dataset has fewer than two runs or no such run; ``DatasetNotFoundError``.
    """
    if run_from is None or run_to is None:
        runs = segments.list_runs(engine, dataset)
        if len(runs) < 2:
            raise NotFittedError(f"Dataset {dataset!r} has {len(runs)} segmentation run(s); comparing needs two: "
                                 "run the segmentation again after adding data.")
        run_to = runs[0].run_id if run_to is None else run_to
        run_from = next(r.run_id for r in runs if r.run_id != run_to) if run_from is None else run_from
    before = segments.load_assignments(engine, dataset, run_from)
    after = segments.load_assignments(engine, dataset, run_to)
    return migration_matrix(before, after, run_from, run_to)
