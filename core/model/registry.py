"""Model versions on disk and in the store.

A version lives in ``core.config.models_dir()/<dataset_id>/<version>/``: ``model.safetensors``
(weights), ``config.json`` (hyperparameters, vocabulary sizes and the run's pipeline settings), ``vocabularies.json``,
``calibrator.json``, ``card.json`` (the model card with every metric), ``baselines.json`` (the
fitted baselines it scores with, see :func:`core.model.forecast.score`) and ``value.json`` (the value and
churn forecasts, :mod:`core.model.value`). The store holds a
``cs_models`` row per version and ``cs_predictions`` rows (one per shopper per version).

Publishing is all or nothing: the folder is written under a temporary name and renamed,
the predictions are bulk-inserted and the ``cs_models`` row (status ``ready``) is added in
the same transaction, so a killed or cancelled run leaves no ``ready`` row and the
previous version keeps serving.

A process killed between the rename and the commit leaves a complete folder that no row
names. Beside each folder, ``<version>.owner.json`` records its writer (the process's owner
token, see :func:`core.store.process_owner`) and, from :func:`insert_model_row` on, the store
it is published in; :func:`core.store.cleanup_stale_files` removes, when a store opens, the
folders of dead writers that this store never published. Readers only follow ``ready`` rows,
so such a folder is ignored until then.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core import config as app_config
from core import store
from core.store import sql
from core.errors import CartsightError, NotFittedError
from core.model.config import SETTINGS_KEYS, ModelConfig, PipelineSettings
from core.model.sequences import Vocabularies
from core.store.sql import READY

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
VOCAB_FILE = "vocabularies.json"
CALIBRATOR_FILE = "calibrator.json"
#: State-dict keys of the transition priors (absent from versions saved before them).
TRANSITION_PRIOR_KEYS = ("category_succ_", "category_totals", "category_popularity", "item_succ_", "item_totals",
                         "item_popularity")
PRIOR_KEYS = (*TRANSITION_PRIOR_KEYS, "prior_scale", "session_prior_scale", "category_learned",
              "own_category_weight", "category_mix")  # saved before the own-category mixes: weights 0, as it was
CARD_FILE = "card.json"
BASELINES_FILE = "baselines.json"
VALUE_FILE = "value.json"
#: Columns of ``cs_predictions`` written for each shopper, in table order.
PREDICTION_COLUMNS = [
    "dataset_id", "model_version", "user_id", "purchase_propensity", "next_event_type", "p_view", "p_cart",
    "p_purchase", "p_remove", "p_none", "next_category", "next_category_p", "top_items", "reasons",
    "expected_revenue", "p_inactive",
]


@dataclass
class LoadedModel:
    """A model version read back from disk."""

    model: object  # ForecastModel, in eval mode
    config: ModelConfig
    vocabs: Vocabularies
    calibrator: object  # core.model.evaluation.Calibrator
    card: dict
    path: Path
    baselines: dict | None = None  # the fitted baselines it scores with (None: saved before they were kept)
    priors_saved: bool = True  # False: saved before the transition priors, which scoring then counts
    value: dict | None = None  # the value and churn forecasts (core.model.value; None: saved before them)
    settings: PipelineSettings = field(default_factory=PipelineSettings)  # those it was trained with


def new_version(dataset_id: int) -> str:
    """A fresh, sortable version name: ``d<dataset_id>-<UTC time to the microsecond>``."""
    return f"d{dataset_id}-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S-%f}"


def version_dir(dataset_id: int, version: str) -> Path:
    """Folder of a model version."""
    return app_config.models_dir() / str(dataset_id) / version


def save_model(folder: Path, model, config: ModelConfig, vocabs: Vocabularies, calibrator, card: dict,
               baselines: dict | None = None, value: dict | None = None,
               settings: PipelineSettings | None = None) -> Path:
    """Write a version folder atomically (temporary folder, then rename); returns ``folder``.

    ``config.json`` holds the hyperparameters (vocabulary sizes set) and the run's ``settings``
    (defaults when None), which re-scoring the version uses unless told otherwise.

    Raises :class:`CartsightError` when ``folder`` exists already.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    if folder.exists():
        raise CartsightError(f"Model folder {folder} exists already; model versions are never overwritten.")
    owner = store.process_owner()
    tmp = folder.with_name(f"{folder.name}{store.PARTIAL_MARK}{owner}")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        _write_note(folder, {"owner": owner})  # before the folder exists: a killed writer's folder is traceable
        tmp.mkdir()
    except OSError as exc:
        raise _unwritable(exc, folder) from exc
    try:
        state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE))
        config = config.with_vocab_sizes(model.n_items, model.n_categories, model.n_brands)
        meta = {"config": config.to_dict(), "settings": (settings or PipelineSettings()).to_dict()}
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=1))
        (tmp / VOCAB_FILE).write_text(json.dumps(vocabs.to_dict()))
        (tmp / CALIBRATOR_FILE).write_text(json.dumps(calibrator.to_dict()))
        (tmp / CARD_FILE).write_text(json.dumps(card, indent=1, default=str))
        if baselines is not None:
            (tmp / BASELINES_FILE).write_text(json.dumps(baselines))
        if value is not None:
            (tmp / VALUE_FILE).write_text(json.dumps(value))
        tmp.rename(folder)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _note_path(folder).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _unwritable(exc, folder) from exc
        raise
    return folder


def _note_path(folder: Path) -> Path:
    return Path(folder).with_name(Path(folder).name + store.OWNER_SUFFIX)


def _write_note(folder: Path, note: dict) -> None:
    """Write the owner note beside ``folder`` atomically (temporary file, then rename)."""
    path = _note_path(folder)
    fresh = path.with_name(f".{path.name}.{store.process_owner()}")
    fresh.write_text(json.dumps(note))
    fresh.replace(path)


def _unwritable(exc: OSError, folder: Path) -> CartsightError:
    known = store.describe_failure(exc)
    return known if known is not None else CartsightError(f"Cannot write the model folder {folder}: {exc}")


def load_model(folder: Path) -> LoadedModel:
    """Read a version folder written by :func:`save_model`; raises :class:`NotFittedError` when it is missing."""
    from safetensors.torch import load_file

    from core.model.evaluation import Calibrator
    from core.model.modeling import ForecastModel

    folder = Path(folder)
    if not (folder / WEIGHTS_FILE).is_file():
        raise NotFittedError(f"No model weights at {folder / WEIGHTS_FILE}: the model version is missing or incomplete.")
    meta = json.loads((folder / CONFIG_FILE).read_text())
    config = ModelConfig.from_dict(meta["config"])
    if config.item_vocab_size is None:  # saved before the config held them: the sizes are the folder's "shape"
        shape = meta["shape"]
        config = config.with_vocab_sizes(shape["n_items"], shape["n_categories"], shape["n_brands"])
    model = ForecastModel(config)
    missing, unexpected = model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=False)
    # versions saved before the transition priors existed lack them: empty priors leave their forecasts unchanged
    wrong = [k for k in missing if not k.startswith(PRIOR_KEYS)] + list(unexpected)
    if wrong:
        raise NotFittedError(f"The weights in {folder} do not match the model: {wrong[:5]}.")
    if "session_prior_scale" in missing:  # saved before the session prior: its category forecast stays as it was
        import torch

        with torch.no_grad():
            model.session_prior_scale.zero_()
    model.eval()
    return LoadedModel(
        model=model, config=config, vocabs=Vocabularies.from_dict(json.loads((folder / VOCAB_FILE).read_text())),
        calibrator=Calibrator.from_dict(json.loads((folder / CALIBRATOR_FILE).read_text())),
        card=json.loads((folder / CARD_FILE).read_text()), path=folder,
        baselines=json.loads((folder / BASELINES_FILE).read_text()) if (folder / BASELINES_FILE).is_file() else None,
        priors_saved=not any(k.startswith(TRANSITION_PRIOR_KEYS) for k in missing), settings=_saved_settings(meta),
        value=json.loads((folder / VALUE_FILE).read_text()) if (folder / VALUE_FILE).is_file() else None,
    )


def _saved_settings(meta: dict) -> PipelineSettings:
    """The settings a version was trained with: its own entry, else those that older versions kept among the
    hyperparameters (defaults for any they lack)."""
    if "settings" in meta:
        return PipelineSettings.from_dict(meta["settings"])
    return PipelineSettings.from_dict({k: v for k, v in meta["config"].items() if k in SETTINGS_KEYS})


def write_predictions(conn: Connection, frame: pd.DataFrame) -> int:
    """Bulk-insert prediction rows (columns :data:`PREDICTION_COLUMNS`) inside ``conn``'s transaction.

    Goes through :func:`core.store.bulk_insert` (DuckDB registered frame, PostgreSQL COPY).
    Returns the number of rows.
    """
    return store.bulk_insert(conn, store.predictions, frame.loc[:, PREDICTION_COLUMNS])


def delete_predictions(conn: Connection, dataset_id: int, version: str) -> None:
    """Remove a version's prediction rows (before they are rewritten)."""
    p = store.predictions
    conn.execute(p.delete().where(p.c.dataset_id == dataset_id, p.c.model_version == version))


def insert_model_row(conn: Connection, version: str, dataset_id: int, horizon_days: int, folder: Path,
                     config: ModelConfig, card: dict, settings: PipelineSettings | None = None) -> None:
    """Add the ``cs_models`` row of a version with status ``ready`` (call last, in the predictions' transaction).

    Its ``config_json`` holds the hyperparameters and the run's ``settings`` (defaults when None) side by side.

    First records in the folder's owner note which store publishes it, so that a cleanup by
    another store sharing the data folder leaves it alone.
    """
    _write_note(folder, {"owner": store.process_owner(), "store": store.store_tag(conn)})
    conn.execute(store.models.insert().values(
        model_version=version, dataset_id=dataset_id, created_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
        horizon_days=horizon_days, path=str(folder),
        config_json=json.dumps({**config.to_dict(), **(settings or PipelineSettings()).to_dict()}, sort_keys=True),
        metrics_json=json.dumps(card, default=str), status=READY,
    ))


def model_rows(engine: Engine, dataset_id: int) -> list[dict]:
    """The ``ready`` model rows of a dataset, newest first."""
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sql.ready_models(dataset_id)).mappings()]


def read_predictions(engine: Engine, dataset_id: int, version: str) -> pd.DataFrame:
    """Every prediction row of a version, highest propensity first (the Forecasts page filters and cuts them in
    the store: :mod:`core.model.forecast_rows`).

    Read column-wise (:func:`core.model.sequences.read_frame`): building hundreds of thousands of row objects
    in Python takes seconds.
    """
    from core.model.sequences import read_frame

    p = store.predictions
    query = sa.select(*[p.c[c] for c in PREDICTION_COLUMNS if c != "dataset_id"]).where(
        p.c.dataset_id == dataset_id, p.c.model_version == version)
    # every row: sorted here, not by the store (on Spark a global sort is a job of its own: 0.3 s of 1.0 s for
    # 77,443 shoppers, measured); ties in propensity by user id, in code point order on every store
    frame = read_frame(engine, query)
    return frame.sort_values(["purchase_propensity", "user_id"], ascending=[False, True], kind="stable",
                             ignore_index=True)


def remove_folder(folder: Path) -> None:
    """Delete a version folder, its half-written copies and its owner note (publishing failed)."""
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    if folder.parent.is_dir():
        for partial in folder.parent.glob(f"{folder.name}{store.PARTIAL_MARK}*"):
            shutil.rmtree(partial, ignore_errors=True)
    _note_path(folder).unlink(missing_ok=True)


__all__ = [
    "LoadedModel", "new_version", "version_dir", "save_model", "load_model", "write_predictions",
    "delete_predictions", "insert_model_row", "model_rows", "read_predictions", "remove_folder",
    "PREDICTION_COLUMNS", "READY",
]
