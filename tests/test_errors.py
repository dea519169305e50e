"""The project's errors: a bad argument is a ParameterError, bad data a SchemaError with a reason code."""
from __future__ import annotations

import argparse
import ast
import datetime as dt
import gzip
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import cli, cli_data
from core.analysis import segments
from core.campaigns import targets, exports
from core.errors import SCHEMA_REASONS, CartsightError, ParameterError, SchemaError
from core.ingest.load import ingest_file
from core.model import baselines, evaluation, labels
from core.model.config import ModelConfig
from core.ingest.sniff import sniff, with_overrides

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


def _features(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})


# (call, parameter named, the value as the message shows it, what the message says was expected)
PARAMETER_CASES = [
    (lambda: segments.Segmenter(k_range=(6, 3)).fit(_features(200)), "k_range", "(6, 3)",
     "expected (smallest, largest) whole numbers with 2 <= smallest <= largest"),
    (lambda: segments.Segmenter(n_segments=11).fit(_features(200)), "n_segments", "11",
     "expected 'auto' or a whole number from 2 to 10"),
    (lambda: segments.Segmenter(3).fit(_features(14)), "n_segments", "3", "expected at most 2 for this many shoppers"),
    (lambda: segments.Segmenter(2, feature_weights={"a": -1}).fit(_features(30)), "feature_weights", "-1",
     "expected a number of at least 0"),
    (lambda: segments.Segmenter(2).fit(_features(30)).predict(np.zeros((3, 5))), "features", "have 5 columns",
     "expected 2"),
    (lambda: segments.shopper_features(None, 1, top_categories=0), "top_categories", "0",
     "expected a whole number of at least 1"),
    (lambda: segments.suggest_shoppers(None, "shop", "best"), "kind", "'best'",
     "expected one of ['top propensity', 'biggest spenders', 'segment members']"),
    (lambda: ModelConfig(dropout=1.0), "dropout", "1.0", "expected a number in [0, 1)"),
    (lambda: ModelConfig.from_dict({"hiden_size": 3}), "hiden_size", "['hiden_size']", "known parameters: ["),
    (lambda: targets.CampaignFilters(top_k=0), "top_k", "top_k=0", "must be a whole number of at least 1"),
    (lambda: targets.CampaignFilters(not_seen_days=-2), "not_seen_days", "not_seen_days=-2",
     "expected a number of days >= 0"),
    (lambda: targets.CampaignFilters.from_json('{"top_kk": 5}'), "top_kk", "['top_kk']", "unknown campaign filters"),
    (lambda: targets.split_holdout(pd.DataFrame({"user_id": ["u1"]}), 0.9, seed=0), "holdout", "0.9",
     "is outside 0–0.5"),
    (lambda: exports.render(None, "xls"), "format", "'xls'", "expected one of ['csv'"),
    (lambda: evaluation.accuracy_at_k(["a"], [["a"]], 0), "k", "got 0", "k must be a whole number >= 1"),
    (lambda: evaluation.calibration_table([1, 0], [0.5, 0.5], n_bins=0), "n_bins", "got 0", "n_bins must be >= 1"),
    (lambda: evaluation.roc_auc([1, 0], [0.5]), "p", "got 2 labels and 1 scores", "must have the same length"),
    (lambda: labels.plan_cutoffs(dt.datetime(2024, 1, 1), dt.datetime(2024, 6, 1), 0), "horizon_days", "got 0",
     "horizon_days must be a whole number of days from 1 to"),
    (lambda: baselines.MostPopular().fit(pd.DataFrame({
        "user_id": ["u1"], "event_time": [dt.datetime(2024, 1, 1)], "event_type": ["view"], "item_id": ["i1"],
        "category": ["a"]})).rank_items(["u1"], 0),
     "k", "got 0", "k must be a whole number >= 1"),
]


@pytest.mark.parametrize(("call", "parameter", "found", "expected"), PARAMETER_CASES,
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(PARAMETER_CASES)])
def test_bad_arguments_raise_parameter_errors_that_name_them(call, parameter, found, expected):
    with pytest.raises(ParameterError) as err:
        call()
    message = str(err.value)
    assert err.value.parameter == parameter
    assert parameter in message and found in message and expected in message
    # shown as a message wherever the CLI and the pages catch the common base, never as a column fault
    assert isinstance(err.value, CartsightError) and not isinstance(err.value, SchemaError)


def _pipe_mapping(**changes):
    """The sniffed mapping of a small pipe-separated file (visitorid, datetime, behaviour, itemid), changed."""
    return replace(sniff(FIXTURES / "pipe.csv").mapping, **changes)


def _skipping(tmp_path, lines: int):
    path = tmp_path / "short.csv"
    path.write_text("user_id,event_time,event_type\nu1,2024-01-01 10:00,view\n", encoding="utf-8")
    return lambda: sniff(path, skip_lines=lines)


def _cli_ingest(*flags: str):
    args = cli.build_parser().parse_args(["ingest", str(FIXTURES / "pipe.csv"), "--name", "x", *flags])
    return lambda: cli_data._hand_mapping(args, None)


# (call, parameter named, the message's start): the options of a file's mapping, as the Data page, the CLI and
# a remembered mapping set them, are arguments; none of them is a data column
MAPPING_OPTION_CASES = [
    (lambda _: _pipe_mapping(price_is="cost").validate(), "price_is",
     "price_is 'cost' is not supported: expected one of ['unit_price', "),
    (lambda _: _pipe_mapping(encoding="ebcdic").validate(), "encoding",
     "encoding 'ebcdic' is not supported: expected one of ['utf-8', "),
    (lambda _: _pipe_mapping(delimiter="#").validate(), "delimiter",
     "delimiter '#' is not supported: expected one of [',', "),
    (lambda _: _pipe_mapping(time_format="yyyymmdd").validate(), "time_format",
     "time format 'yyyymmdd' is not supported: expected one of ['iso', "),
    (lambda _: _pipe_mapping(skip_lines=-1).validate(), "skip_lines",
     "skip_lines -1 is not supported: expected a whole number >= 0"),
    (lambda _: _pipe_mapping(compression="zip").validate(), "compression",
     "compression 'zip' is not supported: expected gzip or none"),
    (lambda _: _pipe_mapping(constant_event_type="bought").validate(), "constant_event_type",
     "event type 'bought' is not supported for every row: expected one of ['view', "),
    (lambda _: _pipe_mapping(columns={"colour": "itemid"}).validate(), "columns",
     "'colour' is no field of the event schema: expected one of ['user_id', "),
    (lambda _: with_overrides(_pipe_mapping(), {"colour": "itemid"}), "columns",
     "'colour' is no field of the event schema: expected one of ['user_id', "),
    (lambda _: with_overrides(_pipe_mapping(), {"event_type": "behaviour"}, event_type="view"), "event_type",
     "the event type is set twice, for every row ('view') and from column 'behaviour': expected one of them"),
    (lambda _: with_overrides(_pipe_mapping(), price_is="Cost"), "price_is", "price_is 'cost' is not supported"),
    (lambda tmp: _skipping(tmp, 5)(), "skip_lines",
     "short.csv: no line is left to read after skipping 5 lines; expected the header within the first 2 lines"),
    (lambda _: _cli_ingest("--skip-lines", "two")(), "--skip-lines",
     "--skip-lines 'two': expected a whole number of lines >= 0"),
    (lambda _: _cli_ingest("--map", "user_id")(), "--map", "--map 'user_id': expected FIELD=COLUMN"),
    (lambda _: _cli_ingest("--map", "user_id=a", "--map", "user_id=b")(), "--map",
     "--map 'user_id=b': user_id is already mapped (user_id=a): expected one --map per field"),
    (lambda _: cli._model_config(argparse.Namespace(config="/nonexistent/cfg.json")), "--config",
     "--config /nonexistent/cfg.json: cannot read a JSON object of ModelConfig fields"),
    (lambda _: cli.cmd_score(argparse.Namespace(events=None, dataset=None)), "--dataset",
     "score needs either an EVENTS.csv file or --dataset NAME (not both)"),
]


@pytest.mark.parametrize(("call", "parameter", "start"), MAPPING_OPTION_CASES,
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(MAPPING_OPTION_CASES)])
def test_a_bad_mapping_option_or_flag_is_a_parameter_error(tmp_path, call, parameter, start):
    with pytest.raises(ParameterError) as err:
        call(tmp_path)
    assert err.value.parameter == parameter
    assert str(err.value).startswith(start)
    assert not isinstance(err.value, SchemaError)


def test_ingest_refuses_a_mapping_option_as_a_parameter_on_both_stores(engine):
    with pytest.raises(ParameterError, match=r"^price_is 'cost' is not supported: ") as err:
        ingest_file(engine, FIXTURES / "pipe.csv", "x", mapping=_pipe_mapping(price_is="cost"))
    assert (err.value.parameter, err.value.cases) == ("price_is", ["cost"])


def _write(tmp_path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _zip(tmp_path) -> Path:
    path = tmp_path / "a.csv"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x.csv", "user_id,event_time,event_type\nu1,2024-01-01,view\n")
    return path


def _half_gzip() -> bytes:
    data = gzip.compress(b"user,time,event\nu1,2024-01-01,view\n" * 100)
    return data[: len(data) // 2]


def _unclosed_quote(tmp_path) -> Path:
    rows = [f"u{n},2024-01-01 10:{n:02d}:00,view,i{n},shoe" for n in range(1, 12)]
    rows[4] = rows[4].replace(",shoe", ',"shoe')
    return _write(tmp_path, "quote.csv", "\n".join(["user_id,event_time,event_type,item_id,category", *rows, ""])
                  .encode())


# (what the file is, how it is read, the reason, the column at fault or None, the message's start)
REFUSED_FILES = [
    ("missing", lambda tmp: sniff(tmp / "nope.csv"), "unreadable_file", None, "file '"),
    ("empty", lambda _: sniff(FIXTURES / "empty.csv"), "no_data", None, "empty.csv is empty: nothing could be loaded"),
    ("binary", lambda _: sniff(FIXTURES / "binary.png"), "unreadable_file", None,
     "binary.png looks like a binary file"),
    ("zip", lambda tmp: sniff(_zip(tmp)), "unreadable_file", None, "a.csv is a ZIP archive holding x.csv, not a CSV"),
    ("damaged gzip", lambda tmp: sniff(_write(tmp, "bad.csv.gz", _half_gzip())), "unreadable_file", None,
     "bad.csv.gz: the gzip data is damaged"),
    ("one long line", lambda tmp: sniff(_write(tmp, "wide.csv", ",".join(f"c{i}" for i in range(130_000)).encode())),
     "bad_shape", None, "wide.csv: its first line is longer than"),
    ("mapped column gone", lambda _: _pipe_mapping(columns={"user_id": "nope"}).validate(), "missing_column",
     "user_id", "user_id is mapped to column 'nope', which is not in the file. Columns in file: ['visitorid'"),
]


@pytest.mark.parametrize(("call", "reason", "column", "start"), [r[1:] for r in REFUSED_FILES],
                         ids=[r[0] for r in REFUSED_FILES])
def test_a_refused_file_says_why_in_its_reason_code(tmp_path, call, reason, column, start):
    with pytest.raises(SchemaError) as err:
        call(tmp_path)
    assert (err.value.reason, err.value.column) == (reason, column)
    assert str(err.value).startswith(start)


# (file, reason, column at fault, the message's start) for refusals that only a load finds
REFUSED_LOADS = [
    (lambda _: FIXTURES / "header_only.csv", "no_data", None, "header_only.csv has no data rows (header only?)"),
    (lambda _: FIXTURES / "all_bad.csv", "no_data", None,
     "nothing could be loaded from all_bad.csv: all 2 rows are bad"),
    (lambda _: FIXTURES / "no_user.csv", "missing_column", "user_id", "no user column: expected one of user_id, "),
    (_unclosed_quote, "unreadable_file", None, "quote.csv: line 6 opens a quote (\") that is not closed"),
]


@pytest.mark.parametrize(("build", "reason", "column", "start"), REFUSED_LOADS,
                         ids=["header only", "every row bad", "no user column", "quote left open"])
def test_a_refused_load_says_why_in_its_reason_code_on_both_stores(engine, tmp_path, build, reason, column, start):
    with pytest.raises(SchemaError) as err:
        ingest_file(engine, build(tmp_path), "x")
    assert (err.value.reason, err.value.column) == (reason, column)
    assert str(err.value).startswith(start)


def test_schema_error_reason_defaults_and_is_checked():
    assert SchemaError("x").reason == "invalid_input"
    assert SchemaError("x", column="price", reason="bad_value").reason == "bad_value"
    with pytest.raises(ValueError, match="'misspelt' is not one of"):
        SchemaError("x", reason="misspelt")


def _core_modules() -> list[Path]:
    return sorted((ROOT / "core").rglob("*.py"))


def _schema_error_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "SchemaError":
            yield node


def test_every_schema_error_raised_in_core_names_a_documented_reason():
    missing, unknown = [], []
    for path in _core_modules():
        name = path.relative_to(ROOT).as_posix()
        for call in _schema_error_calls(ast.parse(path.read_text(encoding="utf-8"))):
            reason = next((k.value for k in call.keywords if k.arg == "reason"), None)
            if reason is None:
                missing.append(f"{name}:{call.lineno}")
            elif not (isinstance(reason, ast.Constant) and reason.value in SCHEMA_REASONS):
                unknown.append(f"{name}:{call.lineno} {ast.unparse(reason)}")
    assert missing == [] and unknown == []


def _parameter_names(scope: ast.AST) -> set[str]:
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
        a = scope.args
        return {x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)} - {"self", "cls"}
    return {s.target.id for s in scope.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}


def test_no_schema_error_names_an_argument_as_its_column():
    """A SchemaError's column is a data column; an argument of the raising function (or a field of its
    dataclass) at fault is a ParameterError."""
    found = []
    for path in _core_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        scopes = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        for scope in scopes:
            names = _parameter_names(scope)
            for call in _schema_error_calls(scope):
                column = next((k.value for k in call.keywords if k.arg == "column"), None)
                if isinstance(column, ast.Constant) and column.value in names:
                    found.append(f"{path.relative_to(ROOT).as_posix()}:{call.lineno} column={column.value!r}")
    assert found == []
