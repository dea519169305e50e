"""Background jobs: work that runs in a worker thread while the app stays usable, reports its progress,
can be cancelled, and ends in a result, a cancellation or a message written for the analyst.

A page starts a :class:`Job` and keeps the object (in ``st.session_state`` or a server-wide
:class:`JobBoard`); each rerun reads ``fraction`` and ``message`` and, once ``running`` is
False, ``state`` with ``result`` or ``error``. Cancel only sets a flag: the work stops at its
own safe points (between stages, at a training step) by raising its own cancel exception,
so whatever it writes is rolled back as that exception unwinds. Nothing here knows of
Streamlit, so the CLI and tests drive a job the same way.

:func:`load_job`, :func:`training_job`, :func:`rescoring_job` and :func:`segmentation_job` are the jobs the app
runs: a file's load (``core.ingest.load``), a model's training or a rescore with it (``core.model.forecast``, imported
when the job runs: torch is slow to import and pages must open quickly) and a segmentation
(``core.analysis.segments``).
"""
from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import store
from core.analysis import segments
from core.ingest import load as ingest
from core.ingest.connect import connect_table, refresh_connected
from core.errors import CartsightError, IngestCancelled, SegmentationCancelled, TrainingCancelled

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from core.ingest.sniff import Mapping

PENDING, RUNNING, DONE, CANCELLED, FAILED = "pending", "running", "done", "cancelled", "failed"


class Job:
    """One piece of work in a worker thread: its progress, a cancel flag, and how it ended.

    ``work(job)`` does the work and returns its result; it reports with :meth:`report` and
    looks at :meth:`stop_requested` (or calls :meth:`raise_if_cancelled`) at its safe points.
    ``cancelled_by``: the work's own cancel exception; raised, the job ends ``cancelled``.
    A :class:`CartsightError` ends it ``failed`` with the error's message; a store fault (the
    database gone, the disk full) with the store's description followed by ``after_store_fault``;
    anything else with ``unexpected``, a template whose ``{error}`` becomes the exception's
    type and message (the traceback goes to the server log, never to the analyst).
    ``on_done`` runs in the worker thread when the job ends, however it ends. ``inputs``:
    what the job was started with (a dataset name, a horizon), for the page to show.
    """

    def __init__(self, work: Callable[[Job], Any], *, cancelled_by: type[BaseException], name: str = "cartsight-job",
                 after_store_fault: str = "", unexpected: str = "The work failed unexpectedly ({error}).",
                 on_done: Callable[[], None] | None = None, inputs: dict | None = None) -> None:
        self.inputs = dict(inputs or {})
        self.state = PENDING
        self.stage = "starting"
        self.fraction = 0.0
        self.message = "Starting…"
        self.points: list[dict] = []  # values the work reports along the way (a training's loss), in order
        self.result: Any = None
        self.error: str | None = None
        self.started: float | None = None
        self._work, self._cancelled_by, self._name = work, cancelled_by, name
        self._after_store_fault, self._unexpected, self._on_done = after_store_fault, unexpected, on_done
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what the page reads and does ---------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True from :meth:`start` until the work and ``on_done`` have returned."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def cancelled(self) -> bool:
        return self.state == CANCELLED

    def start(self) -> Job:
        """Run the work in a daemon thread (a server stopping does not wait for it); returns the job."""
        if self._thread is not None:
            raise RuntimeError(f"the job {self._name!r} was started already")
        self.started = time.monotonic()
        self.state = RUNNING
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the work to stop at its next safe point (it may finish first: then its result stands)."""
        self._cancel.set()

    def stop_requested(self) -> bool:
        """True once :meth:`cancel` was called; the work polls it."""
        return self._cancel.is_set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the job to end (at most ``timeout`` seconds); True when it has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    # --- what the work calls -------------------------------------------------------------------------

    def report(self, fraction: float, message: str, stage: str | None = None) -> None:
        """Record progress: ``fraction`` of the whole (clipped to 0..1) and a line saying what is being done."""
        self.fraction, self.message = min(max(float(fraction), 0.0), 1.0), str(message)
        if stage is not None:
            self.stage = stage

    def raise_if_cancelled(self, message: str) -> None:
        """Raise the work's cancel exception with ``message`` when a cancel was asked for."""
        if self._cancel.is_set():
            raise self._cancelled_by(message)

    # --- the worker thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.result = self._work(self)
            self.state = DONE
        except self._cancelled_by:
            self.state = CANCELLED
        except CartsightError as exc:
            self.error, self.state = str(exc), FAILED
        except Exception as exc:  # noqa: BLE001 - the analyst gets a message, the server log the traceback
            self.error, self.state = self._describe(exc), FAILED
        finally:
            if self._on_done is not None:
                self._on_done()

    def _describe(self, exc: Exception) -> str:
        known = store.describe_failure(exc, store.resolve_url())
        if known is not None:  # database gone or disk full mid-way: say which, not a traceback
            return f"{known} {self._after_store_fault}".rstrip()
        traceback.print_exc()
        return self._unexpected.format(error=f"{type(exc).__name__}: {exc}")


class JobBoard:
    """The jobs of one server by key, so that reruns and other sessions find them.

    :meth:`start` looks for a clashing running job and registers its own under one lock: two
    sessions pressing the same button at once cannot both start. A finished job stays on the
    board (its outcome is shown) until a new one is started under its key.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[Hashable, Job] = {}

    def start(self, key: Hashable, job: Job, clashes: Callable[[Hashable], bool] | None = None) -> bool:
        """Start ``job`` under ``key`` unless a running job's key clashes (default: the same key); False then."""
        clash = clashes or (lambda other: other == key)
        with self._lock:
            if any(clash(k) and j.running for k, j in self._jobs.items()):
                return False
            self._jobs[key] = job
            job.start()
        return True

    def get(self, key: Hashable) -> Job | None:
        """The job last started under ``key``, running or ended; None when there was none."""
        return self._jobs.get(key)

    def running(self) -> list[tuple[Hashable, Job]]:
        """(key, job) of every job that is running now."""
        with self._lock:
            return [(k, j) for k, j in self._jobs.items() if j.running]


# --- the app's jobs ------------------------------------------------------------------------------------------


_TRAINING_BOARD = JobBoard()


def training_board() -> JobBoard:
    """The server's training jobs, keyed by (store URL, dataset id): the Forecasts page starts them, and every
    page that shows forecasts asks it whether one is being trained (:func:`training_for`).

    The id, not the name: a dataset deleted and loaded again under its name is another dataset,
    and must not show the old one's training or its outcome.
    """
    return _TRAINING_BOARD


def training_for(url: str, dataset_id: int) -> Job | None:
    """The training job running now for the dataset ``dataset_id`` of the store at ``url``; None when none runs."""
    job = _TRAINING_BOARD.get((url, dataset_id))
    return job if job is not None and job.running else None



def load_job(engine: Engine, dataset: str, path: Path, mapping: Mapping | None = None, remember_as: str | None = None,
             on_done: Callable[[], None] | None = None, append: bool = False, source_name: str | None = None) -> Job:
    """A job that loads the file at ``path`` as ``dataset``, or with ``append`` adds it to that dataset
    (``core.ingest.load.ingest_file``); not started. ``source_name``: the file's name as the analyst knows it.

    Its result is the load report as a dict. ``remember_as``: a header signature under which
    ``mapping`` is remembered once the data is in; failing to remember it only adds a note.
    A cancel reaches the load at its next stage and rolls it back; the last report (the whole
    file, after the commit) comes when there is nothing left to cancel.
    """
    def work(job: Job) -> dict:
        def progress(fraction: float, message: str) -> None:
            if fraction < 1.0:
                job.raise_if_cancelled(f"Adding the file to {dataset!r} was cancelled: the dataset is as it was."
                                       if append else f"Loading {dataset!r} was cancelled: nothing of it was kept.")
            job.report(fraction, message)

        report = ingest.ingest_file(engine, path, dataset, mapping=mapping, progress=progress,
                                    append=append, source_name=source_name).to_dict()
        if remember_as and mapping is not None:
            try:
                ingest.remember_mapping(engine, remember_as, mapping)
            except Exception as exc:  # noqa: BLE001 - the data is in; only the convenience for next time is lost
                reason = exc if isinstance(exc, CartsightError) else store.describe_failure(exc) or repr(exc)
                report["notes"] = [*report.get("notes", []), f"the mapping was not remembered: {reason}"]
        return report

    return Job(work, cancelled_by=IngestCancelled, name="cartsight-load", on_done=on_done,
               after_store_fault="Nothing of this file was kept.",
               unexpected="The load failed unexpectedly ({error}); nothing of it was kept.",
               inputs={"dataset": dataset, "path": Path(path), "append": append})


def connect_job(engine: Engine, dataset: str, table: str | None, overrides: dict[str, str | None] | None = None) -> Job:
    """A job that makes ``table`` dataset ``dataset``, read in place (``core.ingest.connect.connect_table``), or
    with ``table`` None counts connected dataset ``dataset``'s table again (``refresh_connected``); not started.
    Its result is the report as a dict; a cancel before the end leaves the store as it was."""
    def work(job: Job) -> dict:
        def progress(fraction: float, message: str) -> None:
            if fraction < 1.0:
                job.raise_if_cancelled(f"Connecting {dataset!r} was cancelled: the store is as it was.")
            job.report(fraction, message)

        if table is None:
            return refresh_connected(engine, dataset, progress=progress).to_dict()
        return connect_table(engine, table, dataset, overrides=overrides, progress=progress).to_dict()

    return Job(work, cancelled_by=IngestCancelled, name="cartsight-connect", after_store_fault="Nothing was kept.",
               unexpected="Connecting the table failed unexpectedly ({error}); nothing of it was kept.",
               inputs={"dataset": dataset, "path": None, "table": table})


def training_job(engine: Engine, dataset: str, horizon_days: int) -> Job:
    """A job that trains, evaluates and publishes a model for ``dataset`` (``core.model.forecast.train``); not started.

    Its result is the new version's model card; ``points`` gathers the loss curve as it is
    drawn (``step``, ``train_loss``, ``valid_loss``). A cancel stops training at its next step
    and writes no model version.
    """
    def work(job: Job):
        from core.model import forecast

        def progress(report) -> None:
            job.report(report.fraction, report.message or report.stage, stage=report.stage)
            if report.train_loss is not None or report.valid_loss is not None:
                job.points.append({"step": report.step, "train_loss": report.train_loss,
                                   "valid_loss": report.valid_loss})

        return forecast.train(engine, dataset, horizon_days=horizon_days, progress=progress,
                              should_stop=job.stop_requested)

    return Job(work, cancelled_by=TrainingCancelled, name="cartsight-train",
               after_store_fault="No model version was written.",
               unexpected="Training failed unexpectedly ({error}); no model version was written.",
               inputs={"dataset": dataset, "horizon_days": horizon_days})


def rescoring_job(engine: Engine, dataset: str, model_version: str) -> Job:
    """A job that scores every shopper of ``dataset`` again with ``model_version`` at the data's end
    (``core.model.forecast.score``), keeping its earlier forecasts; not started. It runs on the training board (one
    model job per store at a time). Its result is the number of shoppers scored; a cancel keeps the earlier
    forecasts as they were."""
    def work(job: Job) -> int:
        from core.model import forecast

        def progress(report) -> None:
            job.report(report.fraction, report.message or report.stage, stage=report.stage)

        return forecast.score(engine, dataset, model_version=model_version, progress=progress,
                              should_stop=job.stop_requested)

    return Job(work, cancelled_by=TrainingCancelled, name="cartsight-rescore",
               after_store_fault="The earlier forecasts are kept as they were.",
               unexpected="Scoring failed unexpectedly ({error}); the earlier forecasts are kept as they were.",
               inputs={"dataset": dataset, "model_version": model_version, "kind": "rescore"})


def segmentation_job(engine: Engine, dataset: str, n_segments: int | str) -> Job:
    """A job that segments ``dataset``'s shoppers and stores the run (``core.analysis.segments.run_segmentation``);
    not started. Its result is the stored ``SegmentRun``; a cancel stops it before the run is written."""
    def work(job: Job):
        return segments.run_segmentation(engine, dataset, n_segments=n_segments, progress=job.report,
                                         should_stop=job.stop_requested)

    return Job(work, cancelled_by=SegmentationCancelled, name="cartsight-segment",
               after_store_fault="No segmentation run was stored.",
               unexpected="Segmenting failed unexpectedly ({error}); no run was stored.",
               inputs={"dataset": dataset, "n_segments": n_segments})
