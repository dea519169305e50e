"""Assigning every shopper to a fitted segmentation where the events are: on a Spark cluster's executors.

A segmentation is fitted in the app (:func:`core.analysis.segments.run_segmentation`); what it
needs to place one more shopper is tiny: the fitted :class:`~core.analysis.segmenter.Segmenter`
(scaling, weights, centres), the feature names, and the few dataset-wide figures the features
are computed against (the data's last event, everyone's category mix, the median propensity).
:class:`AssignmentPackage` holds them; :func:`assign_rows` turns rows of the per-shopper query
(:func:`core.analysis.shopper_features._per_user_query`, one row per shopper, grouped where the
events are) into segment rows with the same code as the app, so a shopper gets the segment the
app would give them. :func:`assign_on_spark` runs the per-shopper query on Spark and
:func:`assign_rows` in ``mapInPandas`` on the executors: at tens of millions of shoppers no
feature row passes through the app.

The model's shopper embedding is not among the features a package can compute (it needs a
pass of the model per shopper): a segmentation to assign on executors is fitted without it.
"""
from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import sqlalchemy as sa

from core import store
from core.analysis import shopper_features as sf
from core.analysis.segmenter import Segmenter

#: The columns of an assignment row, in ``cs_segments``' order.
SEGMENT_COLUMNS = tuple(c.name for c in store.segments.columns)


@dataclasses.dataclass(frozen=True)
class AssignmentPackage:
    """What an executor needs to assign shoppers to a fitted segmentation (picklable, kilobytes)."""

    dataset_id: int
    run_id: int
    segmenter: Segmenter
    names: tuple  # the features the segmenter reads, in its order
    groups: tuple  # the category groups the per-shopper query counts
    tastes: tuple  # the taste categories whose shares are features
    mix: tuple  # everyone's share of each taste category
    end: dt.datetime  # the data's last event (recency is counted to it)
    propensity_median: float | None  # the propensity of a shopper the model did not score; None: no forecasts
    segment_names: dict  # segment number -> name


def package_run(segmenter: Segmenter, features: pd.DataFrame, names: list[str], dataset_id: int, run_id: int,
                segment_names: dict) -> AssignmentPackage:
    """The :class:`AssignmentPackage` of a segmentation fitted on ``features`` (the frame of
    :func:`core.analysis.shopper_features.shopper_features`, whose ``attrs`` hold the dataset-wide figures)."""
    embedded = [n for n in names if n.startswith(sf.EMBEDDING_PREFIX)]
    if embedded:
        raise ValueError(f"The segmentation reads the model's shopper embedding ({embedded[0]}, …), which executors "
                         "cannot compute: fit it with use_embedding=False to assign on executors.")
    attrs = features.attrs
    median = attrs["propensity_median"] if sf.PROPENSITY_FEATURE in names else None
    return AssignmentPackage(dataset_id, run_id, segmenter, tuple(names), tuple(attrs["groups"]),
                             tuple(attrs["tastes"]), tuple(attrs["taste_mix"]), attrs["last_event"],
                             median, {int(k): v for k, v in segment_names.items()})


def features_of_rows(package: AssignmentPackage, raw: pd.DataFrame) -> pd.DataFrame:
    """The segmentation features of the shoppers in ``raw`` (rows of the per-shopper query, with a
    ``purchase_propensity`` column when the segmentation reads forecasts), computed as
    :func:`core.analysis.shopper_features.shopper_features` computes them for the whole dataset."""
    raw = raw.set_index("user_id")
    propensity = raw.pop("purchase_propensity") if "purchase_propensity" in raw.columns else None
    raw = sf._typed(raw)
    out = sf._activity(raw, pd.Timestamp(package.end))
    sf._add_tastes(out, raw, list(package.tastes), list(package.mix))
    sf._add_price(out, raw)
    if package.propensity_median is not None:
        values = pd.to_numeric(propensity, errors="coerce") if propensity is not None else np.nan
        out[sf.PROPENSITY_FEATURE] = pd.Series(values, index=out.index, dtype=float).fillna(package.propensity_median)
    return out


def assign_rows(package: AssignmentPackage, raw: pd.DataFrame) -> pd.DataFrame:
    """``cs_segments`` rows (:data:`SEGMENT_COLUMNS`) of the shoppers in ``raw`` (see :func:`features_of_rows`)."""
    if raw.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SEGMENT_COLUMNS})
    features = features_of_rows(package, raw)
    labels = package.segmenter.predict(features[list(package.names)])
    return pd.DataFrame({"dataset_id": package.dataset_id, "run_id": package.run_id,
                         "user_id": features.index.astype(str), "segment": labels.astype(int),
                         "segment_name": [package.segment_names[int(s)] for s in labels]}).loc[:, list(SEGMENT_COLUMNS)]


def per_shopper_query(package: AssignmentPackage, model_version: str | None) -> sa.Select:
    """The per-shopper query of the package's dataset, with the version's propensity joined when the
    segmentation reads forecasts."""
    query = sf._per_user_query(package.dataset_id, list(package.groups), list(package.tastes)).order_by(None)
    if package.propensity_median is None or model_version is None:
        return query
    rows, p = query.subquery("per_user"), store.predictions
    joined = rows.outerjoin(p, sa.and_(p.c.user_id == rows.c.user_id, p.c.dataset_id == package.dataset_id,
                                       p.c.model_version == model_version))
    return sa.select(rows, p.c.purchase_propensity).select_from(joined)


def _assign_batches(package: AssignmentPackage, batches):
    for raw in batches:
        out = assign_rows(package, raw)
        yield out.astype({"dataset_id": "int32", "run_id": "int32", "segment": "int32"})


def assign_on_spark(session, engine, package: AssignmentPackage, model_version: str | None):
    """A Spark DataFrame of every shopper's ``cs_segments`` row, computed on the executors.

    ``engine``: the SQLAlchemy engine of the Spark store (its dialect writes the per-shopper query
    as Spark SQL); ``session``: a Spark session on the same cluster (Spark Connect). The query
    groups the events on the executors, and :func:`assign_rows` runs there on each batch of its rows.
    """
    from functools import partial

    from core.store.executors import compiled_text, spark_schema

    text = compiled_text(engine, per_shopper_query(package, model_version))
    return session.sql(text).mapInPandas(partial(_assign_batches, package), spark_schema(store.segments))


def assign_into_store(session, engine, package: AssignmentPackage, model_version: str | None) -> dict[int, int]:
    """Assign every shopper on the executors of the Spark store ``engine`` and append the rows to its
    ``cs_segments``; returns the number of shoppers in each segment (counted there)."""
    from core.store.executors import refresh, table_name

    # by shopper through one more shuffle, which Spark's adaptive execution packs into few partitions: written as
    # they came, the rows made one small file per task (78 at 77,443 shoppers), and every page that reads a
    # segment paid 0.3-0.4 s more to open them (measured on a local Spark)
    rows = assign_on_spark(session, engine, package, model_version).repartition("user_id")
    rows.write.insertInto(table_name(engine, store.segments))
    refresh(engine, store.segments)
    seg = store.segments.c
    query = (sa.select(seg.segment, sa.func.count()).where(seg.dataset_id == package.dataset_id,
                                                            seg.run_id == package.run_id).group_by(seg.segment))
    with engine.connect() as conn:
        return {int(s): int(n) for s, n in conn.execute(query)}
