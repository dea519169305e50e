"""Uplift benchmark: what the uplift model finds on simulated campaigns whose effect is known.

Each run simulates 4,000 shoppers over 10 weeks (core.simulate), loads weeks 1-8 into a fresh DuckDB store with a
stand-in propensity, exports everyone with a holdout, adds weeks 9-10 and, in the 14-day window, one more purchase
for a share (the effect) of the exported shoppers of one group (mean viewed price above the median) who would not
have bought; nobody else is moved (tests/campaigns/test_uplift.py builds the same campaigns). Then
``core.campaigns.uplift.fit_uplift``: the Qini coefficient (points; 95 % bootstrap interval) of ranking by the
cross-fitted uplift, by the propensity, and the verdict; the share of the affected group among the top tenth of
the cross-fitted estimates (half the shoppers are in it); the randomisation test's p-value; the fit's seconds
(19 re-randomised fits included).

Prints a table and writes it under "## Uplift on simulated campaigns" in docs/benchmarks.md.

    python bench/uplift.py --seeds 1 2 3
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from docs_section import write_section  # noqa: E402 - the section writer of every benchmark

DOC = ROOT / "docs" / "benchmarks.md"

#: (effect on the affected group, holdout share)
SCENARIOS = ((0.3, 0.5), (0.3, 0.1), (0.15, 0.5), (0.0, 0.5))


def one(seed: int, effect: float, holdout: float, folder: Path) -> dict:
    """One simulated campaign and its uplift fit on a fresh DuckDB store."""
    from core import config, store
    from core.campaigns import uplift
    from tests.campaigns.test_uplift import WINDOW_DAYS, uplift_campaign

    os.environ[config.HOME_ENV] = str(folder / "home")
    engine = store.make_engine(f"duckdb:///{folder / 'store.duckdb'}")
    try:
        sim = uplift_campaign(engine, seed=seed, effect=effect, holdout=holdout)
        start = time.perf_counter()
        fit = uplift.fit_uplift(engine, "sim", sim["export_id"], days=WINDOW_DAYS)
        seconds = time.perf_counter() - start
    finally:
        engine.dispose()
    held = fit.held_out
    top = held.nlargest(len(held) // 10, "uplift")
    return {"seed": seed, "effect": effect, "holdout": holdout, "made": len(sim["made"]), "report": fit.report,
            "top_in_group": float(top["user_id"].isin(sim["affected"]).mean()), "seconds": seconds}


def _q(part: dict, key: str = "qini") -> str:
    return f"{part[key] * 100:+.2f} ({part['ci_low'] * 100:+.2f} to {part['ci_high'] * 100:+.2f})"


def section(runs: list[dict]) -> str:
    lines = ["## Uplift on simulated campaigns", "",
             "`python bench/uplift.py` (DuckDB; 4,000 simulated shoppers, a 14-day window; the campaign moves only "
             "the shoppers whose mean viewed price is above the median). Qini coefficients in points with 95 % "
             "bootstrap intervals; random targeting is 0.", "",
             "| effect on the group | holdout | seed | exported / held out | buyers made | Qini by uplift | Qini by "
             "propensity | uplift − propensity | randomisation p | verdict | group share of the top 10 % | fit (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        q = r["report"]["qini"]
        lines.append(f"| {r['effect']:.2f} | {r['holdout']:.0%} | {r['seed']} | {r['report']['treated']:,} / "
                     f"{r['report']['holdout']:,} | {r['made']} | {_q(q['uplift'])} | {_q(q['propensity'])} | "
                     f"{_q(q['uplift - propensity'], 'difference')} | {q['uplift']['p_value']:.2f} | "
                     f"{r['report']['verdict']} | "
                     f"{r['top_in_group']:.0%} | {r['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    runs = []
    for effect, holdout in SCENARIOS:
        for seed in args.seeds:
            with tempfile.TemporaryDirectory(prefix="cartsight-bench-uplift-") as tmp:
                runs.append(one(seed, effect, holdout, Path(tmp)))
    text = section(runs)
    print(text)
    write_section(DOC, text)


if __name__ == "__main__":
    main()
