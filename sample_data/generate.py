"""Write the sample events file that cartsight opens on by default (or a larger one for benchmarks).

    python sample_data/generate.py                       # the committed sample_events.csv.gz
    python sample_data/generate.py --users 300000 --out /tmp/big.csv.gz --chunk-users 20000

The data come from ``core.simulate``; its module docstring (and sample_data/README.md) say
what is planted: six taste groups with their own categories, brands and price bands,
shoppers moving in and out of a hidden buying mode, carts before purchases, returns to
recent categories, daily and weekly rhythm, churn and late joiners. The same arguments
always write the same bytes.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a clone that is not pip-installed
    sys.path.insert(0, str(ROOT))

from core.simulate import iter_chunks, simulate, write_csv  # noqa: E402

DEFAULT_OUT = ROOT / "sample_data" / "sample_events.csv.gz"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (defaults make the committed sample file)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=3000, help="number of shoppers (default 3000)")
    p.add_argument("--weeks", type=int, default=10, help="length of the period in weeks (default 10)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--start", default="2024-01-01", help="first day, UTC (default 2024-01-01)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="output CSV; gzip when it ends in .gz (default sample_data/sample_events.csv.gz)")
    p.add_argument("--chunk-users", type=int, default=0,
                   help="stream shoppers in chunks of this many (for very large files; "
                        "rows are then sorted by time within each chunk only)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Generate the file and print a one-line JSON summary (rows, users, bytes, seconds)."""
    args = parse_args(argv)
    t0 = time.perf_counter()
    if args.chunk_users > 0:
        rows = write_csv(iter_chunks(args.users, args.weeks, args.seed, args.chunk_users, args.start),
                         args.out)
        summary = {"rows": rows, "users": args.users}
    else:
        sim = simulate(args.users, args.weeks, args.seed, args.start)
        rows = write_csv(sim, args.out)
        ev = sim.events
        summary = {
            "rows": rows,
            "users": int(ev["user_id"].nunique()),
            "first_event": ev["event_time"].iloc[0],
            "last_event": ev["event_time"].iloc[-1],
            "events_by_type": {k: int(v) for k, v in ev["event_type"].value_counts().items()},
            "categories": int(ev["category_code"].nunique()),
            "brands": int(ev["brand"].nunique()),
        }
    seconds = time.perf_counter() - t0
    summary.update({"out": str(args.out), "bytes": args.out.stat().st_size,
                    "seconds": round(seconds, 2), "events_per_second": round(rows / seconds)})
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
