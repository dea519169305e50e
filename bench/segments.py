"""Benchmark: segmenting 100k and 1 million shoppers (time and peak memory), and one end-to-end run.

Generating the events of a million simulated shoppers (about 65 million rows) takes longer
than the segmentation itself, so the large cases synthesise the per-shopper feature table
directly: the features of simulated shoppers (``core.simulate``, loaded in a DuckDB store and
aggregated by ``core.analysis.segments.shopper_features``) resampled with replacement to the target
size, with a little Gaussian noise so that no two rows are equal. Timed on those: the
Segmenter's fit with ``n_segments="auto"`` (k = 2..10 chosen by silhouette on a 5,000-shopper
sample, then mini-batch k-means over everyone above 100k), the profiles and names
(``build_profiles``) and the 5,000-point map. Separately, ``run_segmentation`` end to end on a
store of simulated events (SQL features, fit, profiles, bulk insert of the assignments).

Each case runs in its own process so that the peak resident memory (``ru_maxrss``) is its own.
Usage: ``python bench/segments.py [--sizes 100000 1000000] [--e2e-users 20000] [--write]``
(``--write`` replaces the "## Segments" section of docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## Segments"
BASE_USERS, BASE_WEEKS, BASE_SEED = 3000, 8, 11
NOISE = 0.01


def _simulated_store(folder: Path, n_users: int, weeks: int, seed: int):
    from core import store
    from tests.analysis.test_segments import load_simulation

    engine = store.make_engine(f"duckdb:///{folder / 'bench.duckdb'}")
    load_simulation(engine, "bench", n_users, weeks, seed)
    return engine


def _case_fit(n: int) -> dict:
    import numpy as np

    from core.analysis import segments

    with tempfile.TemporaryDirectory() as tmp:
        engine = _simulated_store(Path(tmp), BASE_USERS, BASE_WEEKS, BASE_SEED)
        base, names = segments.shopper_features(engine, 1)
        engine.dispose()
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(base), size=n)
    features = base.iloc[idx].reset_index(drop=True)
    features.index = [f"u{i:08d}" for i in range(n)]
    features.attrs = base.attrs
    jitter = rng.normal(0.0, NOISE, size=(n, len(names))) * base[names].std().to_numpy()
    features[names] = features[names].to_numpy() + jitter
    t0 = time.perf_counter()
    seg = segments.Segmenter("auto", random_state=0, feature_weights=segments.block_weights(names),
                             sqrt_features=segments.share_features(names),
                             unscaled_features=segments.unscaled_features(names)).fit(features[names])
    t_fit = time.perf_counter() - t0
    t1 = time.perf_counter()
    profiles = segments.build_profiles(features, seg.labels_, seg.centers_, names)
    segments._map_points(seg.transform(features[names]), features.index, seg.labels_, 0)
    t_profiles = time.perf_counter() - t1
    return {"case": f"fit, {n:,} shoppers (synthesised features)", "shoppers": n, "features": len(names),
            "k": seg.n_segments_, "model": type(seg.model_).__name__, "seconds": t_fit + t_profiles,
            "detail": f"fit {t_fit:.1f} s (choice of k {len(seg.silhouette_by_k_)} candidates), "
                      f"profiles + map {t_profiles:.1f} s", "names": [p["name"] for p in profiles]}


def _case_e2e(n_users: int) -> dict:
    from core.analysis import segments

    with tempfile.TemporaryDirectory() as tmp:
        engine = _simulated_store(Path(tmp), n_users, BASE_WEEKS, BASE_SEED)
        from core import store
        n_events = store.get_dataset(engine, "bench")["rows_loaded"]
        t0 = time.perf_counter()
        run = segments.run_segmentation(engine, "bench", n_segments="auto")
        seconds = time.perf_counter() - t0
        engine.dispose()
    return {"case": f"run_segmentation end to end, {n_users:,} simulated shoppers ({n_events:,} events, DuckDB)",
            "shoppers": n_users, "features": len(run.feature_names), "k": run.n_segments, "model": "KMeans",
            "seconds": seconds, "detail": "SQL features + fit (auto) + profiles + bulk insert, one transaction",
            "names": [p["name"] for p in run.profiles]}


def _child(kind: str, n: int) -> None:
    result = _case_fit(n) if kind == "fit" else _case_e2e(n)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


def _run(kind: str, n: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(n)], capture_output=True, text=True, env=env,
                         check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def _table(results: list[dict]) -> str:
    lines = ["| case | features | segments (auto) | k-means | time | peak memory |", "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['case']} | {r['features']} | {r['k']} | {r['model']} | {r['seconds']:.1f} s ({r['detail']}) "
                     f"| {r['peak_rss_mb']:,.0f} MB |")
    return "\n".join(lines)


def _write(table: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    body = (f"{SECTION}\n\nMeasured by `python bench/segments.py --write` on this 2-core machine (shared with other "
            f"work; one k-means thread, `core.config.SEGMENT_THREADS`). Large cases resample the features of "
            f"{BASE_USERS:,} simulated shoppers (see the script's docstring). Target: 1 million shoppers within 60 s.\n\n"
            f"{table}\n")
    if SECTION in text:
        start = text.index(SECTION)
        nxt = text.find("\n## ", start + len(SECTION))
        text = text[:start] + body + (text[nxt + 1:] if nxt != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + body
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--e2e-users", type=int, default=20_000)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return
    results = []
    if args.e2e_users:
        results.append(_run("e2e", args.e2e_users))
        print(_table(results[-1:]), flush=True)
    for n in args.sizes:
        results.append(_run("fit", n))
        print(_table(results[-1:]), flush=True)
    table = _table(results)
    print(table)
    if args.write:
        _write(table)


if __name__ == "__main__":
    main()
