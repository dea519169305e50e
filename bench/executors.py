"""Benchmark of scoring on Spark's executors against scoring in the app, on the same data and model version.

Simulated REES46-layout shoppers (``core.simulate``) are loaded into a DuckDB store and a version is trained
there (or an existing store is reused with ``--duckdb``); then every shopper is scored twice with that version
and the same reasons: in the app (``core.model.forecast.score``, the reference, measured in the same run) and
on the executors of the Spark server behind ``--connect`` (``core.model.executor_scoring.score_on_spark``,
its events first copied to a Spark table, not timed: a team's events are already there). Prints the
throughputs, their ratio and the largest difference between the two forecasts, and writes the
"## Scoring on Spark's executors" section of docs/benchmarks.md.

    .ci/start-spark.sh                     # prints the SQLAlchemy URL; Spark Connect on port 15002
    python bench/executors.py --users 20000 --connect sc://127.0.0.1:15002
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import store  # noqa: E402
from core.model import executor_scoring, forecast, sequences  # noqa: E402
from docs_section import write_section  # noqa: E402 - bench/, first on sys.path when run as a script

SECTION = "## Scoring on Spark's executors"


def _prepare(path: Path, users: int, seed: int) -> tuple:
    """The store at ``path`` with a trained version of dataset "bench" (simulated and trained when new)."""
    import model as model_bench  # bench/model.py: its loader of simulated events

    fresh = not path.exists()
    engine = store.make_engine(f"duckdb:///{path}")
    if fresh:
        model_bench.load_simulation(engine, "bench", users, 10, seed)
        forecast.train(engine, "bench")
    return engine


def _copy_events(session, engine, package, table: str) -> int:
    """The dataset's events, chunk by chunk, into the Spark table ``table``; returns how many."""
    users = sequences.list_users(engine, package.dataset_id, before=package.end_cutoff)
    n = 0
    for i, chunk in enumerate(sequences.user_chunks(users, 5_000, exhaustive=True)):
        events = sequences.load_events(engine, package.dataset_id, chunk, None, package.end_cutoff)
        events = events.assign(dataset_id=package.dataset_id)
        session.createDataFrame(events).write.mode("overwrite" if i == 0 else "append").saveAsTable(table)
        n += len(events)
    return n


def run(args) -> dict:
    from pyspark.sql import SparkSession

    engine = _prepare(args.duckdb, args.users, args.seed)
    package = executor_scoring.package_version(engine, "bench")
    session = SparkSession.builder.remote(args.connect).getOrCreate()
    n_events = _copy_events(session, engine, package, args.table)
    t, c = time.perf_counter(), time.process_time()
    n_users = forecast.score(engine, "bench")
    app_s, app_cpu = time.perf_counter() - t, time.process_time() - c
    app = forecast.load_predictions(engine, "bench", package.version).set_index("user_id")
    t, c = time.perf_counter(), time.process_time()
    out = executor_scoring.score_on_spark(session, args.table, package, n_events)
    out.write.mode("overwrite").saveAsTable(args.table + "_predictions")
    spark_s, spark_cpu = time.perf_counter() - t, time.process_time() - c
    got = session.table(args.table + "_predictions").toPandas().set_index("user_id").loc[app.index]
    diff = float(np.nanmax(np.abs(got["purchase_propensity"].to_numpy(float)
                                  - app["purchase_propensity"].to_numpy(float))))
    same_words = bool((got["reasons"].fillna("") == app["reasons"].fillna("")).all())
    return {"n_users": n_users, "n_events": n_events, "app_s": app_s, "app_cpu": app_cpu, "spark_s": spark_s,
            "spark_app_cpu": spark_cpu, "diff": diff, "same_reasons": same_words, "load": os.getloadavg()[0],
            "cores": os.cpu_count()}


def section(r: dict, args) -> str:
    return "\n".join([
        SECTION, "",
        f"`python bench/executors.py --users {args.users} --seed {args.seed}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"{r['n_users']:,} simulated shoppers, {r['n_events']:,} events, one trained version (default `ModelConfig`), "
        f"every shopper scored with reasons. Spark: a local Thrift Server with Spark Connect (`.ci/start-spark.sh`, "
        f"`local[2]`) on the same {r['cores']} cores; load average {r['load']:.1f} after the run.", "",
        "| where | seconds | shoppers/s | CPU seconds of the app's process |",
        "|---|---:|---:|---:|",
        f"| in the app (`forecast.score`, the reference) | {r['app_s']:.1f} | {r['n_users'] / r['app_s']:,.0f} | {r['app_cpu']:.1f} |",
        f"| on Spark's executors (`score_on_spark`, predictions written as a Spark table) | {r['spark_s']:.1f} | "
        f"{r['n_users'] / r['spark_s']:,.0f} | {r['spark_app_cpu']:.1f} |", "",
        f"Ratio executors / app: {r['spark_s'] / r['app_s']:.2f}x the time. Largest difference in purchase "
        f"propensity between the two: {r['diff']:.1e}; reasons {'identical' if r['same_reasons'] else 'DIFFERENT'} "
        "for every shopper. The executors' time includes starting their Python workers and loading the model "
        "once per worker; the app's process does nothing but wait (its CPU seconds above).", ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--connect", default=os.environ.get("CARTSIGHT_SPARK_CONNECT", "sc://127.0.0.1:15002"))
    parser.add_argument("--table", default="cartsight_bench_events")
    parser.add_argument("--duckdb", type=Path, default=None, help="reuse this store (dataset 'bench', trained)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cartsight-executors-") as tmp:
        os.environ.setdefault("CARTSIGHT_HOME", str(Path(tmp) / "home"))
        args.duckdb = args.duckdb or Path(tmp) / "bench.duckdb"
        result = run(args)
    text = section(result, args)
    print(text, flush=True)
    write_section(args.out, text)


if __name__ == "__main__":
    main()
