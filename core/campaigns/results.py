"""Campaign results: what an exported list really changed, measured against its holdout on later data.

Definitions (the Campaigns page and ``cartsight outcome`` state them):

- **window**: the events after the export's as-of time (the data's end when its list was built,
  ``cs_exports.as_of``) and before as-of + N days; N defaults to the horizon of the export's model
  (else :data:`core.config.DEFAULT_HORIZON_DAYS`). Events at the as-of instant itself were in the
  list's data and do not count.
- **outcomes** come from the dataset's events in the window (later files added to the dataset), or
  from an uploaded orders file (a customer id, a time and an amount per order, read by the same
  sniffing, mapping and checks as an event file: :func:`read_orders`) matched to the export's
  shoppers by user id. A shopper **converted** when they made at least one purchase in the window
  (cancellations are no purchase); **revenue** is the sum of their purchase amounts, cancellations
  subtracting (:func:`core.store.sql.amount`).
- per group (**treated**: exported; **holdout**: kept back): shoppers, converted, conversion,
  revenue per shopper. **Absolute lift** = conversion treated − conversion holdout, with Newcombe's
  hybrid score interval (Newcombe 1998, method 10: the two groups' Wilson score intervals
  combined); **p-value** two-sided, from the pooled two-proportion z-test, or Fisher's exact test
  when an expected cell count is below :data:`core.config.OUTCOME_FISHER_BELOW_EXPECTED`;
  **relative lift** = absolute lift ÷ holdout conversion. **Revenue per shopper difference** with a
  percentile bootstrap interval (seeded, each group resampled with replacement on its own).
  **Incremental buyers / revenue** = lift × treated shoppers (with the interval scaled alike).
- **smallest detectable lift**: the absolute lift these two group sizes detect with
  :data:`core.config.OUTCOME_POWER` power at two-sided α :data:`core.config.OUTCOME_ALPHA`, from the
  holdout's conversion (the normal approximation of the two-proportion test).
- **status**: "window still open (ends …)" until the data reaches the window's last (UTC) day;
  "groups too small" when a group has fewer than :data:`core.config.OUTCOME_MIN_GROUP_SHOPPERS`
  shoppers; else "measured". Figures are given in every case: the status says how far to trust them.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from scipy import stats
from sqlalchemy.engine import Engine

from core import config, store
from core.campaigns.exports import MEMBER_HOLDOUT, MEMBER_TARGET
from core.errors import CartsightError, ParameterError
from core.store import sql

STATUS_OPEN, STATUS_SMALL, STATUS_MEASURED = "window still open", "groups too small", "measured"
P_Z_TEST, P_FISHER = "pooled two-proportion z-test", "Fisher's exact test"
NO_DECILE, NO_SEGMENT = "no forecast", "not in the segmentation"
METHOD = ("Conversion: shoppers with at least one purchase in the window ÷ shoppers in the group. Absolute lift: "
          "its 95 % interval is Newcombe's hybrid score interval (Wilson score intervals of both groups combined, "
          "Newcombe 1998, method 10); the p-value is two-sided, from the pooled two-proportion z-test, or Fisher's "
          "exact test when a group has fewer than 5 expected buyers or non-buyers. Revenue per shopper: the "
          "difference's 95 % interval is a percentile bootstrap ({resamples:,} resamples, seed {seed}). Incremental "
          "buyers and revenue: the lift × the exported shoppers. Smallest detectable lift: 80 % power, two-sided "
          "α 0.05, from the holdout's conversion.")
_e = store.events.c
_m = store.export_members.c


# --- the statistics -------------------------------------------------------------------------------------


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def wilson_interval(successes: int, n: int, confidence: float = config.OUTCOME_CONFIDENCE) -> tuple[float, float]:
    """Wilson's score interval of a proportion ``successes``/``n``; (0, 1) for ``n`` = 0."""
    if n <= 0:
        return 0.0, 1.0
    z, p = _z(confidence), successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(x1: int, n1: int, x2: int, n2: int,
                      confidence: float = config.OUTCOME_CONFIDENCE) -> tuple[float, float, float]:
    """(difference, low, high) of p1 − p2 = x1/n1 − x2/n2 by Newcombe's hybrid score method (1998, method 10).

    ``ParameterError`` naming the value when a group is empty or its count is out of range.
    """
    for name, x, n in (("x1", x1, n1), ("x2", x2, n2)):
        if n <= 0 or not 0 <= x <= n:
            raise ParameterError(f"{name}={x} of n={n}: expected 0 <= successes <= shoppers and shoppers > 0",
                                 parameter=name, cases=[x])
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, confidence)
    l2, u2 = wilson_interval(x2, n2, confidence)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def two_proportion_p_value(x1: int, n1: int, x2: int, n2: int) -> tuple[float, str]:
    """Two-sided p-value of "both groups convert alike" and the test used (:data:`P_Z_TEST` or :data:`P_FISHER`).

    The pooled z-test when every expected cell of the 2×2 table is at least
    :data:`core.config.OUTCOME_FISHER_BELOW_EXPECTED`, else Fisher's exact test.
    """
    pooled = (x1 + x2) / (n1 + n2)
    expected = [n * p for n in (n1, n2) for p in (pooled, 1 - pooled)]
    if min(expected) < config.OUTCOME_FISHER_BELOW_EXPECTED:
        table = [[x1, n1 - x1], [x2, n2 - x2]]
        return float(stats.fisher_exact(table, alternative="two-sided").pvalue), P_FISHER
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (x1 / n1 - x2 / n2) / se
    return float(2 * stats.norm.sf(abs(z))), P_Z_TEST


def min_detectable_lift(n1: int, n2: int, baseline: float, alpha: float = config.OUTCOME_ALPHA,
                        power: float = config.OUTCOME_POWER) -> float | None:
    """The smallest absolute lift over ``baseline`` conversion that groups of ``n1`` (treated) and ``n2`` shoppers
    detect with ``power`` at two-sided ``alpha``; None when no lift up to 100 % would be (or a group is empty).

    Solves d = z(1−α/2)·√(p̄(1−p̄)(1/n1+1/n2)) + z(power)·√(p1(1−p1)/n1 + p2(1−p2)/n2) for d, with
    p2 = ``baseline``, p1 = p2 + d and p̄ their pooled mean, by bisection.
    """
    if n1 <= 0 or n2 <= 0:
        return None
    za, zb = _z(1 - alpha), float(stats.norm.ppf(power))
    p2 = min(max(baseline, 0.0), 1.0)

    def gap(d: float) -> float:
        p1 = p2 + d
        pooled = (n1 * p1 + n2 * p2) / (n1 + n2)
        need = (za * math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
                + zb * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2))
        return d - need

    low, high = 0.0, 1.0 - p2
    if high <= 0 or gap(high) < 0:
        return None
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if gap(mid) < 0 else (low, mid)
    return high


def _bootstrap_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``resamples`` resamples (with replacement) of ``values``, drawing only the non-zero ones.

    A resample of n values holds Binomial(n, k/n) of the k non-zero ones, each drawn uniformly:
    the same distribution as drawing all n, at a cost that grows with the buyers, not the shoppers.
    """
    n = len(values)
    nonzero = values[values != 0]
    if n == 0:
        return np.full(resamples, np.nan)
    if nonzero.size == 0:
        return np.zeros(resamples)
    counts = rng.binomial(n, nonzero.size / n, size=resamples)
    return np.array([nonzero[rng.integers(0, nonzero.size, size=k)].sum() for k in counts]) / n


def bootstrap_difference(treated: np.ndarray, holdout: np.ndarray, resamples: int = config.OUTCOME_BOOTSTRAP_RESAMPLES,
                         seed: int = config.OUTCOME_BOOTSTRAP_SEED,
                         confidence: float = config.OUTCOME_CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(``treated``) − mean(``holdout``), each group resampled on its own."""
    rng = np.random.default_rng(seed)
    diffs = (_bootstrap_means(np.asarray(treated, dtype=float), resamples, rng)
             - _bootstrap_means(np.asarray(holdout, dtype=float), resamples, rng))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return float(low), float(high)


# --- one comparison -------------------------------------------------------------------------------------


def compare_groups(frame: pd.DataFrame, bootstrap: bool = True) -> dict:
    """Treated against holdout in ``frame`` (one row per shopper: ``group_name``, ``converted`` 0/1, ``revenue``).

    Returns a dict: treated, holdout, converted_treated, converted_holdout, conversion_treated,
    conversion_holdout (None for an empty group), their Wilson intervals, lift_abs, lift_ci_low,
    lift_ci_high, relative_lift, p_value, p_value_method (None unless both groups have shoppers),
    revenue_per_treated, revenue_per_holdout, revenue_diff, its bootstrap interval (only with
    ``bootstrap``), incremental_buyers and incremental_revenue with their intervals, min_detectable_lift.
    """
    t, h = frame[frame["group_name"] == MEMBER_TARGET], frame[frame["group_name"] == MEMBER_HOLDOUT]
    n1, n2, x1, x2 = len(t), len(h), int(t["converted"].sum()), int(h["converted"].sum())
    out = {"treated": n1, "holdout": n2, "converted_treated": x1, "converted_holdout": x2,
           "conversion_treated": x1 / n1 if n1 else None, "conversion_holdout": x2 / n2 if n2 else None,
           "conversion_ci_treated": list(wilson_interval(x1, n1)) if n1 else None,
           "conversion_ci_holdout": list(wilson_interval(x2, n2)) if n2 else None,
           "revenue_per_treated": float(t["revenue"].mean()) if n1 else None,
           "revenue_per_holdout": float(h["revenue"].mean()) if n2 else None}
    out.update(dict.fromkeys(("lift_abs", "lift_ci_low", "lift_ci_high", "relative_lift", "p_value", "p_value_method",
                              "revenue_diff", "revenue_ci_low", "revenue_ci_high", "incremental_buyers",
                              "incremental_buyers_ci", "incremental_revenue", "incremental_revenue_ci"), None))
    out["min_detectable_lift"] = min_detectable_lift(n1, n2, out["conversion_holdout"] or 0.0)
    if not (n1 and n2):
        return out
    d, low, high = newcombe_interval(x1, n1, x2, n2)
    p, method = two_proportion_p_value(x1, n1, x2, n2)
    out.update(lift_abs=d, lift_ci_low=low, lift_ci_high=high, p_value=p, p_value_method=method,
               relative_lift=d / out["conversion_holdout"] if x2 else None,
               incremental_buyers=d * n1, incremental_buyers_ci=[low * n1, high * n1],
               revenue_diff=out["revenue_per_treated"] - out["revenue_per_holdout"])
    out["incremental_revenue"] = out["revenue_diff"] * n1
    if bootstrap:
        r_low, r_high = bootstrap_difference(t["revenue"].to_numpy(), h["revenue"].to_numpy())
        out.update(revenue_ci_low=r_low, revenue_ci_high=r_high, incremental_revenue_ci=[r_low * n1, r_high * n1])
    return out


# --- the outcomes ---------------------------------------------------------------------------------------


@dataclass
class Orders:
    """An orders file read for a campaign's outcome: one row per purchase line (``user_id``, ``event_time``,
    ``purchase`` 0/1 (0: a cancellation), ``amount``), with the load's reconciliation and notes."""

    name: str
    frame: pd.DataFrame
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    quarantine_by_reason: dict
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """What the results report about the file (JSON-ready)."""
        return {"file": self.name, "rows_read": self.rows_read, "rows_loaded": self.rows_loaded,
                "rows_quarantined": self.rows_quarantined, "quarantine_by_reason": self.quarantine_by_reason,
                "notes": list(self.notes)}


def _scratch_store() -> Engine:
    """An empty in-memory store of the cartsight schema (no data folder, no housekeeping of the real one)."""
    engine = sa.create_engine("duckdb:///:memory:", connect_args={
        "preload_extensions": [], "config": {"memory_limit": config.DUCKDB_MEMORY_LIMIT}})
    store.ensure_schema(engine)
    return engine


def read_orders(path: str | Path) -> Orders:
    """Read an orders file (a customer id, a time and an amount per row; any layout an event file may have).

    The file goes through the ingest as an event file would (:func:`core.ingest.load.ingest_file`:
    sniffing, mapping, time formats, prices, order statuses, quarantine with reasons), into a
    throw-away in-memory store, so every row is read or quarantined and the counts reconcile.
    Errors: the ingest's ``SchemaError`` / ``ParameterError`` (no customer or time column, nothing
    loadable), with the file named.
    """
    from core.ingest.load import ingest_file

    path = Path(path)
    engine = _scratch_store()
    try:
        report = ingest_file(engine, path, "orders")
        query = (sa.select(_e.user_id, _e.event_time, sql.flag(sql.is_purchase()).label("purchase"),
                           sql.amount().label("amount"))
                 .where(_e.event_type == "purchase"))
        with engine.connect() as conn:
            frame = sql.frame(conn.execute(query))
    finally:
        engine.dispose()
    frame["event_time"] = pd.to_datetime(frame["event_time"])
    frame["amount"] = pd.to_numeric(frame["amount"], errors="coerce")
    frame["purchase"] = pd.to_numeric(frame["purchase"]).astype(int)
    notes = list(report.notes)
    if report.rows_loaded and frame.empty:
        notes.append("the file holds no purchases: its rows are read as other events")
    return Orders(name=path.name, frame=frame, rows_read=report.rows_read, rows_loaded=report.rows_loaded,
                  rows_quarantined=report.rows_quarantined, quarantine_by_reason=dict(report.quarantine_by_reason),
                  notes=notes)


def read_orders_bytes(data: bytes, file_name: str) -> Orders:
    """:func:`read_orders` of an uploaded file's bytes (written to a temporary folder of this process first)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix=store.temp_prefix("orders")) as tmp:
        path = Path(tmp) / (Path(file_name).name or "orders.csv")
        path.write_bytes(data)
        return read_orders(path)


def default_window_days(engine: Engine, dataset: str, export_id: int) -> int:
    """The outcome window's default length for an export: its model's horizon, else
    :data:`core.config.DEFAULT_HORIZON_DAYS`."""
    return _window_days(engine, _export(engine, dataset, export_id), None)


def _export(engine: Engine, dataset: str, export_id: int) -> dict:
    """The export's row, checked to belong to ``dataset``; ``CartsightError`` naming the export otherwise."""
    did = int(store.get_dataset(engine, dataset)["dataset_id"])
    x = store.exports.c
    with engine.connect() as conn:
        row = conn.execute(sa.select(store.exports).where(x.export_id == int(export_id))).mappings().first()
        known = conn.execute(sa.select(x.export_id).where(x.dataset_id == did).order_by(x.export_id)).scalars().all()
    if row is None or int(row["dataset_id"]) != did:
        raise CartsightError(f"No export with id {export_id!r} in dataset {dataset!r}; its exports are "
                             f"{list(known) or 'none yet'}.")
    return dict(row)


def _members(engine: Engine, row: dict) -> pd.DataFrame:
    """The export's shoppers: user_id, group_name, decile (text) and segment (the export's segmentation)."""
    s = store.segments.c
    seg = (sa.select(s.user_id, s.segment_name).where(s.dataset_id == row["dataset_id"],
                                                      s.run_id == row["segment_run_id"]).subquery("seg"))
    query = (sa.select(_m.user_id, _m.group_name, _m.propensity_decile, seg.c.segment_name)
             .select_from(store.export_members.outerjoin(seg, seg.c.user_id == _m.user_id))
             .where(_m.export_id == int(row["export_id"])).order_by(_m.group_name, _m.user_id))
    with engine.connect() as conn:
        frame = sql.frame(conn.execute(query))
    decile = pd.to_numeric(frame["propensity_decile"], errors="coerce")
    frame["decile"] = [NO_DECILE if pd.isna(v) else str(int(v)) for v in decile]
    frame["segment"] = frame["segment_name"].where(frame["segment_name"].notna(), NO_SEGMENT)
    return frame.drop(columns=["propensity_decile", "segment_name"])


def _event_outcomes(engine: Engine, row: dict, start: dt.datetime, end: dt.datetime) -> tuple[pd.DataFrame, int]:
    """Per member of the export: converted (0/1) and revenue from the dataset's events in (start, end); and how
    many of those purchases carry a price."""
    window = sa.and_(_e.dataset_id == row["dataset_id"], _e.user_id == _m.user_id, _e.event_type == "purchase",
                     _e.event_time > start, _e.event_time < end)
    query = (sa.select(_m.user_id, sa.func.max(sql.flag(sql.is_purchase())).label("converted"),
                       sa.func.sum(sql.amount()).label("revenue"), sa.func.count(sql.amount()).label("priced"))
             .select_from(store.export_members.outerjoin(store.events, window))
             .where(_m.export_id == int(row["export_id"])).group_by(_m.user_id))
    with engine.connect() as conn:
        frame = sql.frame(conn.execute(query))
    priced = int(pd.to_numeric(frame["priced"]).sum()) if len(frame) else 0
    return frame.drop(columns="priced"), priced


def _order_outcomes(orders: Orders, start: dt.datetime, end: dt.datetime) -> tuple[pd.DataFrame, int]:
    """Per shopper of the orders file: converted and revenue from its orders in (start, end); and priced orders."""
    f = orders.frame
    f = f[(f["event_time"] > start) & (f["event_time"] < end)]
    grouped = f.groupby("user_id").agg(converted=("purchase", "max"), revenue=("amount", "sum"),
                                       priced=("amount", "count")).reset_index()
    return grouped.drop(columns="priced"), int(grouped["priced"].sum())


def _data_end(engine: Engine, dataset_id: int) -> dt.datetime | None:
    sd = store.session_days.c
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.max(sd.last_event)).where(sd.dataset_id == dataset_id)).scalar()


def _status(window_end: dt.datetime, data_end: dt.datetime | None, treated: int, holdout: int) -> tuple[str, str]:
    """(status, the sentence saying it): the window is covered once the data reaches its last UTC day."""
    last_day = (window_end - dt.timedelta(microseconds=1)).date()
    if data_end is None or data_end.date() < last_day:
        seen = "no data after the list was built" if data_end is None else f"the data reaches {data_end:%Y-%m-%d %H:%M}"
        return STATUS_OPEN, (f"{STATUS_OPEN} (ends {window_end:%Y-%m-%d %H:%M} UTC): {seen}; not enough data yet, "
                             "the figures below are provisional.")
    if min(treated, holdout) < config.OUTCOME_MIN_GROUP_SHOPPERS:
        return STATUS_SMALL, (f"{STATUS_SMALL}: {treated:,} exported and {holdout:,} held out; each group needs at "
                              f"least {config.OUTCOME_MIN_GROUP_SHOPPERS} shoppers to say anything.")
    return STATUS_MEASURED, (f"{STATUS_MEASURED}: the window ended {window_end:%Y-%m-%d %H:%M} UTC and both groups "
                             "are large enough.")


def _window_days(engine: Engine, row: dict, days: int | None) -> int:
    if days is None:
        horizon = sql.model_horizon_days(engine, int(row["dataset_id"]), row["model_version"])
        return int(horizon or config.DEFAULT_HORIZON_DAYS)
    if isinstance(days, bool) or int(days) != days or days < 1:
        raise ParameterError(f"window days {days!r}: expected a whole number of days >= 1", parameter="days",
                             cases=[days])
    return int(days)


def _by(frame: pd.DataFrame, column: str) -> list[dict]:
    """The comparison per value of ``column`` (no bootstrap: the revenue difference is given without an interval)."""
    keys = sorted(frame[column].unique(), key=lambda k: (not str(k).isdigit(), int(k) if str(k).isdigit() else 0,
                                                         str(k)))
    return [{column: key, **compare_groups(frame[frame[column] == key], bootstrap=False)} for key in keys]


def _outcomes(engine: Engine, row: dict, members: pd.DataFrame, start: dt.datetime, end: dt.datetime,
              orders: Orders | None) -> tuple[pd.DataFrame, int, dt.datetime | None, list[str]]:
    """The members with converted and revenue, the priced purchases behind the revenue, the data's end, notes."""
    notes = []
    if orders is None:
        found, priced = _event_outcomes(engine, row, start, end)
        data_end = _data_end(engine, int(row["dataset_id"]))
    else:
        found, priced = _order_outcomes(orders, start, end)
        data_end = orders.frame["event_time"].max() if len(orders.frame) else None
        data_end = None if data_end is None or pd.isna(data_end) else data_end.to_pydatetime()
        outside = sorted(set(found["user_id"]) - set(members["user_id"]))
        if outside:
            notes.append(f"{len(outside):,} shoppers of {orders.name} bought in the window but are in neither group "
                         f"of this export (e.g. {outside[:3]}): left out.")
    frame = members.merge(found, on="user_id", how="left")
    frame["converted"] = pd.to_numeric(frame["converted"]).fillna(0).astype(int)
    frame["revenue"] = pd.to_numeric(frame["revenue"]).fillna(0.0).astype(float)
    return frame, priced, data_end, notes


def member_outcomes(engine: Engine, dataset: str, export_id: int, days: int | None = None,
                    orders: Orders | None = None) -> dict:
    """Each member of export ``export_id`` with their outcome in its window (the definitions of the module docstring).

    Returns a dict: ``frame`` (one row per member: user_id, group_name, decile, segment, converted 0/1,
    revenue), ``row`` (the export's ``cs_exports`` row), ``as_of``, ``window_days``, ``window_end``,
    ``data_end``, ``priced`` (purchases in the window with a price), ``status`` and ``status_text``
    (:data:`STATUS_OPEN` / :data:`STATUS_SMALL` / :data:`STATUS_MEASURED`) and ``notes``. Errors as
    :func:`campaign_results`.
    """
    row = _export(engine, dataset, export_id)
    if row["as_of"] is None:
        raise CartsightError(f"Export {export_id} has no as-of time (its dataset had no events when it was made): "
                             "there is no start for its outcome window.")
    window_days = _window_days(engine, row, days)
    as_of = row["as_of"]
    window_end = as_of + dt.timedelta(days=window_days)
    members = _members(engine, row)
    if not (members["group_name"] == MEMBER_HOLDOUT).any():
        raise CartsightError(f"Export {export_id} has no holdout: there is nobody to measure its campaign against. "
                             "Keep a holdout share when exporting the next list.")
    frame, priced, data_end, notes = _outcomes(engine, row, members, as_of, window_end, orders)
    if row["as_of_basis"] in _AS_OF_ESTIMATES:
        notes.insert(0, _AS_OF_ESTIMATES[row["as_of_basis"]])
    treated = int((frame["group_name"] == MEMBER_TARGET).sum())
    status, status_text = _status(window_end, data_end, treated, len(frame) - treated)
    return {"frame": frame, "row": row, "as_of": as_of, "window_days": window_days, "window_end": window_end,
            "data_end": data_end, "priced": priced, "status": status, "status_text": status_text, "notes": notes}


def campaign_results(engine: Engine, dataset: str, export_id: int, days: int | None = None,
                     orders: Orders | None = None) -> dict:
    """Measure export ``export_id`` of ``dataset`` against its holdout (see the module docstring).

    ``days``: the window's length (default the export's model's horizon); ``orders``: an orders
    file read by :func:`read_orders` (default: the dataset's own later events). Returns a
    JSON-ready dict: export_id, dataset, as_of, as_of_basis, window_days, window_end, data_end,
    source, status, status_text, every key of :func:`compare_groups` for the whole export,
    by_segment and by_decile (lists of the same per segment name / propensity decile), method,
    notes, orders (the file's reconciliation, None without one). Errors:
    ``DatasetNotFoundError``; ``CartsightError`` for an unknown export, one without a holdout, or
    one without an as-of time; ``ParameterError`` for ``days`` that is no whole number >= 1.
    """
    m = member_outcomes(engine, dataset, export_id, days, orders)
    row, frame, notes, as_of, window_days, window_end = (m["row"], m["frame"], m["notes"], m["as_of"],
                                                         m["window_days"], m["window_end"])
    overall = compare_groups(frame)
    status, status_text = m["status"], m["status_text"]
    data_end, priced = m["data_end"], m["priced"]
    out = {"export_id": int(row["export_id"]), "dataset": dataset, "as_of": as_of, "as_of_basis": row["as_of_basis"],
           "window_days": window_days, "window_end": window_end, "data_end": data_end,
           "source": "the dataset's events" if orders is None else f"orders file {orders.name}",
           "status": status, "status_text": status_text, **overall,
           "by_segment": _by(frame, "segment") if row["segment_run_id"] is not None else [],
           "by_decile": _by(frame, "decile"),
           "method": METHOD.format(resamples=config.OUTCOME_BOOTSTRAP_RESAMPLES, seed=config.OUTCOME_BOOTSTRAP_SEED),
           "notes": notes, "orders": orders.summary() if orders is not None else None}
    if priced == 0 and frame["converted"].any():
        _drop_revenue(out)
        notes.append("No purchase in the window has a price: revenue cannot be measured.")
    return out


_AS_OF_ESTIMATES = {
    store.AS_OF_MODEL: "This export was made before cartsight recorded as-of times: its window starts at the end of "
                       "the data its model was trained on.",
    store.AS_OF_DATASET: "This export was made before cartsight recorded as-of times: its window starts at the "
                         "dataset's last event when the store was upgraded.",
}
_REVENUE_KEYS = ("revenue_per_treated", "revenue_per_holdout", "revenue_diff", "revenue_ci_low", "revenue_ci_high",
                 "incremental_revenue", "incremental_revenue_ci")


def _drop_revenue(result: dict) -> None:
    for part in (result, *result["by_segment"], *result["by_decile"]):
        part.update(dict.fromkeys(_REVENUE_KEYS, None))


# --- in words -------------------------------------------------------------------------------------------


def _points(value: float) -> str:
    return f"{value * 100:+.1f}"


def p_value_text(p: float | None) -> str:
    """``p = 0.02`` / ``p < 0.001``; an em dash without a p-value."""
    if p is None:
        return "—"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"


def headline(result: dict) -> str:
    """The result in one sentence: "the list converted at 12.0 % against 9.5 % in the holdout: +2.5 points, 95 % CI
    +0.4 to +4.6, p = 0.02"."""
    if result.get("lift_abs") is None:
        return "No comparison yet: a group has no shoppers."
    return (f"The list converted at {result['conversion_treated'] * 100:.1f} % against "
            f"{result['conversion_holdout'] * 100:.1f} % in the holdout: {_points(result['lift_abs'])} points, "
            f"{config.OUTCOME_CONFIDENCE:.0%} CI {_points(result['lift_ci_low'])} to {_points(result['lift_ci_high'])}, "
            f"{p_value_text(result['p_value'])} ({result['p_value_method']}).").replace("95%", "95 %")


def _money(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def _interval(low: float | None, high: float | None, scale: float = 1.0, fmt: str = "{:+,.2f}") -> str:
    return "" if low is None else f" (95 % CI {fmt.format(low * scale)} to {fmt.format(high * scale)})"


def summary_lines(result: dict) -> list[str]:
    """The result as lines of text for the command line: status, headline, the groups, revenue, the tables' rows."""
    r = result
    lines = [f"export #{r['export_id']} of {r['dataset']}: as of {r['as_of']:%Y-%m-%d %H:%M} UTC, "
             f"{r['window_days']}-day window, outcomes from {r['source']}",
             f"status: {r['status_text']}", headline(r),
             f"exported {r['treated']:,} shoppers, {r['converted_treated']:,} bought; held out {r['holdout']:,}, "
             f"{r['converted_holdout']:,} bought",
             f"revenue per shopper: {_money(r['revenue_per_treated'])} exported, {_money(r['revenue_per_holdout'])} "
             f"held out{_interval(r['revenue_ci_low'], r['revenue_ci_high'])}",
             f"incremental buyers: {_signed(r['incremental_buyers'], '{:+,.1f}')}; incremental revenue: "
             f"{_signed(r['incremental_revenue'], '{:+,.2f}')}",
             "smallest lift these groups detect (80 % power): "
             + ("—" if r["min_detectable_lift"] is None else f"{r['min_detectable_lift'] * 100:.1f} points")]
    for title, key, rows in (("by segment", "segment", r["by_segment"]), ("by propensity decile", "decile",
                                                                          r["by_decile"])):
        if rows:
            lines.append(f"{title}:")
            lines += [f"  {row[key]}: {_rate(row['conversion_treated'])} vs {_rate(row['conversion_holdout'])} "
                      f"({row['treated']:,} / {row['holdout']:,} shoppers), lift "
                      f"{'—' if row['lift_abs'] is None else _points(row['lift_abs'])} points"
                      f"{_interval(row['lift_ci_low'], row['lift_ci_high'], 100, '{:+.1f}')}" for row in rows]
    return [*lines, *(f"note: {n}" for n in r["notes"]), f"method: {r['method']}"]


def _signed(value: float | None, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"
