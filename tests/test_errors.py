"""The project's errors: a bad argument is a ParameterError, bad data a SchemaError with a reason code."""
from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import campaigns, exports, segments
from core.errors import SCHEMA_REASONS, CartsightError, ParameterError, SchemaError
from core.model import baselines, evaluation, labels
from core.model.config import ModelConfig

ROOT = Path(__file__).resolve().parents[1]
#: Modules being reworked with the ingest path: their SchemaErrors still take the default reason, and the
#: mapping's options (price_is, encoding, delimiter, ...) are still reported as columns there.
INGEST_MODULES = {"core/sniff.py", "core/ingest.py"}


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
    (lambda: campaigns.CampaignFilters(top_k=0), "top_k", "top_k=0", "must be a whole number of at least 1"),
    (lambda: campaigns.CampaignFilters(not_seen_days=-2), "not_seen_days", "not_seen_days=-2",
     "expected a number of days >= 0"),
    (lambda: campaigns.CampaignFilters.from_json('{"top_kk": 5}'), "top_kk", "['top_kk']", "unknown campaign filters"),
    (lambda: campaigns.split_holdout(pd.DataFrame({"user_id": ["u1"]}), 0.9, seed=0), "holdout", "0.9",
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
                if name not in INGEST_MODULES:
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
        if path.relative_to(ROOT).as_posix() in INGEST_MODULES:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        scopes = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        for scope in scopes:
            names = _parameter_names(scope)
            for call in _schema_error_calls(scope):
                column = next((k.value for k in call.keywords if k.arg == "column"), None)
                if isinstance(column, ast.Constant) and column.value in names:
                    found.append(f"{path.relative_to(ROOT).as_posix()}:{call.lineno} column={column.value!r}")
    assert found == []
