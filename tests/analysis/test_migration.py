"""The segment migration matrix between two runs: hand-built assignments, new and gone shoppers, segments matched by
name or by the shoppers they share, and the same read from two stored runs on both stores."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from core import store
from core.analysis import migration
from core.errors import NotFittedError, ParameterError
from tests.conftest import make_dataset

BEFORE = pd.DataFrame({"user_id": list("abcdef"), "segment": [1, 1, 1, 2, 2, 3],
                       "segment_name": ["Loyal", "Loyal", "Loyal", "Browsers", "Browsers", "Lapsed"]})
# numbered afresh: "Loyal" is now segment 2; "Window shoppers" continues "Browsers" (d went there); g and h are new
AFTER = pd.DataFrame({"user_id": list("abcdgh"), "segment": [2, 2, 1, 1, 3, 1],
                      "segment_name": ["Loyal", "Loyal", "Window shoppers", "Window shoppers", "New faces",
                                       "Window shoppers"]})


def test_the_matrix_counts_moves_new_and_gone_shoppers():
    m = migration.migration_matrix(BEFORE, AFTER, 1, 2)
    assert m.matches == {2: 1, 1: 2}
    assert list(m.counts.index) == ["1. Loyal", "2. Browsers", "3. Lapsed", migration.NEW_ROW]
    assert list(m.counts.columns) == ["2. Loyal", "1. Window shoppers", "3. New faces", migration.GONE_COLUMN]
    assert m.counts.to_numpy().tolist() == [
        [2, 1, 0, 0],  # a, b stayed Loyal; c became a window shopper
        [0, 1, 0, 1],  # d continued; e is gone
        [0, 0, 0, 1],  # f is gone
        [0, 1, 1, 0],  # h and g are new
    ]
    assert m.shares.loc["1. Loyal"].round(3).tolist() == [0.667, 0.333, 0.0, 0.0]
    assert m.shares.loc["3. Lapsed", migration.GONE_COLUMN] == 1.0
    assert (m.stayed, m.moved, m.new, m.gone) == (3, 1, 2, 2)


def test_a_repeated_name_is_matched_by_the_shoppers_it_keeps():
    before = pd.DataFrame({"user_id": list("abcd"), "segment": [1, 1, 2, 2], "segment_name": ["Bargain hunters"] * 4})
    after = pd.DataFrame({"user_id": list("abcd"), "segment": [5, 5, 5, 6],
                          "segment_name": ["Bargain hunters"] * 3 + ["Quiet"]})
    m = migration.migration_matrix(before, after)
    assert m.matches == {5: 1, 6: 2}  # not by the name, which two earlier segments share: by the shoppers kept
    assert list(m.counts.columns) == ["5. Bargain hunters", "6. Quiet", migration.GONE_COLUMN]
    assert (m.stayed, m.moved, m.new, m.gone) == (3, 1, 0, 0)


def test_assignments_without_their_columns_are_refused():
    with pytest.raises(ParameterError, match=r"before: .*missing \['segment_name'\]"):
        migration.migration_matrix(BEFORE.drop(columns="segment_name"), AFTER)


def store_run(engine, did: int, frame: pd.DataFrame, created: dt.datetime) -> int:
    with engine.begin() as conn:
        run_id = int(conn.execute(store.segment_run_id_seq.next_value().select()).scalar_one())
        conn.execute(store.segment_runs.insert().values(run_id=run_id, dataset_id=did, created_at=created,
                                                        n_segments=frame["segment"].nunique()))
        conn.execute(store.segments.insert(), [{"dataset_id": did, "run_id": run_id, **r}
                                               for r in frame.to_dict("records")])
    return run_id


def test_two_stored_runs_compare_newest_against_the_one_before(engine):
    did = make_dataset(engine, "shop", [])
    with pytest.raises(NotFittedError, match="has 0 segmentation run"):
        migration.segment_migration(engine, "shop")
    first = store_run(engine, did, BEFORE, dt.datetime(2024, 3, 1))
    second = store_run(engine, did, AFTER, dt.datetime(2024, 3, 8))
    m = migration.segment_migration(engine, "shop")
    assert (m.run_from, m.run_to) == (first, second)
    assert (m.stayed, m.moved, m.new, m.gone) == (3, 1, 2, 2)
    back = migration.segment_migration(engine, "shop", second, first)
    assert (back.new, back.gone) == (2, 2) and back.counts.loc["1. Window shoppers", "2. Browsers"] == 1
