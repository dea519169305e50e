"""Scale benchmark: the analyst's whole journey on generated REES46-layout data, by size.

For each size (millions of events; default 1, 5 and 20 on the default DuckDB store, 5 on
PostgreSQL when a URL is given) the script streams a REES46-layout CSV of simulated shoppers
(``core.simulate.iter_chunks`` into ``core.simulate.write_csv``, never the whole file in memory),
then runs the journey a user would, each stage in a fresh child process:

1. ingest: ``core.ingest.load.ingest_file`` of the CSV file into a fresh store;
2. overview: every query the Overview page makes (``core.analysis.queries``), with each choice of its
   widgets (funnel by shopper and by session, closed funnel, top-N by views, purchases, revenue);
3. train: ``core.model.forecast.train`` with the default ``ModelConfig`` (above ``max_train_users`` it
   trains on a seeded sample and says so in the card), which then scores every shopper in
   chunks and writes the predictions back; training and scoring are timed apart from its
   progress reports; then the Forecasts page's queries (model cards, every shopper's forecast);
4. segment: ``core.analysis.segments.run_segmentation`` (automatic number of segments), then the Segments
   page's queries (the stored run, the RFM lens);
5. preferences: every query the Preferences page makes (``core.analysis.preferences``), for everyone
   and for one segment;
6. export: the Campaigns page's queries and a top-10 % list by propensity
   (``core.campaigns.targets.build_target_list``) saved as CSV (``core.campaigns.exports.save_export``); then every
   query of the Shopper page for the biggest spender (suggestions, events, segment, forecast,
   comparison with the segment, preferences).

Time is wall-clock seconds of the measured call only (not the child's imports). Memory is the
resident set of the child process (DuckDB's buffers included; PostgreSQL's server is another
process and is not counted): a thread samples it every 20 ms, giving the peak of each step, and
the child's ``ru_maxrss`` gives the peak of the whole stage, imports included. Results are
printed and kept in the "## Scale" section of docs/benchmarks.md; runs of other sizes already
there are kept (merged by store and size), each with the load average of its own machine.

    python bench/scale.py --sizes 1 5 20 --pg-sizes 5          # the full benchmark (PG URL from the env)
    python bench/scale.py --sizes 1 --pg-sizes                  # 1 million events on DuckDB only
    python bench/scale.py --sizes 1 --stages ingest overview    # only some stages
    python bench/scale.py --sizes 1 --pg-sizes --spark-sizes 1  # DuckDB and Spark, 1 million events each
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_section import write_section  # noqa: E402 (bench/ runs as scripts)
from scale_report import (EXPORT_TOP_PERCENT, RESULTS_TAG, SIM_WEEKS, STAGES, _key,  # noqa: E402 (bench/ runs as scripts)
                          previous_runs, section, verdicts)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOC = ROOT / "docs" / "benchmarks.md"
DATASET = "scale"
PG_ENV = "CARTSIGHT_TEST_PG_URL"
#: Shoppers simulated to measure the simulator's events per shopper (then sized to the target).
PROBE_USERS = 2_000
SAMPLE_SECONDS = 0.02
SIM_SEED = 7


# --- memory sampling (child) -------------------------------------------------------------------


class RssSampler(threading.Thread):
    """Samples this process's resident set; :meth:`window` returns the peak since the last call."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._lock = threading.Lock()
        self._peak = self.rss()
        self.start()

    def rss(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self._page

    def run(self) -> None:
        while True:
            now = self.rss()
            with self._lock:
                self._peak = max(self._peak, now)
            time.sleep(SAMPLE_SECONDS)

    def window(self) -> float:
        """Peak resident GB since the previous call (or the start); starts a new window."""
        now = self.rss()
        with self._lock:
            peak, self._peak = max(self._peak, now), now
        return peak / 1e9


def _cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)  # DuckDB's and torch's threads are in this process
    return usage.ru_utime + usage.ru_stime


class Steps:
    """Times each step of a stage with its CPU seconds and sampled peak memory."""

    def __init__(self, stage: str) -> None:
        self.stage, self.rows, self.info = stage, [], {}
        self.sampler = RssSampler()

    def run(self, step: str, fn, *args, page: bool = False, **kwargs):
        self.sampler.window()
        cpu, started = _cpu(), time.perf_counter()
        out = fn(*args, **kwargs)
        self.add(step, time.perf_counter() - started, _cpu() - cpu, self.sampler.window(), page)
        return out

    def add(self, step: str, seconds: float, cpu_seconds: float, peak_gb: float, page: bool = False) -> None:
        self.rows.append({"stage": self.stage, "step": step, "seconds": round(seconds, 3),
                          "cpu_seconds": round(cpu_seconds, 3), "peak_gb": round(peak_gb, 3), "page": page})
        print(f"    {step}: {seconds:.2f} s, peak {peak_gb:.2f} GB", file=sys.stderr, flush=True)


# --- the stages (child) ------------------------------------------------------------------------


def stage_ingest(engine, steps: Steps, csv_path: str) -> None:
    from core.ingest.load import ingest_file

    report = steps.run("ingest_file (CSV → store)", ingest_file, engine, csv_path, DATASET)
    steps.info.update(rows_loaded=report.rows_loaded, rows_quarantined=report.rows_quarantined,
                      reference=bare_reference(csv_path))


#: the reference's work, the load's main operations without its checks: read the CSV into a table
#: and summarise it by shopper, session and day, in one transaction of a fresh DuckDB file
REFERENCE_SQL = (
    "CREATE TABLE e AS SELECT * FROM read_csv(?)",
    "CREATE TABLE s AS SELECT user_id, user_session, CAST(event_time AS DATE) AS day, count(*) AS n, "
    "min(event_time) AS first_event, max(event_time) AS last_event, sum(price) AS amount FROM e GROUP BY ALL",
)


def bare_reference(csv_path: str) -> dict:
    """Seconds and CPU seconds of :data:`REFERENCE_SQL` on the same file, within the store's memory budget
    (not in the journey): how the engine's own cost per event grows with the size, for the linearity."""
    import duckdb

    from core import config

    db = Path(csv_path).with_name("reference.duckdb")
    con = duckdb.connect(str(db), config={"memory_limit": config.DUCKDB_MEMORY_LIMIT})
    try:
        cpu, started = _cpu(), time.perf_counter()
        con.execute("BEGIN")
        for sql in REFERENCE_SQL:
            con.execute(sql, [csv_path] if "?" in sql else [])
        con.execute("COMMIT")
        out = {"seconds": round(time.perf_counter() - started, 3), "cpu_seconds": round(_cpu() - cpu, 3)}
    finally:
        con.close()
        for leftover in db.parent.glob(db.name + "*"):
            leftover.unlink()
    print(f"    bare DuckDB reference: {out['seconds']:.2f} s", file=sys.stderr, flush=True)
    return out


def stage_overview(engine, steps: Steps, _csv: str) -> None:
    from core import config, store
    from core.analysis import queries
    from core.analysis import product_queries

    ds = store.get_dataset(engine, DATASET)
    did = ds["dataset_id"]
    k = steps.run("kpis", queries.kpis, engine, did, None, None, page=True)
    steps.run("column_coverage", queries.column_coverage, engine, did, None, None, page=True)
    steps.run("event_type_counts", queries.event_type_counts, engine, did, None, None, page=True)
    for by, strict in (("shopper", False), ("session", False), ("shopper", True)):
        steps.run(f"funnel by={by}{' closed' if strict else ''}", queries.funnel, engine, did, by=by, strict=strict,
                  page=True)
    hourly = k["last_event"] - k["first_event"] <= dt.timedelta(days=config.HOURLY_ACTIVITY_MAX_DAYS)
    activity = queries.hourly_activity if hourly else queries.daily_activity
    steps.run(activity.__name__, activity, engine, did, None, None, page=True)
    for by in product_queries.TOP_MEASURES:
        steps.run(f"top_categories by={by}", product_queries.top_categories, engine, did, by=by, n=config.TOP_N, page=True)
        steps.run(f"top_brands by={by}", product_queries.top_brands, engine, did, by=by, n=config.TOP_N, page=True)
    steps.run("price_distribution", product_queries.price_distribution, engine, did, page=True)
    steps.info.update(shoppers=k["shoppers"], events=k["events"], sessions=k["sessions"])


def stage_train(engine, steps: Steps, _csv: str, torch_threads: int | None = None) -> None:
    from core import store
    from core.model import forecast
    from core.model.config import PipelineSettings

    settings = PipelineSettings() if torch_threads is None else PipelineSettings(torch_threads=torch_threads)
    marks: dict[str, tuple[float, float, float]] = {}

    def progress(p) -> None:
        if p.stage == "scoring" and "scoring" not in marks:  # training ends where scoring starts
            marks["scoring"] = (time.perf_counter(), _cpu(), steps.sampler.window())

    steps.sampler.window()
    cpu0, t0 = _cpu(), time.perf_counter()
    card = forecast.train(engine, DATASET, progress=progress, settings=settings)
    t_end, cpu_end, peak_end = time.perf_counter(), _cpu(), steps.sampler.window()
    t_score, cpu_score, peak_train = marks.get("scoring", (t_end, cpu_end, peak_end))
    steps.add("train (sequences, fit, calibrate, evaluate vs baselines)", t_score - t0, cpu_score - cpu0, peak_train)
    steps.add("score every shopper (chunks, reasons, written back) + publish", t_end - t_score, cpu_end - cpu_score,
              peak_end)
    p = store.predictions.c
    import sqlalchemy as sa

    with engine.connect() as conn:
        written = conn.execute(sa.select(sa.func.count()).where(p.dataset_id == card.dataset_id,
                                                                p.model_version == card.model_version)).scalar()
    steps.info.update(
        shoppers_scored=card.n_users, predictions_rows=int(written), shoppers_trained=card.n_users_trained,
        sampled=card.sampled, torch_threads=settings.torch_threads, epochs=len(card.loss_curve),
        sample_note=next((n for n in card.notes if "max_train_users" in n), None),
        heads_used={h: info["used"] for h, info in card.heads.items()})
    # the Forecasts page: its model cards and the table of every shopper's forecast
    steps.run("Forecasts page: list_models", forecast.list_models, engine, DATASET, page=True)
    # its table: the filters' options, the first rows by chance to buy and the count of matches, in the store
    from core import config
    from core.model import forecast_rows

    everyone = forecast_rows.ForecastFilter()
    steps.run("Forecasts page: forecast_options", forecast_rows.forecast_options, engine, card.dataset_id,
              card.model_version, page=True)
    steps.run(f"Forecasts page: matching_forecasts (the first {config.FORECAST_TABLE_ROWS:,})",
              forecast_rows.matching_forecasts, engine, card.dataset_id, card.model_version, everyone,
              config.FORECAST_TABLE_ROWS, page=True)
    steps.run("Forecasts page: count_forecasts", forecast_rows.count_forecasts, engine, card.dataset_id,
              card.model_version, everyone, page=True)
    steps.run("cartsight predictions: load_predictions (every shopper, not a page query)", forecast.load_predictions,
              engine, DATASET, card.model_version)


def stage_segment(engine, steps: Steps, _csv: str) -> None:
    from core.analysis import segments

    run = steps.run("run_segmentation (features, k-means auto k, profiles, stored)", segments.run_segmentation,
                    engine, DATASET)
    steps.info.update(n_segments=run.n_segments, shoppers=len(run.assignments), notes=run.notes)
    # the Segments page: the stored run, and the RFM lens computed from the events
    from core import store
    from core.analysis import rfm

    steps.run("Segments page: latest_run", segments.latest_run, engine, DATASET, page=True)
    did = store.get_dataset(engine, DATASET)["dataset_id"]
    table = steps.run("Segments page: rfm_table", rfm.rfm_table, engine, did, page=True)
    steps.run("Segments page: rfm grid + summary", lambda t: (rfm.grid(t), rfm.summary(t)), table, page=True)


def stage_preferences(engine, steps: Steps, _csv: str) -> None:
    from core import config, store
    from core.analysis import preferences as prefs
    from core.analysis import band_table

    did = store.get_dataset(engine, DATASET)["dataset_id"]
    run = steps.run("latest_run", prefs.latest_run_summary, engine, did, page=True)
    run_id = run["run_id"] if run else None
    segs = steps.run("segment_list", prefs.segment_list, engine, did, run_id, page=True) if run else None
    if run is not None:
        steps.run("affinity_matrix category", prefs.affinity_matrix, engine, did, run_id, "category",
                  config.PREFERENCES_TOP_N, page=True)
    groups = [None] + ([int(segs["segment"].iloc[0])] if segs is not None and len(segs) else [])
    for group in groups:
        who = "everyone" if group is None else f"segment {group}"
        frames = {}
        for dim in prefs.DIMENSIONS:
            top = None if dim == "price_band" else config.PREFERENCES_TOP_N
            frames[dim] = steps.run(f"preferences {dim}, {who}", prefs.preferences, engine, did, dim, segment=group,
                                    run_id=run_id, top_n=top, page=True)
        if len(frames["category"]):
            steps.run(f"drilldown (brands in the top category), {who}", prefs.drilldown, engine, did,
                      frames["category"]["value"].iloc[0], segment=group, run_id=run_id,
                      top_n=config.PREFERENCES_TOP_N, page=True)
    steps.run("band_edges", band_table.band_edges, engine, did, page=True)


def stage_export(engine, steps: Steps, _csv: str) -> None:
    from core.campaigns import targets, exports

    filters = targets.CampaignFilters(top_percent=EXPORT_TOP_PERCENT)
    opts = steps.run("filter_options", targets.filter_options, engine, DATASET, page=True)
    n = steps.run(f"count_matches top {EXPORT_TOP_PERCENT} %", targets.count_matches, engine, DATASET, filters,
                  page=True)
    built = steps.run(f"build_target_list top {EXPORT_TOP_PERCENT} % (holdout, expected outcome)",
                      targets.build_target_list, engine, DATASET, filters)
    record = steps.run("save_export csv (file + members recorded)", exports.save_export, engine, built, "csv")
    steps.info.update(model_version=opts["model_version"], matched=n, counts=record["counts"],
                      file_bytes=len(record["data"]))
    shopper_page(engine, steps)


def shopper_page(engine, steps: Steps) -> None:
    """Every query the Shopper page makes for one shopper (the top suggestion by revenue)."""
    from core import config, store
    from core.analysis import segments
    from core.analysis import preferences as prefs

    run = segments.latest_run(engine, DATASET)
    found = None
    for kind in segments.SUGGESTION_KINDS:
        segment = int(run.profiles[0]["segment"]) if kind == "segment members" and run else None
        frame = steps.run(f"Shopper page: suggest_shoppers {kind}", segments.suggest_shoppers, engine, DATASET, kind,
                          config.SHOPPER_SUGGESTIONS, segment=segment, page=True)
        if kind == "biggest spenders":
            found = frame["user_id"].iloc[0]
    events = steps.run("Shopper page: shopper_events", segments.shopper_events, engine, DATASET, found, page=True)
    steps.run("Shopper page: session_summary", segments.session_summary, events, page=True)
    seg = steps.run("Shopper page: segment_of", segments.segment_of, engine, DATASET, found, run.run_id, page=True)
    steps.run("Shopper page: shopper_forecast", segments.shopper_forecast, engine, DATASET, found, page=True)
    profile = next((p for p in run.profiles if seg and p["segment"] == seg["segment"]), None)
    steps.run("Shopper page: shopper_vs_segment", segments.shopper_vs_segment, engine, DATASET, events, profile,
              page=True)
    did = store.get_dataset(engine, DATASET)["dataset_id"]
    for dim in ("category", "brand"):
        steps.run(f"Shopper page: preferences {dim}, the shopper", prefs.preferences, engine, did, dim,
                  user_id=found, top_n=config.TOP_N, page=True)


STAGE_FUNCTIONS = {"ingest": stage_ingest, "overview": stage_overview, "train": stage_train,
                   "segment": stage_segment, "preferences": stage_preferences, "export": stage_export}


def child_main(stage: str, url: str, csv_path: str, torch_threads: int | None) -> None:
    """One stage in this (fresh) process; prints its rows as JSON on the last stdout line."""
    from core import store

    engine = store.make_engine(url)  # opened once per app session, not per query: not timed
    steps = Steps(stage)
    kwargs = {"torch_threads": torch_threads} if stage == "train" else {}
    STAGE_FUNCTIONS[stage](engine, steps, csv_path, **kwargs)
    engine.dispose()
    print(json.dumps({"rows": steps.rows, "info": steps.info}, default=str))


# --- the parent --------------------------------------------------------------------------------


def run_stage(stage: str, url: str, csv_path: Path, home: Path, torch_threads: int | None) -> dict:
    """Run one stage in a child process; adds ``max_rss_gb`` (the child's ``ru_maxrss``, imports included)."""
    cmd = [sys.executable, __file__, "--child", stage, url, str(csv_path)]
    if torch_threads is not None:
        cmd += ["--torch-threads", str(torch_threads)]
    env = {**os.environ, "CARTSIGHT_HOME": str(home), "HF_HUB_OFFLINE": "1", "CARTSIGHT_DB_URL": url}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=ROOT, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"stage {stage} failed (exit {code}); its error is above")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["max_rss_gb"] = round(usage.ru_maxrss * 1024 / 1e9, 3)  # KiB on Linux; GB = 10^9 bytes like the sampler
    return result


def write_events_csv(path: Path, millions: float, seed: int = SIM_SEED) -> dict:
    """Stream about ``millions`` million simulated events to ``path`` (whole shoppers; sized by a probe).

    The simulator's events per shopper are measured on :data:`PROBE_USERS` shoppers first, then
    enough shoppers are simulated chunk by chunk and written one chunk at a time.
    """
    from core import simulate

    probe = next(simulate.iter_chunks(PROBE_USERS, weeks=SIM_WEEKS, seed=seed, users_per_chunk=PROBE_USERS))
    n_users = max(1, round(millions * 1e6 / (len(probe) / PROBE_USERS)))
    del probe
    started = time.perf_counter()
    rows = simulate.write_csv(simulate.iter_chunks(n_users, weeks=SIM_WEEKS, seed=seed), path)
    return {"shoppers": n_users, "rows": rows, "csv_mb": round(path.stat().st_size / 1e6, 1),
            "seconds": round(time.perf_counter() - started, 1)}


def pg_schema_url(pg_url: str, schema: str) -> str:
    """The PostgreSQL URL with its search_path on ``schema`` (a fresh schema per run)."""
    if pg_url.startswith("postgresql://"):
        pg_url = "postgresql+psycopg://" + pg_url.removeprefix("postgresql://")
    sep = "&" if "?" in pg_url else "?"
    return f"{pg_url}{sep}options=-csearch_path%3D{schema}"


def spark_database_url(spark_url: str):
    """A fresh Spark database for one run: ``(its store URL, an engine on the server, the statement that drops it)``."""
    import sqlalchemy as sa

    from core.store.engine import spark_url as as_spark

    made = sa.engine.make_url(as_spark(spark_url))
    database = f"cs_scale_{os.getpid()}"
    raw = sa.create_engine(made)
    with raw.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS {database}")
    return made.set(database=database).render_as_string(hide_password=False), raw, \
        f"DROP DATABASE IF EXISTS {database} CASCADE"


def run_journey(store_kind: str, millions: float, csv_path: Path, gen: dict, workdir: Path, args,
                on_stage=None) -> dict:
    """Every stage on one fresh store; returns the run's record (``on_stage(record)`` after each stage)."""
    import sqlalchemy as sa

    home = workdir / f"home-{store_kind}"
    home.mkdir()
    schema, raw, drop = None, None, None
    if store_kind == "duckdb":
        url = f"duckdb:///{workdir / 'scale.duckdb'}"
    elif store_kind == "spark":
        url, raw, drop = spark_database_url(args.spark_url)
    else:
        schema = f"cs_scale_{os.getpid()}"
        raw = sa.create_engine(args.pg_url)
        with raw.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))  # our own generated name, not user input
        url = pg_schema_url(args.pg_url, schema)
        drop = f'DROP SCHEMA "{schema}" CASCADE'
    load_before = os.getloadavg()
    stages: dict[str, dict] = {}

    def record() -> dict:
        return {"store": store_kind, "millions": millions, "events": gen["rows"], "shoppers": gen["shoppers"],
                "csv_mb": gen["csv_mb"], "generate_seconds": gen["seconds"], "stages": dict(stages),
                "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "load": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
                "cpus": os.cpu_count(), "torch_threads": args.torch_threads}

    try:
        for stage in args.stages:
            print(f"  {time.strftime('%H:%M:%S')} {store_kind} {millions:g}M: {stage}", flush=True)
            stages[stage] = run_stage(stage, url, csv_path, home, args.torch_threads)
            if on_stage is not None:
                on_stage(record())
    finally:
        if raw is not None:
            if args.keep_spark and store_kind == "spark":
                print(f"  kept the Spark store: {url}", flush=True)
            else:
                with raw.connect() as conn:
                    conn.exec_driver_sql(drop)
                    conn.commit()
            raw.dispose()
        for leftover in workdir.glob("scale.duckdb*"):
            leftover.unlink()
    return record()


# --- report ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="*", default=[1, 5, 20], help="millions of events on DuckDB")
    parser.add_argument("--pg-sizes", type=float, nargs="*", default=[5], help="millions of events on PostgreSQL")
    parser.add_argument("--pg-url", default=os.environ.get(PG_ENV),
                        help=f"PostgreSQL server (default ${PG_ENV}); a fresh schema is made and dropped per run")
    parser.add_argument("--spark-sizes", type=float, nargs="*", default=[],
                        help="millions of events on Spark (a Spark Thrift Server at --spark-url; with "
                             "CARTSIGHT_SPARK_CONNECT set, scoring and segments run on its executors)")
    parser.add_argument("--spark-url", default=os.environ.get("CARTSIGHT_TEST_SPARK_URL"),
                        help="the Spark Thrift Server (hive://host:10001/default?auth=NOSASL; .ci/start-spark.sh)")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES),
                        help="stages to run, in journey order (each needs the ones before it)")
    parser.add_argument("--torch-threads", type=int, help="override PipelineSettings.torch_threads (default: the settings')")
    parser.add_argument("--workdir", type=Path, help="folder for the temporary CSV and store (default: the system's)")
    parser.add_argument("--keep-spark", action="store_true",
                        help="leave each Spark run's database on the server (its URL is printed), to query it after")
    parser.add_argument("--no-doc", action="store_true", help="print only, do not write docs/benchmarks.md")
    parser.add_argument("--fresh", action="store_true", help="drop the runs recorded earlier in the section")
    parser.add_argument("--child", nargs=3, metavar=("STAGE", "URL", "CSV"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(*args.child, args.torch_threads)
        return
    args.stages = [s for s in STAGES if s in args.stages]
    if args.pg_sizes and not args.pg_url:
        print(f"no PostgreSQL URL (--pg-url or ${PG_ENV}): skipping the PostgreSQL sizes {args.pg_sizes}")
        args.pg_sizes = []
    if args.spark_sizes and not args.spark_url:
        print(f"no Spark URL (--spark-url): skipping the Spark sizes {args.spark_sizes}")
        args.spark_sizes = []
    runs = [] if args.fresh else previous_runs(DOC)
    for millions in sorted(set(args.sizes) | set(args.pg_sizes) | set(args.spark_sizes)):
        with tempfile.TemporaryDirectory(prefix="cartsight-scale-", dir=args.workdir) as tmp:
            workdir = Path(tmp)
            csv_path = workdir / "events.csv"
            print(f"{time.strftime('%H:%M:%S')} writing {millions:g} million events ...", flush=True)
            gen = write_events_csv(csv_path, millions)
            print(f"  {gen['rows']:,} events, {gen['shoppers']:,} shoppers, {gen['csv_mb']:,.0f} MB in "
                  f"{gen['seconds']:.0f} s", flush=True)
            kinds = [k for k, sizes in (("duckdb", args.sizes), ("postgresql", args.pg_sizes),
                                        ("spark", args.spark_sizes)) if millions in sizes]
            for kind in kinds:
                def keep(run: dict) -> None:
                    nonlocal runs
                    runs = [r for r in runs if _key(r) != _key(run)] + [run]
                    if not args.no_doc:
                        write_section(DOC, section(runs))  # after every stage: an interrupted run keeps what it measured

                run = run_journey(kind, millions, csv_path, gen, workdir, args, on_stage=keep)
                print("\n".join(verdicts([run])), flush=True)
    print()
    print(section(runs).split(f"<!-- {RESULTS_TAG}")[0])


if __name__ == "__main__":
    main()
