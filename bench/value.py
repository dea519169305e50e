"""Benchmark of the value and churn forecasts: expected revenue and chance of no activity, beside their baselines.

For each seed it simulates shoppers (``core.simulate``, default 3,000 shoppers, 10 weeks),
loads them into a fresh DuckDB store, runs ``core.model.forecast.train`` with the default
``ModelConfig`` and prints, from the card, every expected-revenue forecast (Spearman with the
held-out window's revenue, share of that revenue held by the top 10 %, forecast total ÷ actual
total) beside the purchase propensity alone and the perfect ranking, and every churn forecast
(ROC-AUC, calibration error, Brier score). The real files named with ``--files`` (path:horizon)
are ingested and measured the same way. The table is written to the "## Value and churn" section
of ``docs/benchmarks.md`` (other sections are kept).

    python bench/value.py                                  # seeds 1 and 2, the Online Retail head
    python bench/value.py --users 3000 --seeds 1 2 3 --files ../shared/data/online_retail/OnlineRetail-head.csv:1
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from core import store
from core.model import forecast
from core.model.value import VALUE_HEAD_METRICS  # noqa: E402
from docs_section import write_section  # noqa: E402  bench/docs_section.py

SECTION = "## Value and churn"
DEFAULT_FILES = [f"{ROOT.parent / 'shared' / 'data' / 'online_retail' / 'OnlineRetail-head.csv'}:1"]


def _train(engine, name: str, horizon_days: int) -> forecast.ModelCard:
    import torch

    torch.set_num_threads(2)
    return forecast.train(engine, name, horizon_days=horizon_days, seed=0)


def run_simulated(n_users: int, weeks: int, seed: int, workdir: Path) -> tuple[str, forecast.ModelCard]:
    """Train on a simulated dataset; returns its label and the card."""
    from model import load_simulation  # bench/model.py

    engine = store.make_engine(f"duckdb:///{workdir / f'sim{seed}.duckdb'}")
    n_events = load_simulation(engine, "sim", n_users, weeks, seed)
    card = _train(engine, "sim", 7)
    engine.dispose()
    return f"simulated, {n_users:,} shoppers, {n_events:,} events, seed {seed}, 7-day horizon", card


def run_file(spec: str, workdir: Path) -> tuple[str, forecast.ModelCard]:
    """Ingest a real file (``path:horizon_days``) and train on it."""
    from core.ingest.load import ingest_file

    path, _, horizon = spec.rpartition(":")
    engine = store.make_engine(f"duckdb:///{workdir / (Path(path).stem + '.duckdb')}")
    report = ingest_file(engine, path, "real")
    card = _train(engine, "real", int(horizon))
    engine.dispose()
    return f"{Path(path).name}, {report.users:,} shoppers, {report.rows_loaded:,} events, {horizon}-day horizon", card


def rows(label: str, card: forecast.ModelCard) -> list[str]:
    """Markdown table rows of one card's value and churn heads."""
    fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    out = []
    for head, info in card.value.items():
        candidates = {**info["metrics"], **info.get("reference", {})}
        if head == "expected_revenue" and info.get("oracle_top_decile_share") is not None:
            candidates["perfect ranking (oracle)"] = {"spearman": 1.0, "top_decile_share": info["oracle_top_decile_share"]}
        for name, m in candidates.items():
            used = " ✓" if name == info["used"] else ""
            if head == "expected_revenue":
                cells = [fmt(m.get("spearman")), fmt(m.get("top_decile_share")), fmt(m.get("level"))]
            else:
                cells = [fmt(m.get("roc_auc")), fmt(m.get("calibration_error")), fmt(m.get("brier"))]
            out.append(f"| {label} | {head} | {name}{used} | " + " | ".join(cells) + " |")
        if not candidates:
            out.append(f"| {label} | {head} | {info['note']} | | | |")
    return out


def table(results: list[tuple[str, forecast.ModelCard]]) -> str:
    head = ("| data | head | forecast (✓ in use) | Spearman / ROC-AUC | top-10 % revenue share / calibration error "
            "| forecast ÷ actual revenue / Brier |\n|---|---|---|---|---|---|")
    keys = ", ".join(f"{h} by {k}" for h, (k, _) in VALUE_HEAD_METRICS.items())
    return f"Held-out window; the head's choice: {keys}.\n\n" + head + "\n" + "\n".join(
        r for label, card in results for r in rows(label, card))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--weeks", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--files", nargs="*", default=DEFAULT_FILES, help="real files as path:horizon_days")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--print-only", action="store_true", help="print the table, do not write docs/benchmarks.md")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="cartsight-bench-value-") as tmp:
        os.environ["CARTSIGHT_HOME"] = tmp
        for seed in args.seeds:
            results.append(run_simulated(args.users, args.weeks, seed, Path(tmp)))
            print(table(results[-1:]), flush=True)
        for spec in args.files:
            results.append(run_file(spec, Path(tmp)))
            print(table(results[-1:]), flush=True)
    text = table(results)
    print(text)
    if not args.print_only:
        write_section(args.out, f"{SECTION}\n\n{text}")


if __name__ == "__main__":
    main()
