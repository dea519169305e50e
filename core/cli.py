"""The cartsight command line: ingest, list and drop datasets, train and score.

Every command takes ``--db URL`` (else the same store the app uses). Errors meant for
the analyst are printed as one line on stderr with exit code 2; nothing prints a traceback.
A store that cannot be reached or written (stopped server, read-only or full disk) is one
of them: the message names the database or folder and what to do.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from core import config
from core.errors import CartsightError, ParameterError
from core.cli_data import _add_command, _add_dataset_commands, _engine, _print_json, _stderr_progress

EXIT_USER_ERROR = 2


def _train_progress(quiet: bool):
    def report(p) -> None:
        if not quiet:
            loss = f" loss {p.train_loss:.4f}" if p.train_loss is not None else ""
            print(f"[{p.fraction:4.0%}] {p.stage}: {p.message}{loss}", file=sys.stderr, flush=True)

    return report


def _model_config(args) -> dict:
    """``config`` (a ModelConfig) and ``settings`` (PipelineSettings) for ``forecast.train`` from ``--config
    FILE.json``, which may hold any subset of the fields of both; empty (the defaults) without ``--config``."""
    if not getattr(args, "config", None):
        return {}
    from core.model.config import split_config

    try:
        values = json.loads(Path(args.config).read_text())
    except (OSError, ValueError) as exc:
        raise ParameterError(f"--config {args.config}: cannot read a JSON object of ModelConfig fields ({exc})",
                             parameter="--config", cases=[args.config]) from exc
    config, settings = split_config(values)
    return {"config": config, "settings": settings}


def cmd_train(args) -> int:
    from core.model import forecast

    engine = _engine(args)
    card = forecast.train(engine, args.dataset, horizon_days=args.horizon_days, seed=args.seed,
                          **_model_config(args), progress=_train_progress(args.quiet or args.json))
    if args.json:
        scoring = _current_scoring(engine, card.dataset_id, card.model_version)
        _print_json({**card.to_dict(), "scoring_id": scoring["scoring_id"], "as_of": scoring["as_of"]})
    else:
        print(card.to_text())
    return 0


def cmd_score(args) -> int:
    if (args.events is None) == (args.dataset is None):
        raise ParameterError("score needs either an EVENTS.csv file or --dataset NAME (not both)",
                             parameter="--dataset")
    if args.events is not None and args.out is None:
        raise ParameterError("score EVENTS.csv needs --out FILE for the forecasts", parameter="--out")
    from core.present import safecsv

    if args.out is not None:
        safecsv.check_out_path(args.out)  # before ingesting or training, which take minutes
    if args.events is not None:
        return _score_file(args)
    from core.model import forecast

    engine = _engine(args)
    quiet = args.quiet or args.json
    if args.model_version is None and forecast.latest_model(engine, args.dataset) is None:
        print(f"no model for {args.dataset!r} yet: training one first", file=sys.stderr)
        forecast.train(engine, args.dataset, horizon_days=args.horizon_days, seed=args.seed,
                       **_model_config(args), progress=_train_progress(quiet))
    else:
        forecast.score(engine, args.dataset, model_version=args.model_version, progress=_train_progress(quiet))
    if args.out is not None:
        _write_predictions(engine, args.dataset, args.model_version, args.out)
    if args.json:
        card = forecast.latest_model(engine, args.dataset) if args.model_version is None else None
        version = args.model_version or card.model_version
        _print_json({"dataset": args.dataset, **_current_scoring(engine, _dataset_id(engine, args.dataset), version),
                     "out": args.out})
    return 0


def _dataset_id(engine, dataset: str) -> int:
    from core import store

    return store.get_dataset(engine, dataset)["dataset_id"]


def _current_scoring(engine, dataset_id: int, version: str) -> dict:
    """The scoring whose forecasts ``version`` now serves: id, version, kind, as-of time, when, shoppers."""
    from core.analysis import forecast_history

    scoring = next(s for s in forecast_history.list_scorings(engine, dataset_id) if s.model_version == version)
    return {"scoring_id": scoring.scoring_id, "model_version": version, "kind": scoring.kind, "as_of": scoring.as_of,
            "scored_at": scoring.scored_at, "n_users": scoring.n_users}


def _score_file(args) -> int:
    """One shot: ingest into a throw-away store, train, score, write the CSV."""
    from core import store
    from core.model import forecast
    from core.store.dataset_names import usable_dataset_name
    from core.ingest.load import ingest_file

    # named after this process: if it is killed, the next start of any cartsight removes the folder
    with tempfile.TemporaryDirectory(prefix=store.temp_prefix("score")) as tmp:
        previous_home = os.environ.get(config.HOME_ENV)
        os.environ[config.HOME_ENV] = tmp  # models of the throw-away store go with it
        try:
            engine = store.make_engine(args.db or f"duckdb:///{Path(tmp) / 'score.duckdb'}")
            name = usable_dataset_name(f"score:{Path(args.events).name}")  # a long file name too
            report = ingest_file(engine, args.events, name, progress=_stderr_progress(args.quiet))
            print(f"ingested {report.rows_loaded:,} events of {report.users:,} shoppers "
                  f"({report.rows_quarantined:,} rows quarantined)", file=sys.stderr)
            forecast.train(engine, name, horizon_days=args.horizon_days, seed=args.seed,
                           **_model_config(args), progress=_train_progress(args.quiet))
            code = _write_predictions(engine, name, None, args.out)
            if args.db:
                store.drop_dataset(engine, name)
            engine.dispose()
            return code
        finally:
            if previous_home is None:
                os.environ.pop(config.HOME_ENV, None)
            else:
                os.environ[config.HOME_ENV] = previous_home


def _write_predictions(engine, dataset: str, model_version: str | None, out: str) -> int:
    from core.model import forecast
    from core.present import safecsv, vocabulary

    frame = forecast.load_predictions(engine, dataset, model_version=model_version)
    version = frame["model_version"].iloc[0] if len(frame) else None
    card = next((c for c in forecast.list_models(engine, dataset) if c.model_version == version), None)
    horizon = card.horizon_days if card is not None else config.DEFAULT_HORIZON_DAYS
    safecsv.write_csv(vocabulary.export_frame(frame, horizon), out)
    print(f"wrote {len(frame):,} shopper forecasts to {out}", file=sys.stderr)
    return 0


def _k(value: str):
    return "auto" if value == "auto" else int(value)


def cmd_segment(args) -> int:
    from core.present import safecsv
    from core.analysis import segments

    safecsv.check_out_path(args.out)  # before the segmentation, which takes minutes on a large dataset
    engine = _engine(args)
    run = segments.run_segmentation(engine, args.dataset, n_segments=args.k, seed=args.seed)
    frame, text = segments.segment_cli_output(run)
    safecsv.write_csv(frame, args.out)
    if args.json:
        _print_json(_segment_json(engine, run, args.out))
    else:
        print(text)
    print(f"wrote {len(frame):,} shoppers' segments to {args.out}", file=sys.stderr)
    return 0


def _segment_json(engine, run, out: str) -> dict:
    """A stored segmentation run for scripts: its id, segments and sizes, and how shoppers moved since the run
    before it (None for a dataset's first run); earlier runs are kept."""
    from core.analysis import migration, segments

    before = [r for r in segments.list_runs(engine, run.dataset) if r.run_id != run.run_id]
    moved = None
    if before:
        m = migration.segment_migration(engine, run.dataset, before[0].run_id, run.run_id)
        moved = {"run_from": m.run_from, "stayed": m.stayed, "moved": m.moved, "new": m.new, "gone": m.gone,
                 "matches": {str(k): v for k, v in m.matches.items()}}
    return {"dataset": run.dataset, "run_id": run.run_id, "created_at": run.created_at, "n_segments": run.n_segments,
            "model_version": run.model_version, "out": out,
            "segments": [{"segment": p["segment"], "name": p["name"], "size": p["size"]} for p in run.profiles],
            "runs_kept": 1 + len(before), "moved_since_previous": moved}


def cmd_export(args) -> int:
    from core.campaigns import exports

    counts = exports.export_cli(
        _engine(args), args.dataset, segments=args.segment or None, top_percent=args.top_percent,
        min_propensity=args.min_propensity, exclude_bought_days=args.exclude_bought_days,
        identities_path=args.identities, suppress_path=args.suppress, holdout=args.holdout,
        fmt=args.format, out=args.out, seed=args.seed, name=args.name, consent_basis=args.consent_basis,
        allow_small=args.allow_small, rank_by=args.rank_by, likely_to_lapse=args.likely_to_lapse,
    )
    if args.json:
        _print_json(counts)
        return 0
    from core.campaigns.targets import COUNT_KEYS

    for key in COUNT_KEYS:
        print(f"{key:<17} {counts.get(key, 0):>10,}")
    if counts["consent_basis"]:
        print(f"consent: no {counts['consent_column']} column; legal basis stated: {counts['consent_basis']}")
    elif counts["consent_column"]:
        print(f"consent: {counts['consent_column']} = yes")
    print(f"export #{counts['export_id']} written to {counts['out']} (sha256 {counts['file_sha256']}), ranked by "
          f"{counts['ranking'] or 'nothing (no forecasts)'}")
    for warning in counts.get("warnings") or []:
        print(f"warning: {warning}", file=sys.stderr)
    for label, key in (("identity file", "identity_problems"), ("suppression file", "suppression_problems")):
        for p in counts.get(key) or []:
            print(f"{label} line {p['line']}, {p['column']}: {p['reason']} ({p['outcome']})", file=sys.stderr)
    return 0


def cmd_outcome(args) -> int:
    from core.campaigns import results

    engine = _engine(args)
    orders = results.read_orders(args.orders) if args.orders else None
    result = results.campaign_results(engine, args.dataset, args.export, days=args.days, orders=orders)
    if args.json:
        _print_json(result)
    else:
        print("\n".join(results.summary_lines(result)))
    return 0


def cmd_uplift(args) -> int:
    from core.campaigns import results, uplift

    engine = _engine(args)
    orders = results.read_orders(args.orders) if args.orders else None
    fit = uplift.fit_uplift(engine, args.dataset, args.export, days=args.days, orders=orders)
    if args.json:
        _print_json(fit.report)
    else:
        print("\n".join(uplift.summary_lines(fit.report)))
    return 0


def _add_training_flags(p: argparse.ArgumentParser) -> None:
    """The horizon, seed, hyperparameter file and quiet flags of the commands that train a model."""
    p.add_argument("--horizon-days", type=int, default=config.DEFAULT_HORIZON_DAYS,
                   help=f"purchase horizon in days ({config.MIN_HORIZON_DAYS}-{config.MAX_HORIZON_DAYS})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", help="JSON file of model hyperparameters and pipeline settings (ModelConfig and "
                   "PipelineSettings fields) to override")
    p.add_argument("--quiet", action="store_true")


def _add_model_commands(sub) -> None:
    """``train``, ``score`` and ``segment``: the commands that learn from a dataset and write what they found."""
    p = _add_command(sub, "train", "Train the sequence model on a dataset and print its model card.")
    p.add_argument("--dataset", required=True)
    p.add_argument("--json", action="store_true", help="print the model card as JSON")
    _add_training_flags(p)
    p.set_defaults(func=cmd_train)

    p = _add_command(sub, "score", "Write every shopper's forecast to a CSV (from a dataset, or one-shot from an "
                                   "events file).")
    p.add_argument("events", nargs="?", help="events CSV: ingest into a temporary dataset, train and score")
    p.add_argument("--dataset", help="score this stored dataset again at its data's end; the version's earlier "
                   "forecasts are kept beside the new ones")
    p.add_argument("--model-version", "--model", dest="model_version",
                   help="the version to score with (default: the newest; trains one when there is none)")
    p.add_argument("--out", help="CSV of every shopper's forecast (required with EVENTS.csv)")
    p.add_argument("--json", action="store_true", help="print the scoring (version, as-of time, shoppers) as JSON")
    _add_training_flags(p)
    p.set_defaults(func=cmd_score)

    p = _add_command(sub, "segment", "Segment the shoppers of a dataset and write the assignments with their "
                                     "features.")
    p.add_argument("--dataset", required=True)
    p.add_argument("--k", type=_k, default="auto", help="number of segments (2-10) or 'auto' (silhouette)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--json", action="store_true", help="print the run (id, segments, shoppers moved since the run "
                   "before) as JSON; earlier runs are kept")
    p.set_defaults(func=cmd_segment)


def _add_export_command(sub) -> None:
    """``export``: a campaign target list, filtered, suppressed and held out, in a platform's file format."""
    p = _add_command(sub, "export", "Build a campaign target list and export it for an ad or e-mail platform.")
    p.add_argument("--dataset", required=True)
    p.add_argument("--segment", type=int, action="append", help="segment number (repeatable)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--top-percent", type=float, help="keep the top P%% by purchase propensity (or by --rank-by)")
    who.add_argument("--min-propensity", type=float, help="keep shoppers with propensity >= X")
    p.add_argument("--exclude-bought-days", type=int, help="drop shoppers who bought in the last D days")
    p.add_argument("--rank-by", choices=["propensity", "expected_revenue", "p_inactive", "uplift"],
                   help="the forecast --top-percent keeps the highest of (default propensity): expected revenue "
                        "within the horizon, p_inactive, the chance of no activity within it, or uplift, the "
                        "incremental chance to buy estimated by `cartsight uplift` (persuadables first)")
    p.add_argument("--likely-to-lapse", action="store_true",
                   help=f"only shoppers whose chance of no activity within the horizon is at least "
                        f"{100 * config.LIKELY_TO_LAPSE:.0f}%%")
    p.add_argument("--identities", help="identity file (user_id, email, phone, ..., consent_*; the header names "
                                        "of Shopify, Klaviyo and Mailchimp exports are read too)")
    p.add_argument("--suppress", help="suppression list: a user id and/or e-mail column, or one value per line")
    p.add_argument("--consent-basis", metavar="TEXT",
                   help="the legal basis for exporting when the identity file has no consent column for the "
                        "destination (consent_email: klaviyo, mailchimp; consent_ads: google, meta); recorded "
                        "with the export. Without it such an export is refused")
    p.add_argument("--allow-small", action="store_true",
                   help="confirm an export of 0 shoppers, or under the platform's minimum list size ("
                        + ", ".join(f"{k} {v}" for k, v in config.PLATFORM_MIN_LIST_SIZE.items()) + ")")
    p.add_argument("--holdout", type=float, default=0.1, help="random holdout share kept out of the export")
    p.add_argument("--format", required=True, choices=["csv", "parquet", "google", "meta", "klaviyo", "mailchimp"])
    p.add_argument("--name", help="a label for the export history")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_export)


def _add_outcome_command(sub) -> None:
    """``outcome`` and ``uplift``: a past export measured against its holdout, and whom its campaign moved."""
    p = _add_command(sub, "outcome", "Measure a past export's campaign against its holdout: conversion, lift with "
                                     "its confidence interval and p-value, revenue, by segment and propensity decile.")
    _add_outcome_window(p, "the export's id (cartsight export prints it; the Campaigns page lists them)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=cmd_outcome)

    p = _add_command(sub, "uplift", "Fit an uplift model on a measured export's exported and held-out shoppers, "
                                    "print its Qini numbers beside ranking by propensity and random targeting, and "
                                    "store every shopper's estimated uplift (export --rank-by uplift uses it).")
    _add_outcome_window(p, "the measured export's id")
    p.add_argument("--json", action="store_true", help="print the report (Qini numbers, curves, verdict) as JSON")
    p.set_defaults(func=cmd_uplift)


def _add_outcome_window(p: argparse.ArgumentParser, export_help: str) -> None:
    """The options naming a past export's campaign and its outcome window (``outcome`` and ``uplift``)."""
    p.add_argument("--dataset", required=True)
    p.add_argument("--export", required=True, type=int, metavar="ID", help=export_help)
    p.add_argument("--days", type=int, metavar="N", help="the outcome window's length after the export's as-of time "
                                                         "(default: its model's horizon)")
    p.add_argument("--orders", metavar="FILE", help="read outcomes from this orders file (a customer id, a time and an "
                                                    "amount per row) instead of the dataset's later events")


def build_parser() -> argparse.ArgumentParser:
    """The ``cartsight`` parser: one subcommand per task, each with ``--db``."""
    parser = argparse.ArgumentParser(prog="cartsight", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_dataset_commands(sub)
    _add_model_commands(sub)
    _add_export_command(sub)
    _add_outcome_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cartsight`` console script; returns the exit code."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CartsightError as exc:
        print(f"cartsight: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:  # noqa: BLE001 - only store faults become messages; anything else is a bug
        from core import store

        known = store.describe_failure(exc, getattr(args, "db", None))
        if known is None:
            raise
        print(f"cartsight: {known}", file=sys.stderr)
        return EXIT_USER_ERROR


def entry() -> None:
    """Console-script entry: run, flush, and leave without interpreter finalisation.

    With torch and DuckDB both loaded, finalisation makes DuckDB's bindings print dozens of
    "nanobind: leaked ..." lines on stderr; the work is done and flushed by then, so skip it.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
