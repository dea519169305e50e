"""Shopper segments: runs of the :class:`~core.analysis.segmenter.Segmenter` stored in the database, and what reads them back.

:func:`run_segmentation` computes the features (:mod:`core.analysis.shopper_features`), fits the
segmenter (:mod:`core.analysis.segmenter`), names and profiles the segments
(:mod:`core.analysis.segment_names`) and stores the run and its assignments in one transaction.
:func:`list_runs`, :func:`latest_run`, :func:`get_run`, :func:`load_assignments` and
:func:`segment_of` read runs back; :func:`segment_cli_output` is what ``cartsight segment``
prints; the last functions serve the Shopper page (one shopper beside their segment).
"""
from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core import config, store
from core.store import executors, segment_totals, sql
from core.errors import NotFittedError, ParameterError, SchemaError, SegmentationCancelled
from core.store.price_bands import PRICE_BANDS
# The features, the estimator and the naming live in their own modules; their names stay importable from here.
from core.analysis.segment_names import _share_rows, build_profiles
from core.analysis.segmenter import AUTO, Segmenter, block_weights, share_features, unscaled_features
from core.analysis import executor_segments
from core.analysis.shopper_features import EMBEDDING_PREFIX, shopper_features

_e = store.events.c


# --- profile details read from a stored run ----------------------------------------------------------------


def _detail_query(conn: Connection, dataset_id: int, run_id: int, column) -> pd.DataFrame:
    """Event counts per segment and value of ``column`` for a stored run (a join in the database)."""
    sg = store.segments.c
    query = (sa.select(sg.segment, column.label("value"), sa.func.count().label("n"))
             .select_from(store.segments.join(store.events, sa.and_(_e.dataset_id == sg.dataset_id,
                                                                    _e.user_id == sg.user_id)))
             .where(sg.run_id == run_id, sg.dataset_id == dataset_id, column.is_not(None))
             .group_by(sg.segment, column))
    return sql.frame(conn.execute(query))


def _add_details(conn: Connection, dataset_id: int, run_id: int, profiles: list[dict]) -> None:
    """Top categories and brands of each segment with share and affinity, read from the stored assignments."""
    top = config.SEGMENT_PROFILE_TOP
    for key, column in (("top_categories", _e.category), ("top_brands", _e.brand)):
        counts = _detail_query(conn, dataset_id, run_id, column)
        if column is _e.brand and not counts.empty:  # grouped as stored, named as the files spell it
            counts["value"] = store.show_brands(conn, dataset_id, counts["value"])
        overall = counts.groupby("value")["n"].sum() if not counts.empty else pd.Series(dtype=float)
        for p in profiles:
            mine = counts.loc[counts["segment"] == p["segment"]].set_index("value")["n"] if not counts.empty else overall
            p[key] = _share_rows(mine.astype(float), float(mine.sum()), overall.astype(float), float(overall.sum()), top)


# --- runs in the store ----------------------------------------------------------------------------------


@dataclass
class SegmentRun:
    """One stored segmentation of a dataset; ``features``/``labels`` only on the run just computed."""

    run_id: int
    dataset: str
    dataset_id: int
    created_at: dt.datetime
    n_segments: int
    model_version: str | None
    feature_names: list[str]
    scaling: dict
    silhouette_by_k: dict
    profiles: list[dict]
    notes: list[str] = field(default_factory=list)
    map_points: dict = field(default_factory=dict)
    features: pd.DataFrame | None = None
    assignments: pd.DataFrame | None = None
    segmenter: Segmenter | None = None  # the fitted segmenter, on the run just computed

    def names(self) -> dict[int, str]:
        """Segment number → name."""
        return {p["segment"]: p["name"] for p in self.profiles}


def _map_points(z: np.ndarray, users: pd.Index, labels: np.ndarray, seed: int) -> dict:
    """A seeded sample of at most SEGMENT_MAP_POINTS shoppers placed on the first two principal components."""
    from sklearn.decomposition import PCA

    n = len(z)
    idx = np.arange(n) if n <= config.SEGMENT_MAP_POINTS else np.sort(
        np.random.default_rng(seed).choice(n, size=config.SEGMENT_MAP_POINTS, replace=False))
    dims = min(2, z.shape[1], n)
    pca = PCA(n_components=dims, random_state=seed).fit(z)
    xy = pca.transform(z[idx])
    if dims < 2:
        xy = np.column_stack([xy, np.zeros(len(idx))])
    return {"user_id": [str(u) for u in users[idx]], "x": np.round(xy[:, 0], 4).tolist(),
            "y": np.round(xy[:, 1], 4).tolist(), "segment": [int(v) for v in labels[idx]],
            "explained_variance": [float(v) for v in pca.explained_variance_ratio_],
            "n_shoppers": int(n)}


def _insert_assignments(conn: Connection, frame: pd.DataFrame) -> None:
    """Bulk-insert cs_segments rows through the engine's native path."""
    store.bulk_insert(conn, store.segments, frame.loc[:, ["dataset_id", "run_id", "user_id", "segment", "segment_name"]])


def _fit_sample(session, n_users: int | None, seed: int,
                use_embedding: bool) -> tuple[tuple[float, int] | None, bool, str | None]:
    """``(sample, use_embedding, note)`` of a segmentation: on a store whose executors assign every shopper
    (``session`` not None), one of more than :data:`~core.config.SEGMENT_FIT_MAX_SHOPPERS` shoppers is fitted on
    a seeded sample of about that many, and without the model's embedding (executors cannot compute it; it is
    left out above :data:`~core.config.SEGMENT_EMBEDDING_MAX_USERS` shoppers on every store anyway). Smaller
    datasets are fitted on every shopper as on any store, so the same data gives the same segments."""
    if session is None or not n_users or n_users <= config.SEGMENT_FIT_MAX_SHOPPERS:
        return None, use_embedding, None
    share = config.SEGMENT_FIT_MAX_SHOPPERS / n_users
    return (share, seed), False, (f"segments fitted on a seeded sample of about {config.SEGMENT_FIT_MAX_SHOPPERS:,} "
                                  f"of {n_users:,} shoppers and assigned to all on the Spark cluster's executors; "
                                  "profile figures other than sizes describe the sample")


def _read_features(engine: Engine, ds: dict, version: str | None, top_categories: int, use_embedding: bool,
                   seed: int, session) -> tuple[pd.DataFrame, list[str]]:
    """The shoppers' features to fit on (all, or a seeded sample where the executors assign everyone: see
    :func:`_fit_sample`), with the dataset's id and the sample's note in ``attrs``."""
    sample, use_embedding, note = _fit_sample(session, ds.get("n_users"), seed, use_embedding)
    features, names = shopper_features(engine, ds["dataset_id"], model_version=version,
                                       top_categories=top_categories, use_embedding=use_embedding, sample=sample)
    features.attrs.update(dataset_id=ds["dataset_id"], notes=features.attrs.get("notes", []) + ([note] if note else []))
    return features, names


def _assign_everyone(engine: Engine, conn: Connection, session, assignments: pd.DataFrame, segmenter: Segmenter,
                     features: pd.DataFrame, names: list[str], run_id: int, version: str | None,
                     profiles: list[dict]) -> None:
    """Write every shopper's segment: on the Spark cluster's executors when ``session`` is one and the features
    are ones they compute (the profiles' sizes then counted from that assignment), else the app's
    ``assignments`` of the shoppers it fitted on."""
    did = features.attrs.get("dataset_id")
    if session is not None and not any(n.startswith(EMBEDDING_PREFIX) for n in names):
        name_of = {p["segment"]: p["name"] for p in profiles}
        package = executor_segments.package_run(segmenter, features, names, did, run_id, name_of)
        _true_sizes(profiles, executor_segments.assign_into_store(session, engine, package, version))
    else:
        _insert_assignments(conn, assignments.assign(dataset_id=did, run_id=run_id))


def _true_sizes(profiles: list[dict], counts: dict[int, int]) -> None:
    """Each profile's size and share of shoppers from the assignment of every shopper (``counts``)."""
    total = max(sum(counts.values()), 1)
    for p in profiles:
        p["size"] = int(counts.get(p["segment"], 0))
        p["share_shoppers"] = p["size"] / total


def run_segmentation(engine: Engine, dataset: str, n_segments: int | str = AUTO, seed: int = 0, *,
                     top_categories: int = config.SEGMENT_TOP_CATEGORIES, use_forecasts: bool = True,
                     use_embedding: bool = True, progress: Callable[[float, str], None] | None = None,
                     should_stop: Callable[[], bool] | None = None) -> SegmentRun:
    """Compute features, fit the :class:`Segmenter`, name and profile the segments, and store the run.

    Inputs: the store, the dataset name, ``n_segments`` ("auto" or 2..10), the ``seed``;
    ``use_forecasts``: use the latest ready model's propensity (and, with ``use_embedding``,
    its shopper embedding) when one exists. The assignments (one row per shopper) and the run
    (features and scaling, silhouettes, the map sample and the profile cards as JSON) are
    written in one transaction (bulk insert); a failure leaves nothing. Output: the stored
    :class:`SegmentRun`, with ``features`` and ``assignments`` attached.
    ``progress(fraction, message)`` hears each stage begin; ``should_stop()`` is asked between stages
    and, when true, the run ends in :class:`SegmentationCancelled` before anything is written.
    Errors: ``DatasetNotFoundError``; ``ParameterError`` for a bad ``n_segments`` or too few shoppers.
    """
    def stage(fraction: float, message: str) -> None:
        if should_stop is not None and should_stop():
            raise SegmentationCancelled(f"Segmenting {dataset!r} was cancelled: no run was stored.")
        if progress is not None:
            progress(fraction, message)

    stage(0.0, "Reading each shopper's features…")
    ds = store.get_dataset(engine, dataset)
    did = ds["dataset_id"]
    version = sql.newest_ready_model_version(engine, did) if use_forecasts else None
    session = executors.spark_session(engine)
    features, names = _read_features(engine, ds, version, top_categories, use_embedding, seed, session)
    stage(0.4, f"Grouping {len(features):,} shoppers (k-means)…")
    segmenter = Segmenter(n_segments, random_state=seed, feature_weights=block_weights(names),
                          sqrt_features=share_features(names),
                          unscaled_features=unscaled_features(names)).fit(features[names])
    labels = segmenter.labels_
    stage(0.8, "Naming and profiling the segments…")
    profiles = build_profiles(features, labels, segmenter.centers_, names)
    name_of = {p["segment"]: p["name"] for p in profiles}
    z = segmenter.transform(features[names])
    map_points = _map_points(z, features.index, labels, seed)
    assignments = pd.DataFrame({"user_id": features.index.astype(str), "segment": labels.astype(int),
                                "segment_name": [name_of[s] for s in labels]})
    created = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    features_meta = _features_meta(segmenter, features, names, n_segments, seed, map_points)
    stage(0.9, "Storing the run…")
    with engine.begin() as conn:
        run_id = int(conn.execute(sa.select(store.segment_run_id_seq.next_value())).scalar_one())
        _assign_everyone(engine, conn, session, assignments, segmenter, features, names, run_id, version, profiles)
        _add_details(conn, did, run_id, profiles)
        segment_totals.write(conn, did, run_id)
        conn.execute(store.segment_runs.insert().values(
            run_id=run_id, dataset_id=did, created_at=created, n_segments=segmenter.n_segments_, model_version=version,
            features_json=json.dumps(features_meta, default=_json_default),
            profiles_json=json.dumps(profiles, default=_json_default)))
    store.analyze(engine, store.segments, store.segment_runs)
    return SegmentRun(run_id=run_id, dataset=dataset, dataset_id=did, created_at=created,
                      n_segments=segmenter.n_segments_, model_version=version, feature_names=names,
                      scaling={"mean": features_meta["mean"], "scale": features_meta["scale"]},
                      silhouette_by_k={int(k): v for k, v in segmenter.silhouette_by_k_.items()}, profiles=profiles,
                      notes=list(features.attrs.get("notes", [])), map_points=map_points,
                      features=features, assignments=assignments, segmenter=segmenter)


def _features_meta(segmenter: Segmenter, features: pd.DataFrame, names: list[str], n_segments: int | str,
                   seed: int, map_points: dict) -> dict:
    """What a run stores about its features: names, scaling and weights, the choice of k, notes and the map."""
    return {
        "names": names, "mean": segmenter.scaler_.mean_.tolist(), "scale": segmenter.scaler_.scale_.tolist(),
        "weights": segmenter.weights_.tolist(), "sqrt_features": list(segmenter.sqrt_features),
        "unscaled_features": list(segmenter.unscaled_features),
        "category_groups": features.attrs.get("groups", []), "silhouette_by_k": segmenter.silhouette_by_k_,
        "n_segments_asked": n_segments, "seed": seed, "notes": features.attrs.get("notes", []), "map": map_points,
    }


def _json_default(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return None if math.isnan(v) else float(v)
    if isinstance(v, (dt.datetime, pd.Timestamp)):
        return v.isoformat()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def _run_from_row(row: dict, dataset: str) -> SegmentRun:
    meta = json.loads(row["features_json"] or "{}")
    return SegmentRun(
        run_id=int(row["run_id"]), dataset=dataset, dataset_id=int(row["dataset_id"]), created_at=row["created_at"],
        n_segments=int(row["n_segments"]), model_version=row["model_version"], feature_names=meta.get("names", []),
        scaling={"mean": meta.get("mean", []), "scale": meta.get("scale", [])},
        silhouette_by_k={int(k): v for k, v in meta.get("silhouette_by_k", {}).items()},
        profiles=json.loads(row["profiles_json"] or "[]"), notes=meta.get("notes", []), map_points=meta.get("map", {}),
    )


def list_runs(engine: Engine, dataset: str) -> list[SegmentRun]:
    """Every stored segmentation of ``dataset``, newest first (``DatasetNotFoundError`` for an unknown name)."""
    did = store.get_dataset(engine, dataset)["dataset_id"]
    r = store.segment_runs.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(store.segment_runs).where(r.dataset_id == did)
                            .order_by(r.run_id.desc())).mappings().all()
    return [_run_from_row(dict(row), dataset) for row in rows]


def latest_run(engine: Engine, dataset: str) -> SegmentRun | None:
    """The newest stored segmentation of ``dataset``, or None when it was never segmented."""
    runs = list_runs(engine, dataset)
    return runs[0] if runs else None


def get_run(engine: Engine, dataset: str, run_id: int | None = None) -> SegmentRun:
    """The run ``run_id`` of ``dataset`` (the newest when None).

    Errors: :class:`NotFittedError` when the dataset has no such run (or none at all).
    """
    runs = list_runs(engine, dataset)
    if not runs:
        raise NotFittedError(f"Dataset {dataset!r} has not been segmented yet: run a segmentation first.")
    if run_id is None:
        return runs[0]
    for run in runs:
        if run.run_id == run_id:
            return run
    raise NotFittedError(f"Dataset {dataset!r} has no segmentation run {run_id!r}; runs: {[r.run_id for r in runs]}.")


def load_assignments(engine: Engine, dataset: str, run_id: int | None = None) -> pd.DataFrame:
    """Shoppers' segments of a run (the newest when None): columns user_id, segment, segment_name, run_id.

    Sorted by user_id. Errors: ``DatasetNotFoundError``; :class:`NotFittedError` when the
    dataset has no such run.
    """
    run = get_run(engine, dataset, run_id)
    sg = store.segments.c
    query = sa.select(sg.user_id, sg.segment, sg.segment_name, sg.run_id).where(
        sg.dataset_id == run.dataset_id, sg.run_id == run.run_id).order_by(sg.user_id)
    with engine.connect() as conn:
        frame = sql.frame(conn.execute(query))
    if frame.empty:
        return pd.DataFrame({"user_id": pd.Series(dtype=object), "segment": pd.Series(dtype=int),
                             "segment_name": pd.Series(dtype=object), "run_id": pd.Series(dtype=int)})
    return frame.astype({"segment": int, "run_id": int})


def segment_of(engine: Engine, dataset: str, user_id: str, run_id: int | None = None) -> dict | None:
    """The segment (``segment``, ``segment_name``, ``run_id``) of one shopper in a run, or None when not in it."""
    run = get_run(engine, dataset, run_id)
    sg = store.segments.c
    query = sa.select(sg.segment, sg.segment_name, sg.run_id).where(
        sg.dataset_id == run.dataset_id, sg.run_id == run.run_id, sg.user_id == str(user_id))
    with engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return dict(row) if row else None


# --- CLI output -----------------------------------------------------------------------------------------


def profile_text(profile: dict) -> str:
    """One profile card in plain words (CLI and exports)."""
    def pct(v):
        return "—" if v is None else f"{v:.1%}"

    def listing(rows):
        return ", ".join(f"{r['name']} {pct(r['share'])}" + (f" (x{r['affinity']:.2f})" if r.get("affinity") else "")
                         for r in rows) or "—"

    lines = [
        f"Segment {profile['segment']}: {profile['name']}",
        f"  shoppers {profile['size']:,} ({pct(profile['share_shoppers'])}); revenue share {pct(profile['share_revenue'])}; "
        f"conversion {pct(profile['conversion'])}; median days since last event {profile['median_recency_days']:.1f}"
        + (f"; mean propensity {profile['mean_propensity']:.3f}" if profile.get("mean_propensity") is not None else ""),
        f"  top categories: {listing(profile.get('top_categories', []))}",
        f"  top brands: {listing(profile.get('top_brands', []))}",
        f"  price bands: {listing(sorted(profile['group_index']['bands'], key=lambda r: -r['share']))}",
    ]
    return "\n".join(lines)


def segment_cli_output(run: SegmentRun, features: pd.DataFrame | None = None) -> tuple[pd.DataFrame, str]:
    """What ``cartsight segment`` writes and prints.

    Inputs: a :class:`SegmentRun` (from :func:`run_segmentation`) and the features frame
    (default ``run.features``). Output: a DataFrame with ``user_id``, ``segment``,
    ``segment_name`` and one column per feature used (in ``run.feature_names`` order), sorted
    by user_id; and the profile cards as text. Errors: ``ParameterError`` when neither the run
    nor the argument carries the features (a run read back from the store has none: compute
    them with :func:`shopper_features`).
    """
    features = run.features if features is None else features
    if features is None:
        raise ParameterError("segment_cli_output needs the features: parameter 'features' is None and the run has "
                             "none.",
                             parameter="features")
    missing = [n for n in run.feature_names if n not in features.columns]
    if missing:
        raise SchemaError(f"features lack the run's feature column(s) {missing}; expected {run.feature_names}.",
                          column=missing[0], cases=missing, reason="missing_column")
    names = run.names()
    if run.assignments is not None:
        seg = run.assignments.set_index("user_id")["segment"]
    else:
        raise ParameterError("segment_cli_output needs the run's assignments (use the run returned by "
                             "run_segmentation).", parameter="run")
    out = pd.DataFrame({"user_id": features.index.astype(str)})
    out["segment"] = seg.reindex(out["user_id"]).to_numpy()
    out["segment_name"] = out["segment"].map(names)
    for n in run.feature_names:
        out[n] = features[n].to_numpy()
    header = (f"Segmentation run {run.run_id} of dataset {run.dataset!r}: {run.n_segments} segments of "
              f"{len(out):,} shoppers; features: {', '.join(run.feature_names)}")
    sil = ", ".join(f"k={k}: {v:.3f}" for k, v in sorted(run.silhouette_by_k.items()) if v is not None)
    text = "\n\n".join([header + (f"\nSilhouette: {sil}" if sil else "") + "".join(f"\nNote: {n}" for n in run.notes),
                        *[profile_text(p) for p in run.profiles]])
    return out.sort_values("user_id", kind="stable").reset_index(drop=True), text


# --- one shopper (the Shopper page) ------------------------------------------------------------------------

SUGGESTION_KINDS = ("top propensity", "biggest spenders", "segment members")


def suggest_shoppers(engine: Engine, dataset: str, kind: str, n: int = config.SHOPPER_SUGGESTIONS, *,
                     segment: int | None = None, run_id: int | None = None) -> pd.DataFrame:
    """Shoppers worth a look: columns ``user_id`` and ``value`` (what they were ranked by), best first.

    ``kind``: "top propensity" (latest ready model's purchase propensity; empty without a
    model), "biggest spenders" (revenue), "segment members" (members of ``segment`` in the
    run ``run_id`` or the newest, biggest spenders first). Errors: ``ParameterError`` for an
    unknown kind or a missing ``segment``; ``DatasetNotFoundError``; :class:`NotFittedError`
    for members when the dataset has no segmentation.
    """
    if kind not in SUGGESTION_KINDS:
        raise ParameterError(f"Parameter 'kind' is {kind!r}; expected one of {list(SUGGESTION_KINDS)}.",
                             parameter="kind",
                             cases=[kind])
    did = store.get_dataset(engine, dataset)["dataset_id"]
    sh = store.shoppers.c  # one row per shopper with its revenue (core.store.summaries), not every event
    revenue = sa.func.coalesce(sh.revenue, 0.0)
    if kind == "top propensity":
        version = sql.newest_ready_model_version(engine, did)
        if version is None:
            return pd.DataFrame({"user_id": pd.Series(dtype=object), "value": pd.Series(dtype=float)})
        p = store.predictions.c
        query = (sa.select(p.user_id, p.purchase_propensity.label("value"))
                 .where(p.dataset_id == did, p.model_version == version)
                 .order_by(p.purchase_propensity.desc(), p.user_id).limit(n))
    elif kind == "biggest spenders":
        query = (sa.select(sh.user_id, revenue.label("value")).where(sh.dataset_id == did)
                 .order_by(revenue.desc(), sh.user_id).limit(n))
    else:
        if segment is None:
            raise ParameterError("Parameter 'segment' is None; expected a segment number for 'segment members'.",
                                 parameter="segment")
        run = get_run(engine, dataset, run_id)
        sg = store.segments.c
        query = (sa.select(sg.user_id, revenue.label("value"))
                 .select_from(store.segments.join(store.shoppers, sa.and_(sh.dataset_id == sg.dataset_id,
                                                                          sh.user_id == sg.user_id)))
                 .where(sg.dataset_id == did, sg.run_id == run.run_id, sg.segment == int(segment))
                 .order_by(revenue.desc(), sg.user_id).limit(n))
    with engine.connect() as conn:
        frame = sql.frame(conn.execute(query))
    if frame.empty:
        return pd.DataFrame({"user_id": pd.Series(dtype=object), "value": pd.Series(dtype=float)})
    return frame.astype({"value": float})


def shopper_events(engine: Engine, dataset: str, user_id: str,
                   limit: int = config.SHOPPER_TIMELINE_MAX_EVENTS) -> pd.DataFrame:
    """One shopper's events, oldest first (the last ``limit`` of them): the canonical event columns and
    each event's ``price_band`` (stored at load, :mod:`core.store.derived`).

    An unknown shopper gives an empty frame. Errors: ``DatasetNotFoundError``.
    """
    did = store.get_dataset(engine, dataset)["dataset_id"]
    cols = ["event_time", "event_type", "item_id", "category", "brand", "price", "quantity", "session_id",
            "price_band"]
    inner = (sa.select(*[_e[c] for c in cols]).where(_e.dataset_id == did, _e.user_id == str(user_id))
             .order_by(_e.event_time.desc(), _e.event_type).limit(limit).subquery())
    with engine.connect() as conn:
        frame = sql.frame(conn.execute(sa.select(*[inner.c[c] for c in cols]).order_by(inner.c.event_time)))
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    frame["event_time"] = pd.to_datetime(frame["event_time"])
    frame["price"] = pd.to_numeric(frame["price"]).astype(float)
    frame["brand"] = store.show_brands(engine, did, frame["brand"])
    return frame


def session_summary(events: pd.DataFrame) -> pd.DataFrame:
    """Per session of one shopper's events: ``session_id``, ``start``, ``end``, ``events``, ``views``,
    ``carts``, ``purchases``, ``revenue``, ``main_category``; oldest first."""
    if events.empty:
        return pd.DataFrame(columns=["session_id", "start", "end", "events", "views", "carts", "purchases", "revenue",
                                     "main_category"])
    ev = events.assign(session_id=events["session_id"].fillna("—"),
                       _purchase=(events["event_type"] == "purchase").astype(int),
                       _amount=np.where(events["event_type"] == "purchase",
                                        events["price"].fillna(0.0) * pd.to_numeric(events["quantity"]).fillna(1), 0.0))
    out = ev.groupby("session_id", sort=False).agg(
        start=("event_time", "min"), end=("event_time", "max"), events=("event_type", "size"),
        views=("event_type", lambda s: int((s == "view").sum())), carts=("event_type", lambda s: int((s == "cart").sum())),
        purchases=("_purchase", "sum"), revenue=("_amount", "sum"),
        main_category=("category", lambda s: s.mode().iloc[0] if s.notna().any() else None),
    ).reset_index()
    return out.sort_values("start", kind="stable").reset_index(drop=True)


def shopper_forecast(engine: Engine, dataset: str, user_id: str) -> dict | None:
    """The latest ready model's forecast row for one shopper (prediction columns, ``model_version`` and the
    model's ``horizon_days``), or None."""
    did = store.get_dataset(engine, dataset)["dataset_id"]
    version = sql.newest_ready_model_version(engine, did)
    if version is None:
        return None
    p = store.predictions
    # no join with the models table for the horizon (read below): on Spark a join is jobs of its own
    query = sa.select(p).where(p.c.dataset_id == did, p.c.model_version == version, p.c.user_id == str(user_id))
    with engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return dict(row, horizon_days=sql.model_horizon_days(engine, did, version)) if row else None


def _shares(values: pd.Series) -> pd.Series:
    counts = values.value_counts()
    return counts / counts.sum() if counts.sum() else counts.astype(float)


def shopper_vs_segment(engine: Engine, dataset: str, events: pd.DataFrame, profile: dict | None) -> dict[str, pd.DataFrame]:
    """The shopper's category-group and price-band shares beside their segment's and everyone's.

    Inputs: the shopper's events (:func:`shopper_events`) and their segment's profile card
    (None when the shopper is in no segment run). Output: ``{"category group": frame,
    "price band": frame}``, each with ``name``, ``shopper``, ``segment``, ``everyone``
    (shares of events, 0..1) and ``segment_affinity`` (segment ÷ everyone), rows in the
    order of the shopper's share. Price bands are the events' stored ``price_band`` (the edges of
    :func:`core.store.derived.band_edge_selects` over the whole dataset, written at load).
    """
    del engine, dataset  # everything needed is in the events and the profile
    out: dict[str, pd.DataFrame] = {}
    groups = events["category"].dropna().astype(str).str.split(".", n=1).str[0]
    mine = _shares(groups)
    mine_bands = _shares(events["price_band"].dropna().astype(str))
    for dim, shopper_shares, key in (("category group", mine, "groups"), ("price band", mine_bands, "bands")):
        rows = (profile or {}).get("group_index", {}).get(key, [])
        seg = {r["name"]: r["share"] for r in rows}
        aff = {r["name"]: r["affinity"] for r in rows}
        everyone = {r["name"]: (r["share"] / r["affinity"]) if r.get("affinity") else None for r in rows}
        names = list(shopper_shares.index) + [n for n in seg if n not in shopper_shares.index]
        if dim == "price band":
            names = [b for b in PRICE_BANDS if b in names]
        frame = pd.DataFrame({
            "name": names,
            "shopper": [float(shopper_shares.get(n, 0.0)) for n in names],
            "segment": [seg.get(n) for n in names],
            "everyone": [everyone.get(n) for n in names],
            "segment_affinity": [aff.get(n) for n in names],
        })
        out[dim] = frame
    return out
