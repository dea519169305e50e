"""Benchmark: how well segments find the planted taste groups of simulated shoppers.

For each simulated shop (``core.simulate`` with the size, history, seed and difficulty of the
row; ``taste_concentration`` lower = shoppers' mixes further from their group's,
``core_category_share`` lower = more visits outside the group's categories, ``sessions_per_day``
lower = shorter histories), the events are loaded in a DuckDB store and ``run_segmentation``
runs as the app runs it (automatic number of segments), then again at the true number of
groups. Printed: the adjusted Rand index of each against the planted groups, as a Markdown
table. The rows marked "tuned" are the shops the features and weights were chosen on; the
others were measured once, afterwards.

Usage: ``python bench/segment_quality.py``
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: (shoppers, weeks, seed, SimConfig overrides, tuned on)
SHOPS = [
    (1200, 6, 5, {}, True), (3000, 10, 11, {}, True), (2000, 8, 21, {}, True),
    (2000, 8, 22, {"taste_concentration": 10.0}, True), (2000, 8, 23, {"core_category_share": 0.7}, True),
    (800, 4, 31, {}, True), (5000, 10, 32, {}, True), (2000, 8, 33, {"taste_concentration": 5.0}, True),
    (2000, 8, 34, {"core_category_share": 0.6}, True), (2000, 4, 35, {"sessions_per_day": 0.1}, True),
    (3000, 10, 7, {}, True),
    (1500, 6, 41, {}, False), (2500, 8, 42, {"taste_concentration": 10.0}, False),
    (2000, 8, 43, {"core_category_share": 0.7}, False), (1000, 5, 44, {}, False),
]


def measure(n_users: int, weeks: int, seed: int, overrides: dict) -> tuple[int, float, float]:
    """(automatic k, its adjusted Rand index, the index at the true number of groups) of one simulated shop."""
    from unittest import mock

    from sklearn.metrics import adjusted_rand_score

    from core import simulate, store
    from core.analysis import segments
    from core.simulate.catalogue import TASTE_GROUPS, SimConfig
    from tests.analysis.test_segments import load_simulation

    with tempfile.TemporaryDirectory() as tmp:
        engine = store.make_engine(f"duckdb:///{Path(tmp) / 'quality.duckdb'}")
        real = simulate.simulate
        with mock.patch("tests.analysis.test_segments.simulate",
                        lambda n, weeks, seed: real(n, weeks=weeks, seed=seed, config=SimConfig(**overrides))):
            sim = load_simulation(engine, "shop", n_users, weeks, seed)
        truth = sim.truth.assign(user_id=sim.truth["user_id"].astype(str)).set_index("user_id")["group"]
        scores = []
        for k in ("auto", len(TASTE_GROUPS)):
            run = segments.run_segmentation(engine, "shop", n_segments=k, seed=0)
            a = run.assignments.set_index("user_id")
            scores.append((run.n_segments, adjusted_rand_score(truth.reindex(a.index), a["segment"])))
        engine.dispose()
    return scores[0][0], scores[0][1], scores[1][1]


def main() -> None:
    print("| shoppers | weeks | seed | simulator setting | tuned on | automatic k | ARI at automatic k | ARI at true k |")
    print("|---|---|---|---|---|---|---|---|")
    for n_users, weeks, seed, overrides, tuned in SHOPS:
        k, ari_auto, ari_true = measure(n_users, weeks, seed, overrides)
        setting = ", ".join(f"{key}={value}" for key, value in overrides.items()) or "defaults"
        print(f"| {n_users:,} | {weeks} | {seed} | {setting} | {'tuned' if tuned else 'held out'} | {k} | "
              f"{ari_auto:.3f} | {ari_true:.3f} |", flush=True)


if __name__ == "__main__":
    main()
