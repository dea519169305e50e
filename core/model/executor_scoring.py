"""Scoring every shopper where the events are: on a Spark cluster's executors, not in the app.

The app packs a trained model version (its folder's files: weights, vocabularies, calibration,
saved baselines, a few MB) with the dataset and the scoring time into a :class:`ScoringPackage`.
Spark ships it to every task with the function; each executor's Python worker unpacks it once
per version and scores the shoppers of its group of events with :func:`score_events`: the same
code as the app's scoring (:func:`core.model.scoring.inputs_from_history` builds the sequences,
RFM features and rankers' state from the events, :func:`core.model.scoring._score_chunk` runs the
model, the baselines and the reasons), so the forecasts equal the app's for the same version.

:func:`score_on_spark` wires it to a Spark session (Spark Connect: ``sc://host:port``, which
Databricks and most managed Sparks serve): the dataset's events are split into groups by a hash
of the shopper, ``groupBy(group).applyInPandas`` scores each group on an executor, and the
predictions come back as a Spark DataFrame for the caller to write as a table. The app never
holds the events; training stays in the app on a seeded sample, as on one machine.

Only versions saved with their baselines and transition priors can be scored this way (every
version trained since those were kept); an older one is scored in the app, or trained again.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import tempfile
import threading
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from core import store
from core.errors import NotFittedError
from core.model import sequences

#: The columns of a prediction row, in the table's order (``cs_predictions``).
PREDICTION_COLUMNS = tuple(c.name for c in store.predictions.columns)

#: Groups of shoppers per executor task, per million events: each group is one pandas frame in one Python
#: worker, so a group should hold a few hundred thousand events at most.
GROUPS_PER_MILLION_EVENTS = 8


@dataclasses.dataclass(frozen=True)
class ScoringPackage:
    """What an executor needs to score shoppers with a model version: the version folder's files and where
    and when to score. Picklable; a few MB."""

    dataset_id: int
    version: str
    end_cutoff: dt.datetime  # every event before it counts (the data's last event plus one second)
    files: dict  # file name -> bytes, the version folder

    @property
    def key(self) -> str:
        return f"{self.dataset_id}/{self.version}/{self.end_cutoff.isoformat()}"


def package_version(engine: Engine, dataset: str, model_version: str | None = None) -> ScoringPackage:
    """A :class:`ScoringPackage` of ``model_version`` (the latest when None) of ``dataset``, scoring at the data's
    current end. :class:`NotFittedError` when the version predates its saved baselines or priors."""
    from core.model import registry, versions

    did = store.get_dataset(engine, dataset)["dataset_id"]
    row = versions.resolve_version(engine, did, dataset, model_version)
    folder = Path(row["path"])
    lm = registry.load_model(folder)
    if lm.baselines is None or not lm.priors_saved:
        raise NotFittedError(f"Model version {row['model_version']} was saved before its baselines and priors were "
                             "kept with it, so executors cannot score with it: score it in the app or train again.")
    _, last, _ = versions.data_window(engine, did)
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    return ScoringPackage(did, row["model_version"], last + dt.timedelta(seconds=1), files)


_unpacked: dict[str, tuple] = {}
_unpack_lock = threading.Lock()


def _unpack(package: ScoringPackage) -> tuple:
    """``(loaded, heads, baselines, needs)`` of the package, loaded once per Python process (an executor's
    worker scores many groups with the same version)."""
    from core.model import registry, versions
    from core.model.card import ModelCard
    from core.model.scoring import scoring_needs
    from core.model.training import seed_everything
    from core.model.value import ValueForecast

    with _unpack_lock:
        if package.key not in _unpacked:
            folder = Path(tempfile.mkdtemp(prefix="cartsight-executor-"))
            for name, data in package.files.items():
                (folder / name).write_bytes(data)
            lm = registry.load_model(folder)
            settings = dataclasses.replace(lm.settings, scoring_threads=1, torch_threads=1)  # a task is one core
            seed_everything(lm.config.seed, settings.torch_threads)
            loaded = {"model": lm.model, "config": lm.config, "settings": settings, "vocabs": lm.vocabs,
                      "calibrator": lm.calibrator,
                      "value": None if lm.value is None else ValueForecast.from_dict(lm.value)}
            heads = ModelCard.from_dict(lm.card).heads
            _unpacked[package.key] = (loaded, heads, versions.baselines_from_saved(lm.baselines),
                                      scoring_needs(loaded, heads))
        return _unpacked[package.key]


def _in_read_order(events: pd.DataFrame, end_cutoff: dt.datetime) -> pd.DataFrame:
    """The events before ``end_cutoff`` in :func:`core.model.sequences.load_events` order: by shopper, time, event
    type, then item id (a missing one first)."""
    frame = events.loc[:, list(sequences.EVENT_COLUMNS)]
    frame = frame[pd.to_datetime(frame["event_time"]) < pd.Timestamp(end_cutoff)]
    frame = frame.assign(_no_item=frame["item_id"].notna())  # False (missing) sorts first
    frame = frame.sort_values(["user_id", "event_time", "event_type", "_no_item", "item_id"], kind="stable")
    return frame.drop(columns="_no_item").reset_index(drop=True)


def score_events(package: ScoringPackage, events: pd.DataFrame) -> pd.DataFrame:
    """The prediction rows (:data:`PREDICTION_COLUMNS`) of every shopper in ``events`` (all their events, any
    order; the :data:`core.model.sequences.EVENT_COLUMNS`), scored as the app scores them, ``chunk_users``
    shoppers at a time."""
    from core.model.scoring import _score_chunk, inputs_from_history

    loaded, heads, baselines, (_, need_rfm) = _unpack(package)
    frame = _in_read_order(events, package.end_cutoff)
    users = frame["user_id"].to_numpy(dtype=object)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else np.array([], dtype=int)
    step = loaded["settings"].chunk_users
    parts = []
    with loaded["model"].evaluating():
        for lo in range(0, len(starts), step):
            end = starts[lo + step] if lo + step < len(starts) else len(frame)
            history = frame.iloc[starts[lo]:end].reset_index(drop=True)
            batch, base, rfm_x = inputs_from_history(loaded, heads, baselines, history, package.end_cutoff, need_rfm)
            parts.append(_score_chunk(loaded, batch, heads, base, rfm_x, package.dataset_id, package.version))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PREDICTION_COLUMNS})
    return pd.concat(parts, ignore_index=True).loc[:, list(PREDICTION_COLUMNS)]


def spark_schema() -> str:
    """The prediction rows' Spark schema, as DDL (``applyInPandas`` reads it)."""
    from core.store.executors import spark_schema as table_schema

    return table_schema(store.predictions)


def _score_group(package: ScoringPackage, events: pd.DataFrame) -> pd.DataFrame:
    """One group's predictions, as Spark hands it to a task (module level: the task pickles it by reference)."""
    out = score_events(package, events.drop(columns=["cartsight_group"], errors="ignore"))
    return out.astype({"dataset_id": "int32"})


def score_on_spark(session, events_table: str, package: ScoringPackage, n_events: int):
    """A Spark DataFrame of the predictions of every shopper of the package's dataset, computed on the executors.

    ``session``: a Spark session (``SparkSession.builder.remote("sc://…")``); ``events_table``: the Spark table
    that holds the dataset's canonical events (``cs_events``). The events before the package's cutoff are split
    into groups by a hash of the shopper (``n_events`` sizes the number of groups); each group is scored by
    :func:`score_events` in one task. Nothing is computed until the caller writes or collects it.
    """
    from functools import partial

    from pyspark.sql import functions as F

    groups = max(1, int(np.ceil(n_events / 1e6 * GROUPS_PER_MILLION_EVENTS)))
    events = (session.table(events_table)
              .where((F.col("dataset_id") == package.dataset_id) & (F.col("event_time") < F.lit(package.end_cutoff)))
              .select(*sequences.EVENT_COLUMNS)
              .withColumn("cartsight_group", F.pmod(F.xxhash64("user_id"), F.lit(groups))))
    return events.groupBy("cartsight_group").applyInPandas(partial(_score_group, package), spark_schema())


def package_in_memory(model, cfg, vocabs, calibrator, card: dict, saved_baselines: dict, value: dict | None,
                      settings, dataset_id: int, version: str, end_cutoff: dt.datetime) -> ScoringPackage:
    """A :class:`ScoringPackage` of a version not yet published (training scores before it writes the version
    folder): the folder is written to a temporary place with :func:`core.model.registry.save_model` and read."""
    from core.model import registry

    with tempfile.TemporaryDirectory(prefix="cartsight-package-") as tmp:
        folder = registry.save_model(Path(tmp) / "version", model, cfg, vocabs, calibrator, card, saved_baselines,
                                     value, settings=settings)
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    return ScoringPackage(dataset_id, version, end_cutoff, files)


def score_into_store(engine: Engine, session, package: ScoringPackage) -> int:
    """Score every shopper of the package's dataset on the executors of the Spark store ``engine`` (``session``:
    :func:`core.store.executors.spark_session`) and append the rows to its ``cs_predictions``; returns how many
    rows the version has there. The app holds no event and no prediction row."""
    import sqlalchemy as sa

    from core.store.executors import refresh, table_name

    ev, p = store.events.c, store.predictions
    with engine.connect() as conn:
        n_events = conn.execute(sa.select(sa.func.count()).where(ev.dataset_id == package.dataset_id)).scalar_one()
    rows = score_on_spark(session, table_name(engine, store.events), package, int(n_events))
    rows.write.insertInto(table_name(engine, p))
    refresh(engine, p)
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(p).where(
            p.c.dataset_id == package.dataset_id, p.c.model_version == package.version)).scalar_one())
