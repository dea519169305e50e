"""Benchmark of the forecast model: training time, scoring throughput and quality against the baselines.

For each size (default 20,000 and 100,000 shoppers, 10 weeks of simulated REES46-layout
events from ``core.simulate``) it loads the events into a fresh DuckDB store, runs
``core.model.forecast.train`` with the default ``ModelConfig`` and ``PipelineSettings`` and records:
training time (sequences, fitting, evaluation: up to the start of scoring), scoring
throughput (every shopper scored at the data's end, reasons included, predictions
written), and the held-out metrics of the model and of every baseline for each head. The
quality table is repeated on a second seed at the first size. Results are printed and
written to the "## Model" section of ``docs/benchmarks.md`` (other sections are kept).

    python bench/model.py                      # 20k and 100k shoppers, seeds 1 and 2
    python bench/model.py --users 20000 --seeds 1
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import simulate, store
from core.simulate import files
from core.model import forecast
from core.model import card
from core.model.config import ModelConfig, PipelineSettings  # noqa: E402
from docs_section import write_section  # noqa: E402 - bench/, first on sys.path when run as a script

SECTION = "## Model"
SAMPLE = ROOT / "sample_data" / "sample_events.csv.gz"


def canonical(events: pd.DataFrame) -> pd.DataFrame:
    """Simulated REES46 rows in the store's canonical columns."""
    return files.to_canonical(events)


def load_simulation(engine, name: str, n_users: int, weeks: int, seed: int) -> int:
    """Simulate in chunks and insert natively into a DuckDB store; returns the number of events."""
    import datetime as dt

    total, first, last = 0, None, None
    with engine.begin() as conn:
        did = store.next_dataset_id(conn)
        conn.execute(store.datasets.insert().values(
            dataset_id=did, name=name, layout="rees46", source="bench", created_at=dt.datetime.now(),
            rows_read=0, rows_loaded=0, rows_quarantined=0, mapping_json="{}", report_json="{}"))
        raw = store.driver_connection(conn)
        for chunk in simulate.iter_chunks(n_users, weeks=weeks, seed=seed):
            frame = canonical(chunk).assign(dataset_id=did)
            cols = ", ".join(frame.columns)
            raw.register("bench_events", frame)
            raw.execute(f"INSERT INTO cs_events ({cols}) SELECT {cols} FROM bench_events")
            raw.unregister("bench_events")
            total += len(frame)
            lo, hi = frame["event_time"].min(), frame["event_time"].max()
            first = lo if first is None else min(first, lo)
            last = hi if last is None else max(last, hi)
        conn.execute(store.datasets.update().where(store.datasets.c.dataset_id == did).values(
            rows_read=total, rows_loaded=total, n_users=n_users, first_event=first.to_pydatetime(),
            last_event=last.to_pydatetime()))
    return total


def load_sample(engine, name: str) -> tuple[int, int]:
    """The sample file (``sample_data/``) loaded as ``name``; returns (shoppers, events)."""
    from core.ingest import load

    report = load.ingest_file(engine, SAMPLE, name)
    return store.get_dataset(engine, name)["n_users"], report.rows_loaded


@contextlib.contextmanager
def timing(module, names: tuple[str, ...], spent: list[float]):
    """Within the block, every call of the functions ``names`` of ``module`` adds its seconds to ``spent[0]``."""
    originals = {name: getattr(module, name) for name in names}

    def timed(fn):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - t
        return wrapper

    for name, fn in originals.items():
        setattr(module, name, timed(fn))
    try:
        yield spent
    finally:
        for name, fn in originals.items():
            setattr(module, name, fn)


def run(n_users: int, weeks: int, seed: int, workdir: Path, sample: bool = False) -> dict:
    """One training run (simulated shoppers, or the sample file when ``sample``); returns timings, the card, the
    same run's gradient-boosting fit time (the reference) and the machine load."""
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["CARTSIGHT_HOME"] = str(workdir / "home")
    engine = store.make_engine(f"duckdb:///{workdir / f'bench_{n_users}_{seed}_{sample}.duckdb'}")
    started = time.perf_counter()
    if sample:
        n_users, n_events = load_sample(engine, "bench")
    else:
        n_events = load_simulation(engine, "bench", n_users, weeks, seed)
    load_s = time.perf_counter() - started
    marks: dict[str, float] = {}
    cpu_marks: dict[str, float] = {}

    def progress(p):
        if p.stage not in marks:
            print(f"  {time.strftime('%H:%M:%S')} {p.stage}", flush=True)
        marks.setdefault(p.stage, time.perf_counter())
        cpu_marks.setdefault(p.stage, time.process_time())

    gbm_s = [0.0]
    load_before = os.getloadavg()[0]
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    # the reference: the gradient-boosting baselines' fit on the stacked training windows, inside the same run
    with timing(forecast, ("_fit_rfm",), gbm_s):
        card = forecast.train(engine, "bench", horizon_days=7, config=ModelConfig(), progress=progress, seed=seed)
    t_end = time.perf_counter()
    cpu_s = time.process_time() - cpu0
    scoring_start = marks.get("scoring", t_end)
    scoring_end = marks.get("saving", t_end)
    # CPU seconds of the process (every thread) while scoring: on a shared machine they say more than the wall
    score_cpu_s = cpu_marks.get("saving", cpu0 + cpu_s) - cpu_marks.get("scoring", cpu0 + cpu_s)
    rescore = rescore_times(engine, card)
    engine.dispose()
    return {
        "n_users": n_users, "seed": seed, "n_events": n_events, "load_s": load_s,
        "train_s": scoring_start - t0, "fit_s": marks.get("evaluating", t_end) - marks.get("training", t0),
        "score_s": scoring_end - scoring_start, "total_s": t_end - t0,
        "shoppers_per_s": card.n_users / max(scoring_end - scoring_start, 1e-9),
        "cpu_s": cpu_s, "score_cpu_s": score_cpu_s, "card": card, "load_avg": (load_before, os.getloadavg()[0]), **rescore,
        "gbm_fit_s": gbm_s[0], "source": "sample file" if sample else "simulated",
    }


def speed_line(r: dict) -> str:
    """One run's speed in a line: train and score seconds, shoppers per second, the ratio to the reference."""
    return (f"{r['source']}, {r['n_users']:,} shoppers, {r['n_events']:,} events, seed {r['seed']}: train and score "
            f"{r['total_s']:.1f} s ({r['n_users'] / r['total_s']:,.0f} shoppers/s; scoring alone "
            f"{r['shoppers_per_s']:,.0f} shoppers/s with reasons); gradient-boosting fit in the same run "
            f"{r['gbm_fit_s']:.1f} s, ratio {r['total_s'] / max(r['gbm_fit_s'], 1e-9):.1f}x; load average "
            f"{r['load_avg'][0]:.1f} before, {r['load_avg'][1]:.1f} after, {os.cpu_count()} cores")


def rescore_times(engine, card) -> dict:
    """``cartsight score`` of the new version: as saved, then as a version saved before its baselines were kept
    (``baselines.json`` set aside, so they are refitted), and whether both wrote what training wrote; then once
    more without reasons (what the reasons cost: the two scorings' difference)."""
    from core.model import registry

    def timed_score(settings: PipelineSettings | None = None) -> tuple[float, pd.DataFrame]:
        t = time.perf_counter()
        forecast.score(engine, "bench", settings=settings)
        seconds = time.perf_counter() - t
        return seconds, forecast.load_predictions(engine, "bench").sort_values("user_id", ignore_index=True)

    trained = forecast.load_predictions(engine, "bench").sort_values("user_id", ignore_index=True)
    saved = registry.version_dir(card.dataset_id, card.model_version) / registry.BASELINES_FILE
    saved_s, from_saved = timed_score()
    aside = saved.rename(saved.with_name(saved.name + ".aside"))
    try:
        refit_s, refitted = timed_score()
    finally:
        aside.rename(saved)
    bare_s, _ = timed_score(PipelineSettings(n_reasons=0))  # last: its forecasts have no reasons
    return {"rescore_saved_s": saved_s, "rescore_refit_s": refit_s, "rescore_bare_s": bare_s,
            "rescore_same": from_saved.equals(trained) and refitted.equals(trained)}


def timing_table(results: list[dict]) -> str:
    lines = ["| data | shoppers | seed | events | trained on | examples | epochs | training (s) | of which fitting (s) | "
             "scoring all shoppers (s) | reasons: re-score with them less without (s) | shoppers/s scored | shoppers/s, "
             "re-score without reasons | "
             "scoring CPU (s) | shoppers per CPU second scored | "
             "CPU time, whole run (s) | load avg before/after | re-score as saved (s) | re-score refitting the "
             "baselines (s) | ratio | re-scores equal training's forecasts | train and score (s) | shoppers/s, train "
             "and score | gradient-boosting fit (s) | ratio to it |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["card"]
        lines.append(
            f"| {r['source']} | {r['n_users']:,} | {r['seed']} | {r['n_events']:,} | {c.n_users_trained:,}{' (sample)' if c.sampled else ''} | "
            f"{c.n_train_examples:,} | {len(c.loss_curve)} | {r['train_s']:.0f} | {r['fit_s']:.0f} | {r['score_s']:.0f} | "
            f"{r['rescore_saved_s'] - r['rescore_bare_s']:.1f} | {r['shoppers_per_s']:,.0f} | "
            f"{r['n_users'] / max(r['rescore_bare_s'], 1e-9):,.0f} | "
            f"{r['score_cpu_s']:.1f} | {r['n_users'] / max(r['score_cpu_s'], 1e-9):,.0f} | "
            f"{r['cpu_s']:.0f} | {r['load_avg'][0]:.1f} / {r['load_avg'][1]:.1f} | "
            f"{r['rescore_saved_s']:.1f} | {r['rescore_refit_s']:.1f} | "
            f"{r['rescore_saved_s'] / r['rescore_refit_s']:.2f} | {'yes' if r['rescore_same'] else 'NO'} | "
            f"{r['total_s']:.1f} | {r['n_users'] / r['total_s']:,.0f} | {r['gbm_fit_s']:.1f} | "
            f"{r['total_s'] / max(r['gbm_fit_s'], 1e-9):.1f}x |")
    return "\n".join(lines)


def quality_table(results: list[dict]) -> str:
    lines = ["| seed | head | metric | model | best baseline | all baselines | used |", "|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["card"]
        for head, (key, higher) in card.HEAD_METRICS.items():
            info = c.heads[head]
            vals = {name: m.get(key) for name, m in info["metrics"].items()}
            base = {n: v for n, v in vals.items() if n != "model" and v is not None}
            best = (max if higher else min)(base, key=base.get) if base else None
            fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
            others = ", ".join(f"{n} {fmt(v)}" for n, v in base.items())
            lines.append(f"| {r['seed']} | {head} | {key} | {fmt(vals.get('model'))} | "
                         f"{best} {fmt(base.get(best)) if best else ''} | {others} | {info['used']} |")
    return "\n".join(lines)


def section(results: list[dict], args) -> str:
    """The "## Model" section for the runs finished so far."""
    cfg, settings = ModelConfig(), PipelineSettings()
    quality = [r for r in results if r["n_users"] == args.users[0] and r["source"] == "simulated"]
    pending = [f"{n:,} shoppers seed {s}" for n, s, sample in _runs(args) if not sample and not any(
        r["n_users"] == n and r["seed"] == s for r in results)]
    return "\n".join([
        SECTION, "",
        f"`python bench/model.py` (simulated shoppers from `core.simulate`, {args.weeks} weeks, horizon 7 days, default "
        f"`ModelConfig`: hidden {cfg.hidden_size}, {cfg.n_layers} layers, max_len {cfg.max_len}, "
        f"{settings.torch_threads} torch threads, {settings.scoring_threads} scoring threads, at most "
        f"{cfg.max_train_users:,} shoppers trained on, "
        f"{cfg.max_train_examples:,} examples per epoch, at most {cfg.epochs} epochs). Machine: {os.cpu_count()} CPU "
        "cores, shared with other processes while measured (the load average is shown; torch slows 5-60x when the "
        "cores are busy, so the wall times are upper bounds); DuckDB store.",
        "", "Training = sequences + fitting + calibration + evaluation of the model and every baseline on the held-out "
        "week (everything before scoring). Scoring = every shopper at the data's end, reasons (5 occlusions each, one skipped "
        "where the recent category hides exactly the last session, "
        "each recomputing only the events that stay after the first hidden one) included, predictions written. CPU time "
        "counts every thread of the process (scoring CPU: from the start of scoring to the end of writing). Re-score = `cartsight score` of the trained version (`core.model.forecast.score`), "
        "every shopper again: as saved (the baselines kept with the version), and as a version saved before "
        "`baselines.json` existed, which refits the baselines it uses (its ratio: saved / refit).", "",
        timing_table(results), "",
        f"Quality on the held-out last week, {args.users[0]:,} shoppers, seeds "
        f"{', '.join(str(r['seed']) for r in quality)} (ROC-AUC, accuracy@1 and NDCG@10: higher is better; "
        "log loss: lower is better):", "",
        quality_table(quality), "",
        *([f"Not measured (not finished in the time available): {', '.join(pending)}.", ""] if pending else []),
        *targets(results, quality),
    ])


def targets(results: list[dict], quality: list[dict]) -> list[str]:
    """The issue's targets, each with what these runs measured (met or missed); quality on the quality runs."""
    if not results:
        return []
    per_m = [r["train_s"] / (r["n_events"] / 1e6) for r in results]
    rates = [r["shoppers_per_s"] for r in results]
    bare = [r["n_users"] / max(r["rescore_bare_s"], 1e-9) for r in results]
    per_cpu = [r["n_users"] / max(r["score_cpu_s"], 1e-9) for r in results]

    def wins(head: str, key: str) -> str:
        out = []
        for r in quality:
            metrics = r["card"].heads[head]["metrics"]
            base = {n: m.get(key) for n, m in metrics.items() if n != "model" and m.get(key) is not None}
            model, best = metrics["model"].get(key), max(base.values()) if base else None
            if model is not None and best is not None:
                out.append(f"{r['n_users']:,}/seed {r['seed']}: {model:.3f} vs {best:.3f} "
                           f"({'met' if model > best else 'missed'})")
        return "; ".join(out)

    small = [r for r in results if r["n_users"] <= 3_000]
    small_s = [r["total_s"] for r in small]
    small_load = ", ".join(f"{r['load_avg'][0]:.1f}" for r in small)
    return [
        "Against the targets:", "",
        *([f"- Train and score 3,000 shoppers (about 200,000 events) in under 60 s: {min(small_s):.0f}-"
           f"{max(small_s):.0f} s at load averages {small_load} on "
           f"{os.cpu_count()} cores ({'met' if max(small_s) < 60 else 'missed'})."] if small else []),
        f"- Scoring at least 4,000 shoppers/s with reasons: {min(rates):,.0f}-{max(rates):,.0f} "
        f"({'met' if min(rates) >= 4000 else 'missed'}); per CPU second of the process while scoring: "
        f"{min(per_cpu):,.0f}-{max(per_cpu):,.0f} shoppers.",
        f"- Training within 3 minutes per million events on 2 cores: {min(per_m):.0f}-{max(per_m):.0f} s per "
        f"million events ({'met' if max(per_m) <= 180 else 'missed'}).",
        f"- Scoring at least 2,000 shoppers/s: {min(rates):,.0f}-{max(rates):,.0f} with reasons, "
        f"{min(bare):,.0f}-{max(bare):,.0f} without ({'met' if min(rates) >= 2000 else 'missed'}).",
        f"- Propensity ROC-AUC above the best baseline: {wins('propensity', 'roc_auc')}.",
        f"- Next-category accuracy@1 above the best baseline: {wins('next_category', 'accuracy@1')}.", "",
    ]


def _runs(args) -> list[tuple[int, int, bool]]:
    first = args.users[0]
    runs = [(first, s, False) for s in args.seeds] + [(n, args.seeds[0], False) for n in args.users[1:]]
    return [r for r in runs for _ in range(args.repeat)] + [(0, args.seeds[0], True)] * (args.repeat * args.sample)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--weeks", type=int, default=10)
    parser.add_argument("--sample", action="store_true", help="also train on the sample file in sample_data/")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each size and seed (the machine is shared)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="cartsight-model-bench-") as tmp:
        for i, (n, seed, sample) in enumerate(_runs(args)):
            print(f"running {'the sample file' if sample else f'{n} shoppers'}, seed {seed}, load average "
                  f"{os.getloadavg()[0]:.1f} ...", flush=True)
            results.append(run(n, args.weeks, seed, Path(tmp) / str(i), sample))
            print(speed_line(results[-1]), flush=True)
            text = section(results, args)
            write_section(args.out, text)  # after every run, so an interrupted bench keeps what it measured
        print(section(results, args), flush=True)


if __name__ == "__main__":
    main()
