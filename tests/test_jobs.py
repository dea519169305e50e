"""core/jobs.py: a job's progress, cancel, failure messages and result, the board's one-at-a-time start,
and the app's two jobs (a load, a training) driven without a page."""
from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from core import jobs, store
from core.ingest import load
from core.model import forecast
from core.errors import DatasetExistsError, IngestCancelled, SchemaError, TrainingCancelled
from core.jobs import CANCELLED, DONE, FAILED, Job, JobBoard

WAIT_S = 30


class _Stop(Exception):
    """A work's own cancel exception."""


def _ended(job: Job) -> Job:
    assert job.join(WAIT_S), "the job did not end"
    return job


def test_progress_is_reported_clipped_and_the_result_kept():
    seen, go = threading.Event(), threading.Event()

    def work(job: Job) -> dict:
        job.report(0.25, "reading", stage="read")
        seen.set()
        go.wait(WAIT_S)
        job.report(1.7, "done")  # a fraction past the end is shown as the whole
        return {"rows": 3}

    job = Job(work, cancelled_by=_Stop).start()
    assert seen.wait(WAIT_S)
    assert job.running and (job.fraction, job.message, job.stage) == (0.25, "reading", "read")
    go.set()
    _ended(job)
    assert not job.running
    assert (job.state, job.result, job.error, job.cancelled) == (DONE, {"rows": 3}, None, False)
    assert (job.fraction, job.message) == (1.0, "done")


def test_a_negative_fraction_reads_as_nothing_done():
    job = _ended(Job(lambda j: j.report(-0.5, "starting over"), cancelled_by=_Stop).start())
    assert job.fraction == 0.0 and job.state == DONE


def test_cancel_ends_in_the_cancelled_state_through_the_works_own_exception():
    reached = threading.Event()
    raised: list[BaseException] = []

    def work(job: Job) -> str:
        reached.set()
        while True:
            try:
                job.raise_if_cancelled("stopped at a safe point")
            except _Stop as exc:
                raised.append(exc)
                raise
            threading.Event().wait(0.01)

    job = Job(work, cancelled_by=_Stop).start()
    assert reached.wait(WAIT_S) and not job.stop_requested()
    job.cancel()
    assert job.stop_requested()
    _ended(job)
    assert (job.state, job.cancelled, job.result, job.error) == (CANCELLED, True, None, None)
    assert [str(e) for e in raised] == ["stopped at a safe point"]


def test_work_that_ends_before_seeing_the_cancel_keeps_its_result():
    job = Job(lambda j: (j.cancel(), 42)[1], cancelled_by=_Stop)
    _ended(job.start())
    assert (job.state, job.result, job.cancelled) == (DONE, 42, False)


def test_another_works_cancel_exception_is_a_failure_not_a_cancel():
    def work(job: Job):
        raise TrainingCancelled("training was cancelled")

    job = _ended(Job(work, cancelled_by=IngestCancelled).start())
    assert (job.state, job.error) == (FAILED, "training was cancelled")  # a CartsightError: its message


def test_a_cartsight_error_is_shown_by_its_message(capsys):
    def work(job: Job):
        raise SchemaError("column 'price' holds 'abc' on line 7; expected a number", column="price")

    job = _ended(Job(work, cancelled_by=_Stop, unexpected="never used ({error})").start())
    assert (job.state, job.error, job.result) == (FAILED, "column 'price' holds 'abc' on line 7; expected a number",
                                                  None)
    assert "Traceback" not in capsys.readouterr().err  # the analyst's own mistake is no server error


def test_any_other_exception_is_described_without_a_traceback(capsys):
    def work(job: Job):
        return {}["missing"]

    job = _ended(Job(work, cancelled_by=_Stop,
                     unexpected="The load failed unexpectedly ({error}); nothing of it was kept.").start())
    assert job.state == FAILED
    assert job.error == "The load failed unexpectedly (KeyError: 'missing'); nothing of it was kept."
    assert "Traceback" not in job.error
    assert "Traceback" in capsys.readouterr().err  # the server log keeps it for whoever fixes the bug


def test_a_store_fault_is_described_in_the_stores_words(tmp_path):
    def work(job: Job):
        raise OSError(28, "No space left on device", str(tmp_path / "store.duckdb.wal"))

    job = _ended(Job(work, cancelled_by=_Stop, after_store_fault="No model version was written.").start())
    assert job.state == FAILED
    assert job.error.startswith(f"The disk holding {tmp_path} is full: "), job.error
    assert job.error.endswith("then try again. No model version was written.")
    assert "OSError" not in job.error and "Traceback" not in job.error


def test_on_done_runs_however_the_job_ends():
    ended: list[str] = []

    def fail(job: Job):
        raise ValueError("boom")

    for work in (lambda j: 1, fail):
        job = Job(work, cancelled_by=_Stop, on_done=lambda: ended.append("done"))
        _ended(job.start())
    assert ended == ["done", "done"]


def test_a_job_starts_once():
    job = Job(lambda j: None, cancelled_by=_Stop).start()
    with pytest.raises(RuntimeError, match="started already"):
        job.start()
    _ended(job)


def test_the_board_starts_one_job_per_clashing_key_at_a_time():
    board, release = JobBoard(), threading.Event()
    held = Job(lambda j: release.wait(WAIT_S), cancelled_by=_Stop, inputs={"dataset": "a"})
    same_store = lambda key: lambda other: other[0] == key[0]  # noqa: E731
    assert board.start(("db1", 1), held, clashes=same_store(("db1", 1)))
    other = Job(lambda j: "b", cancelled_by=_Stop)
    assert not board.start(("db1", 2), other, clashes=same_store(("db1", 2)))  # the same store is busy
    assert not other.running and other.state == "pending"
    elsewhere = Job(lambda j: "c", cancelled_by=_Stop)
    assert board.start(("db2", 1), elsewhere, clashes=same_store(("db2", 1)))  # another store is free
    assert [k for k, _ in board.running()] in ([("db1", 1), ("db2", 1)], [("db1", 1)])
    release.set()
    _ended(held), _ended(elsewhere)
    assert board.running() == [] and board.get(("db1", 1)) is held  # the outcome stays on the board
    again = Job(lambda j: "again", cancelled_by=_Stop)
    assert board.start(("db1", 2), again, clashes=same_store(("db1", 2)))
    assert _ended(again).result == "again" and board.get(("db1", 2)) is again


def test_the_board_by_default_refuses_only_the_same_key():
    board, release = JobBoard(), threading.Event()
    assert board.start("x", Job(lambda j: release.wait(WAIT_S), cancelled_by=_Stop))
    assert not board.start("x", Job(lambda j: None, cancelled_by=_Stop))
    assert board.start("y", Job(lambda j: None, cancelled_by=_Stop))
    release.set()


# --- the app's jobs, on both stores --------------------------------------------------------------------------


def _csv(tmp_path, rows: int = 4):
    path = tmp_path / "events.csv"
    lines = ["user_id,event_time,event_type,item_id,price"]
    lines += [f"u{i % 2},2024-03-0{1 + i} 10:00:00,view,i{i},{i + 1}.5" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_load_job_loads_the_file_and_reports_it(engine, tmp_path):
    job = _ended(jobs.load_job(engine, "shop", _csv(tmp_path)).start())
    assert job.state == DONE, job.error
    assert (job.result["rows_read"], job.result["rows_loaded"], job.result["rows_quarantined"]) == (4, 4, 0)
    assert job.fraction == 1.0 and job.inputs["dataset"] == "shop"
    assert [d["name"] for d in store.list_datasets(engine)] == ["shop"]


def test_load_job_cancelled_keeps_nothing(engine, tmp_path):
    job = jobs.load_job(engine, "shop", _csv(tmp_path))
    job.cancel()  # before the first stage: the load stops there and rolls back
    _ended(job.start())
    assert (job.state, job.result, job.error) == (CANCELLED, None, None)
    assert store.list_datasets(engine) == []


def test_load_job_of_a_taken_name_fails_with_the_stores_message(engine, tmp_path):
    _ended(jobs.load_job(engine, "shop", _csv(tmp_path)).start())
    job = _ended(jobs.load_job(engine, "shop", _csv(tmp_path)).start())
    with pytest.raises(DatasetExistsError) as raised:  # what ingest itself says of the name
        load.ingest_file(engine, _csv(tmp_path), "shop")
    assert (job.state, job.error, job.result) == (FAILED, str(raised.value), None)
    assert [d["rows_loaded"] for d in store.list_datasets(engine)] == [4]


def test_training_job_of_too_short_data_fails_with_the_span_found(engine, tmp_path):
    _ended(jobs.load_job(engine, "shop", _csv(tmp_path)).start())
    job = _ended(jobs.training_job(engine, "shop", 7).start())
    with pytest.raises(SchemaError) as raised:  # what training itself says of a 3-day span
        forecast.train(engine, "shop", horizon_days=7)
    assert (job.state, job.error, job.result, job.inputs["horizon_days"]) == (FAILED, str(raised.value), None, 7)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store.models)).scalar_one() == 0


def test_a_segmentation_job_stores_a_run_and_reports_its_stages(tmp_path):
    from core.analysis import segments
    from tests.conftest import load_simulated_shop

    engine = store.make_engine(f"duckdb:///{tmp_path / 'seg.duckdb'}")
    load_simulated_shop(engine, "shop", 80, weeks=2, seed=2)
    seen = []
    job = jobs.segmentation_job(engine, "shop", 3)
    original = job.report
    job.report = lambda fraction, message, stage=None: (seen.append(message), original(fraction, message, stage))
    job.start()
    assert job.join(120)
    assert job.state == jobs.DONE, job.error
    assert job.result.n_segments == 3 and segments.latest_run(engine, "shop").run_id == job.result.run_id
    assert seen[0] == "Reading each shopper's features…" and seen[-1] == "Storing the run…"
    engine.dispose()


def test_a_cancelled_segmentation_job_stores_no_run(tmp_path):
    from core.analysis import segments
    from tests.conftest import load_simulated_shop

    engine = store.make_engine(f"duckdb:///{tmp_path / 'seg.duckdb'}")
    load_simulated_shop(engine, "shop", 80, weeks=2, seed=2)
    job = jobs.segmentation_job(engine, "shop", 3)
    job.cancel()  # asked before the first stage: the run ends at its first safe point
    job.start()
    assert job.join(120)
    assert job.cancelled and job.result is None
    assert segments.latest_run(engine, "shop") is None
    engine.dispose()
