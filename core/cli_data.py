"""The ``cartsight`` commands that fill, list and empty the store (ingest, connect, datasets, overview, drop), and
what every command shares: the store from ``--db``, progress lines on stderr, JSON output."""
from __future__ import annotations

import argparse
import json
import sys

from core import config
from core.errors import ParameterError
from core.present import vocabulary


def _engine(args):
    from core import store

    return store.make_engine(args.db)


def _stderr_progress(quiet: bool):
    def report(fraction: float, message: str) -> None:
        if not quiet:
            print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    return report


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str, ensure_ascii=False))


def _add_command(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    """A subcommand with its help and the ``--db`` flag every command takes."""
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--db", help="SQLAlchemy URL of the store (default: the app's store)")
    return p


def _hand_mapping(args, engine):
    """The sniffed mapping with what the ingest flags set (--sheet, --skip-lines, --map, --event-type,
    --time-format, --price-is), checked as the Data page's; None when no flag sets anything."""
    if not (args.sheet or args.skip_lines is not None or args.map or args.event_type or args.time_format
            or args.price_is):
        return None
    from core.ingest.sniff import sniff, with_overrides

    skip = None
    if args.skip_lines is not None:
        if not args.skip_lines.strip().isdigit():
            raise ParameterError(f"--skip-lines {args.skip_lines!r}: expected a whole number of lines >= 0",
                                 parameter="--skip-lines", cases=[args.skip_lines])
        skip = int(args.skip_lines)
    columns = _map_pairs(args.map)
    sniffed = sniff(args.file, engine, sheet=args.sheet, skip_lines=skip)
    mapping = sniffed.mapping
    if args.append:  # the dataset's own mapping first, as the Data page offers it
        from core import store
        from core.ingest.append import dataset_mapping_instead

        mapping = dataset_mapping_instead(mapping, store.get_dataset(engine, args.name).get("mapping"))
    return with_overrides(mapping, columns, event_type=args.event_type, time_format=args.time_format,
                          price_is=args.price_is, preview=sniffed.preview)


def _map_pairs(pairs: list[str] | None) -> dict[str, str | None]:
    """``--map FIELD=COLUMN`` flags as field -> column (None: unmapped); one per field."""
    columns: dict[str, str | None] = {}
    for pair in pairs or []:
        fld, eq, column = pair.partition("=")
        if not eq or not fld.strip():
            raise ParameterError(f"--map {pair!r}: expected FIELD=COLUMN (user_id=cust), or FIELD= to unmap it",
                                 parameter="--map", cases=[pair])
        if fld.strip() in columns:  # the last would win unseen; which one was meant is the analyst's to say
            raise ParameterError(f"--map {pair!r}: {fld.strip()} is already mapped "
                                 f"({fld.strip()}={columns[fld.strip()] or ''}): expected one --map per field",
                                 parameter="--map", cases=[pair])
        columns[fld.strip()] = column.strip() or None
    return columns


def _print_load(d: dict) -> None:
    """An ingest or connect report (``IngestReport.to_dict``) as the lines the Data page shows."""
    added = f"file {d['file_no']} ({d['source']}) added to " if d["appended"] else ""
    print(f"{added}dataset {d['dataset']!r} ({vocabulary.layout_name(d['layout'])}): {d['rows_read']:,} rows read = "
          f"{d['rows_loaded']:,} loaded + {d['rows_quarantined']:,} quarantined")
    print(f"shoppers {d['users']:,}; events {d['first_event']} .. {d['last_event']}")
    for etype, n in sorted(d["events_by_type"].items(), key=lambda kv: -kv[1]):
        print(f"  {etype:<18} {n:>12,}")
    for reason, n in sorted((d.get("quarantine_by_reason") or {}).items(), key=lambda kv: -kv[1]):
        print(f"  quarantined: {reason:<20} {n:>8,}")
    for note in d.get("notes") or []:
        print(f"note: {note}")


def cmd_connect(args) -> int:
    """A team's table as a dataset read in place (:mod:`core.ingest.connect`)."""
    from core.ingest.connect import connect_table, refresh_connected

    engine, progress = _engine(args), _stderr_progress(args.quiet or args.json)
    if args.refresh:
        if args.table or args.map:
            raise ParameterError("--refresh counts the table a dataset was connected to again, with its mapping: "
                                 "expected --name alone", parameter="--refresh")
        report = refresh_connected(engine, args.name, progress=progress)
    elif not args.table:
        raise ParameterError("connect needs --table SCHEMA.TABLE (or --refresh for a dataset connected before)",
                             parameter="--table")
    else:
        report = connect_table(engine, args.table, args.name, overrides=_map_pairs(args.map), progress=progress)
    if args.json:
        _print_json(report.to_dict())
    else:
        _print_load(report.to_dict())
    return 0


def cmd_ingest(args) -> int:
    from core.ingest.load import ingest_file

    engine = _engine(args)
    mapping = _hand_mapping(args, engine)
    report = ingest_file(engine, args.file, args.name, mapping=mapping,
                         progress=_stderr_progress(args.quiet or args.json), append=args.append)
    if args.json:
        _print_json(report.to_dict())
    else:
        d = report.to_dict()
        _print_load(d)
        if d["appended"]:
            from core import store

            ds = store.get_dataset(engine, args.name)
            print(f"dataset {args.name!r} now: {ds['rows_loaded']:,} events of {ds['n_users'] or 0:,} shoppers, "
                  f"{ds['first_event']} .. {ds['last_event']}")
    return 0


def cmd_datasets(args) -> int:
    from core import store

    engine = _engine(args)
    rows = store.list_datasets(engine)
    if args.json:  # with each dataset's files: what each load and append read, loaded and quarantined
        _print_json([{**{k: v for k, v in r.items() if not k.endswith("_json")},
                      "files": store.dataset_file_history(engine, r["dataset_id"])} for r in rows])
        return 0
    if not rows:
        print("no datasets")
        return 0
    print(f"{'name':<30} {'layout':<38} {'rows':>12} {'quarantined':>12} {'shoppers':>10}  first .. last event")
    for r in rows:
        print(f"{r['name']:<30} {vocabulary.layout_name(r['layout']):<38} {r['rows_loaded']:>12,} "
              f"{r['rows_quarantined']:>12,} "
              f"{(r['n_users'] or 0):>10,}  {r['first_event']} .. {r['last_event']}")
    return 0


def cmd_overview(args) -> int:
    """The Overview page's headline numbers, shopper funnel and top categories of a dataset, queried in the store."""
    from core import store
    from core.analysis import product_queries, queries

    engine = _engine(args)
    did = store.get_dataset(engine, args.dataset)["dataset_id"]
    kpis, funnel = queries.kpis(engine, did), queries.funnel(engine, did)
    top = product_queries.top_categories(engine, did, by="views", n=args.top)
    if args.json:
        _print_json({"kpis": kpis, "funnel": funnel.to_dict("records"),
                     "top_categories": top[["name", "views", "viewers", "purchases", "buyers"]].to_dict("records")})
        return 0
    for key in ("shoppers", "sessions", "events", "buyers", "orders", "revenue", "first_event", "last_event"):
        value = kpis[key]
        print(f"{key.replace('_', ' '):<14} {value:,.2f}" if isinstance(value, float) else f"{key.replace('_', ' '):<14} {value}")
    print("funnel (shoppers): " + " -> ".join(f"{r.step} {r.count:,}" for r in funnel.itertuples()))
    for r in top.itertuples():
        print(f"  {r.name:<40} {r.views:>10,} views {r.purchases:>8,} purchases")
    return 0


def cmd_drop(args) -> int:
    from core import store

    store.drop_dataset(_engine(args), args.name)
    print(f"dropped dataset {args.name!r}")
    return 0


def _add_mapping_flags(p: argparse.ArgumentParser) -> None:
    """The ingest flags that set what the Data page's mapping editor sets (checked by core.ingest.sniff.with_overrides,
    not by argparse, so that a wrong value is one line naming it)."""
    from core.ingest.sniff import HAND_FIELDS, PRICE_KINDS, TIME_FORMATS

    p.add_argument("--map", action="append", metavar="FIELD=COLUMN",
                   help="read FIELD from COLUMN instead of the detected one (repeatable: --map user_id=cust "
                        f"--map price=amount); FIELD= unmaps it; fields: {', '.join(HAND_FIELDS)}")
    p.add_argument("--event-type", metavar="TYPE",
                   help=f"one event type for every row: {', '.join(config.EVENT_TYPES)}")
    p.add_argument("--time-format", metavar="FORMAT", help=f"how times are written: {', '.join(TIME_FORMATS)}")
    p.add_argument("--skip-lines", metavar="N", help="lines above the header that are no part of the table")
    p.add_argument("--price-is", metavar="KIND",
                   help=f"what the price column holds: {', '.join(PRICE_KINDS)} (a total is stored as total / "
                        "quantity, so that revenue is the total)")


def _add_dataset_commands(sub) -> None:
    """``ingest``, ``datasets`` and ``drop``: the commands that fill, list and empty the store."""
    p = _add_command(sub, "ingest", "Load an event CSV into a named dataset.")
    p.add_argument("file")
    p.add_argument("--name", required=True, help="dataset name")
    p.add_argument("--append", action="store_true",
                   help="add the file to the existing dataset NAME (its lines already there are quarantined as "
                        "duplicate)")
    p.add_argument("--sheet", help="the worksheet of a spreadsheet to read (default: the first visible one)")
    _add_mapping_flags(p)
    p.add_argument("--json", action="store_true", help="print the ingest report as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_ingest)

    p = _add_command(sub, "connect", "Make a team's events table a dataset, read in place (no copy); the table is "
                     "in the store's database (--db: the team's PostgreSQL or Spark).")
    p.add_argument("--table", metavar="SCHEMA.TABLE", help="the team's events table")
    p.add_argument("--refresh", action="store_true",
                   help="count dataset NAME's table again and rewrite its summaries (the table has grown)")
    p.add_argument("--name", required=True, help="dataset name")
    p.add_argument("--map", action="append", metavar="FIELD=COLUMN",
                   help="read FIELD from COLUMN instead of the detected one (repeatable); FIELD= unmaps it")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_connect)

    p = _add_command(sub, "datasets", "List the stored datasets.")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_datasets)

    p = _add_command(sub, "overview", "A dataset's headline numbers, funnel and top categories (the Overview page).")
    p.add_argument("--dataset", required=True)
    p.add_argument("--top", type=int, default=10, help="categories listed (1-50)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_overview)

    p = _add_command(sub, "drop", "Delete a dataset with its quarantine, models and predictions.")
    p.add_argument("name")
    p.set_defaults(func=cmd_drop)
