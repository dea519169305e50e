"""Forecast quality against the simulator's oracle, on varied simulated shops and on the real files.

For every difficulty variant of ``core.simulate.SimConfig`` (``VARIANTS``) and seed, it
simulates shoppers, loads them into a fresh DuckDB store, trains with
``core.model.forecast.train`` as the product does (default ``ModelConfig`` and
``PipelineSettings``, 7-day horizon) and measures on the held-out last window, for the same
shoppers and labels as the card:

- propensity ROC-AUC of the model (stacked and calibrated, as scored), the transformer alone,
  every baseline (gradient boosting on RFM, the product's own; and, measured here only,
  recency, activity in the last 28 days and past purchases), and the **oracle**: the true
  chance of a purchase in the window given each shopper's true state at the cutoff, computed
  exactly from the simulator's rates (``bench/oracle.py`` says how); each with its share of the
  achievable lift, (AUC - 0.5) / (oracle - 0.5);
- next-category accuracy@1 of the model, own_most_frequent, markov_chain, most_popular and an
  oracle that knows each shopper's true taste mix (``bench/oracle.py``).

Seeds and variants are split into those the model was tuned on (``TUNED``) and those left
untouched, reported apart. The real files named with ``--files`` (path:horizon_days) are
ingested and measured against the baselines (no oracle). The table is written to the
"## Forecast quality" section of ``docs/benchmarks.md`` (other sections are kept).

    python bench/quality.py                                   # every variant, seeds 1-3, 3,000 shoppers, and 20,000
    python bench/quality.py --variants default --seeds 1 --large 0 --files --print-only
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import oracle  # noqa: E402  bench/oracle.py
from docs_section import write_section  # noqa: E402  bench/docs_section.py
from core import simulate, store  # noqa: E402
from core.model import forecast  # noqa: E402
from core.model import evaluation as ev  # noqa: E402
from core.simulate import SimConfig, files  # noqa: E402
from core.store import derived  # noqa: E402

SECTION = "## Forecast quality"
DATA = ROOT.parent / "shared" / "data"
DEFAULT_FILES = [f"{DATA / 'online_retail' / 'OnlineRetail-head.csv'}:1", f"{DATA / 'taobao' / 'UserBehavior-first43users.csv'}:1",
                 f"{DATA / 'rees46' / '2019-Oct-head.csv'}:1"]
#: Difficulty variants: SimConfig fields changed from the defaults.
VARIANTS: dict[str, dict] = {
    "default": {},
    "fewer purchases": {"mode_enter": 0.02, "cart_rate": 0.015, "mode_cart_rate": 0.08, "mode_buy_after_cart": 0.45},
    "weaker tastes": {"taste_concentration": 4.0, "core_category_share": 0.6, "session_focus": 0.6,
                      "session_return": 0.3},
    "noisier sessions": {"session_focus": 0.5, "review_share": 0.05, "mode_session_factor": 1.6,
                         "mode_views_per_session": 3.0, "activity_sigma": 1.1},
}
#: (variant, seed) pairs the model's changes were chosen on; every other pair is untouched by tuning.
TUNED = {("default", 1), ("fewer purchases", 1), ("weaker tastes", 1)}


def load_simulation(engine, name: str, sim: simulate.Simulation) -> int:
    """The simulation's events inserted natively into a DuckDB store as dataset ``name``; returns the count."""
    import datetime as dt

    frame = files.to_canonical(sim.events)
    with engine.begin() as conn:
        did = store.next_dataset_id(conn)
        conn.execute(store.datasets.insert().values(
            dataset_id=did, name=name, layout="rees46", source="bench", created_at=dt.datetime.now(),
            rows_read=len(frame), rows_loaded=len(frame), rows_quarantined=0, mapping_json="{}", report_json="{}",
            n_users=frame["user_id"].nunique(), first_event=frame["event_time"].min().to_pydatetime(),
            last_event=frame["event_time"].max().to_pydatetime()))
        frame = frame.assign(dataset_id=did)
        raw = store.driver_connection(conn)
        raw.register("bench_events", frame)
        cols = ", ".join(frame.columns)
        raw.execute(f"INSERT INTO cs_events ({cols}) SELECT {cols} FROM bench_events")
        raw.unregister("bench_events")
        derived.derive_dataset(conn, did)  # price bands and session days, as a load writes them
    return len(frame)


class Capture:
    """Wraps ``forecast._evaluate`` for one ``train`` call, keeping what the held-out measurement saw."""

    def __enter__(self):
        self.original, self.seen = forecast._evaluate, {}

        def wrapper(test, pred, calibrator, rfm, rankers, history, plan, *args, **kwargs):
            self.seen.update(test=test, pred=pred, calibrator=calibrator, rfm=rfm, history=history, plan=plan)
            return self.original(test, pred, calibrator, rfm, rankers, history, plan, *args, **kwargs)

        forecast._evaluate = wrapper
        return self

    def __exit__(self, *exc):
        forecast._evaluate = self.original


def _simple_scores(history: pd.DataFrame, users: list[str], cutoff) -> dict[str, np.ndarray]:
    """Recency, activity and purchase-count scores (higher: likelier to buy), from the events before ``cutoff``."""
    h = history[history["event_time"] < cutoff]
    by = h.groupby("user_id")
    last = by["event_time"].max().reindex(users)
    recent = h[h["event_time"] >= cutoff - pd.Timedelta(days=28)].groupby("user_id").size().reindex(users)
    bought = h[h["event_type"] == "purchase"].groupby("user_id").size().reindex(users)
    days = (pd.Timestamp(cutoff) - last).dt.total_seconds().to_numpy() / 86_400
    return {"recency (days since last event)": -np.nan_to_num(days, nan=1e6),
            "events in the last 28 days": recent.fillna(0).to_numpy(),
            "past purchases": bought.fillna(0).to_numpy()}


def propensity_rows(seen: dict, sim: simulate.Simulation | None, events: pd.DataFrame | None) -> dict[str, float]:
    """ROC-AUC of every propensity forecast on the held-out window (``oracle`` when ``sim`` is given)."""
    test, plan, history = seen["test"], seen["plan"], seen["history"]
    users, cutoff = list(test.batch.user_ids), pd.Timestamp(plan.test_cutoff)
    y = test.targets["purchased"].to_numpy()
    p_rfm = seen["rfm"]["propensity"].predict_proba(history, plan.test_cutoff, users)
    scores = {"model": seen["calibrator"](seen["pred"].propensity, p_rfm),
              "transformer alone": np.asarray(seen["pred"].propensity),
              "gradient_boosting_rfm": p_rfm, **_simple_scores(history, users, cutoff)}
    if sim is not None:
        scores["oracle"] = oracle.purchase_probability(sim, events, users, cutoff, plan.horizon_days)
    out = {"n": len(y), "buyers": int(y.sum())}
    for name, p in scores.items():
        out[name] = ev.evaluate_propensity(y, p)["roc_auc"]
    return out


def category_rows(card, seen: dict, sim: simulate.Simulation | None, events) -> dict[str, float]:
    """Accuracy@1 of every next-category forecast on the held-out window (``oracle`` when ``sim`` is given)."""
    metrics = card.heads["next_category"]["metrics"]
    out = {name: m.get("accuracy@1") for name, m in metrics.items()}
    if sim is not None:
        test, plan = seen["test"], seen["plan"]
        true = test.targets["next_category"].tolist()
        ranked = oracle.category_ranking(sim, events, list(test.batch.user_ids), plan.test_cutoff)
        out["oracle"] = ev.accuracy_at_k(true, ranked, 1)
    out["used"] = card.heads["next_category"]["used"]
    return out


def _train(engine, name: str, horizon_days: int):
    """``forecast.train`` as the product runs it, with the held-out window captured; returns (card, seen, CPU s)."""
    import torch

    torch.set_num_threads(2)
    cpu0 = time.process_time()
    with Capture() as cap:
        card = forecast.train(engine, name, horizon_days=horizon_days, seed=0)
    return card, cap.seen, time.process_time() - cpu0


def run_simulated(variant: str, seed: int, n_users: int, weeks: int, workdir: Path) -> dict:
    """One variant and seed, trained and measured; a dict of the run's numbers."""
    sim = simulate.simulate(n_users, weeks=weeks, seed=seed, config=SimConfig(**VARIANTS[variant]))
    slug = variant.replace(" ", "_")
    engine = store.make_engine(f"duckdb:///{workdir / f'sim_{slug}_{seed}_{n_users}.duckdb'}")
    n_events = load_simulation(engine, "sim", sim)
    card, seen, cpu_s = _train(engine, "sim", 7)
    engine.dispose()
    events = oracle.sim_events(sim)
    return {"data": f"simulated, {variant}", "variant": variant, "seed": seed, "n_users": n_users, "n_events": n_events,
            "tuned": (variant, seed) in TUNED and n_users <= 5000, "cpu_s": cpu_s,
            "propensity": propensity_rows(seen, sim, events), "used": card.heads["propensity"]["used"],
            "category": category_rows(card, seen, sim, events),
            "notes": [n for n in card.notes if n.startswith("Next category")]}


def run_file(spec: str, workdir: Path) -> dict:
    """A real file (``path:horizon_days``) ingested, trained and measured against the baselines."""
    from core.ingest.load import ingest_file

    path, _, horizon = spec.rpartition(":")
    engine = store.make_engine(f"duckdb:///{workdir / (Path(path).stem + '.duckdb')}")
    report = ingest_file(engine, path, "real")
    out = {"data": f"{Path(path).name}, {horizon}-day horizon", "variant": "real file", "seed": None,
           "n_users": report.users, "n_events": report.rows_loaded, "tuned": False}
    try:
        card, seen, cpu_s = _train(engine, "real", int(horizon))
    except Exception as exc:  # a file too short for its horizon is reported, not fatal
        return {**out, "error": str(exc).splitlines()[0]}
    finally:
        engine.dispose()
    return {**out, "cpu_s": cpu_s, "propensity": propensity_rows(seen, None, None),
            "used": card.heads["propensity"]["used"], "category": category_rows(card, seen, None, None)}


def _fmt(v, share_of: float | None = None) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "—"
    if share_of is None or share_of <= 0.5:
        return f"{v:.3f}"
    return f"{v:.3f} ({(v - 0.5) / (share_of - 0.5):.0%})"


PROPENSITY = ["oracle", "model", "transformer alone", "gradient_boosting_rfm", "recency (days since last event)",
              "events in the last 28 days", "past purchases"]
CATEGORY = ["oracle", "model", "own_most_frequent", "markov_chain", "most_popular"]


def table(results: list[dict]) -> str:
    """Markdown: one row per run; propensity ROC-AUC (share of the oracle's lift) and next-category accuracy@1."""
    head = ("| data | seed | shoppers | events | tuned on | " + " | ".join(f"ROC-AUC {c}" for c in PROPENSITY)
            + " | propensity used | " + " | ".join(f"acc@1 {c}" for c in CATEGORY)
            + " | model − own most frequent | category used | CPU s (train+score) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['data']} | | {r['n_users']:,} | {r['n_events']:,} | no | {r['error']} |")
            continue
        p, c = r["propensity"], r["category"]
        gap = (c.get("model") - c.get("own_most_frequent")) if c.get("model") is not None \
            and c.get("own_most_frequent") is not None else None
        lines.append(
            f"| {r['data']} | {r['seed'] or ''} | {r['n_users']:,} | {r['n_events']:,} | {'yes' if r['tuned'] else 'no'} | "
            + " | ".join(_fmt(p.get(k), p.get("oracle")) for k in PROPENSITY) + f" | {r['used']} | "
            + " | ".join(_fmt(c.get(k)) for k in CATEGORY) + f" | {'—' if gap is None else f'{gap:+.3f}'} | "
            f"{c['used']} | {r['cpu_s']:.0f} |")
    return "\n".join(lines)


def summary(results: list[dict]) -> str:
    """The bars, run by run: the used propensity's share of the oracle's lift (>= 60 %, goal 70 %), next category
    (the model's) >= own most frequent + 0.01; tuned and untouched runs apart."""
    out = []
    for tuned in (True, False):
        runs = [r for r in results if r.get("tuned") == tuned and "oracle" in r.get("propensity", {})]
        if not runs:
            continue
        shares = [(r["propensity"][r["used"]] - 0.5) / (r["propensity"]["oracle"] - 0.5) for r in runs]
        gaps = [r["category"]["model"] - r["category"]["own_most_frequent"] for r in runs]
        out.append(f"- {'Tuned on' if tuned else 'Untouched by tuning'} ({len(runs)} runs): share of the achievable "
                   f"lift of the propensity the card uses {min(shares):.0%} to {max(shares):.0%} (mean {np.mean(shares):.0%}; bar 60 %, "
                   f"{sum(s >= 0.6 for s in shares)}/{len(runs)} meet it); next-category accuracy@1 minus own most "
                   f"frequent {min(gaps):+.3f} to {max(gaps):+.3f} (bar +0.010, {sum(g >= 0.01 for g in gaps)}/"
                   f"{len(runs)} meet it).")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--large", type=int, default=20000, help="shoppers of the one large default run (0: none)")
    parser.add_argument("--weeks", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--runs", nargs="*", default=None,
                        help="variant:seed pairs to run instead of every variant x seed (e.g. 'weaker tastes:2')")
    parser.add_argument("--files", nargs="*", default=DEFAULT_FILES, help="real files as path:horizon_days")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--print-only", action="store_true", help="print the table, do not write docs/benchmarks.md")
    args = parser.parse_args()
    runs = [(v, s, args.users) for v in args.variants for s in args.seeds]
    if args.runs is not None:
        runs = [(r.rpartition(":")[0], int(r.rpartition(":")[2]), args.users) for r in args.runs]
    if args.large:
        runs.append(("default", 2, args.large))
    results = []
    with tempfile.TemporaryDirectory(prefix="cartsight-bench-quality-") as tmp:
        os.environ["CARTSIGHT_HOME"] = tmp
        for variant, seed, n in runs:
            results.append(run_simulated(variant, seed, n, args.weeks, Path(tmp)))
            print(table(results[-1:]), *results[-1]["notes"], sep="\n", flush=True)
        for spec in args.files:
            results.append(run_file(spec, Path(tmp)))
            print(table(results[-1:]), flush=True)
    text = (f"`python bench/quality.py`: variants {', '.join(args.variants)} (SimConfig changes in `VARIANTS`), seeds "
            f"{', '.join(map(str, args.seeds))}, {args.users:,} shoppers, {args.weeks} weeks"
            + (f", and the default variant at {args.large:,} shoppers (seed 2)" if args.large else "")
            + "; 7-day horizon; default ModelConfig and PipelineSettings; held-out last window. Tuned on: "
            + ", ".join(f"{v} seed {s}" for v, s in sorted(TUNED)) + f" at {args.users:,} shoppers; every other run "
            "is untouched by tuning. Oracle: see bench/oracle.py (propensity: the true chance computed exactly from "
            "the simulator's rates and each shopper's state at the cutoff; next category: the true taste mix and "
            "the last session's topic). Share of the achievable lift in brackets: (AUC − 0.5) / (oracle − 0.5).\n\n"
            + table(results) + "\n\n" + summary(results))
    print(text)
    if not args.print_only:
        write_section(args.out, f"{SECTION}\n\n{text}")


if __name__ == "__main__":
    main()
