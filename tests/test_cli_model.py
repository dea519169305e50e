"""train, score (both forms), segment and export from the command line, on a small simulated shop."""
import json

import pandas as pd
import pytest

from core import cli, simulate
from core.simulate import files
from tests.conftest import write_simulated_shop

#: The score CSV's header for a 7-day model: the same words as the pages ("chance to buy within 7 days",
#: "likely next step" and its shares), not the store's column names.
PREDICTION_COLUMNS = [
    "user_id", "p_buy_within_7d", "next_step", "next_step_p_view", "next_step_p_cart", "next_step_p_purchase",
    "next_step_p_remove", "next_step_p_none", "next_category", "next_category_p", "top_items", "reasons",
    "expected_revenue", "p_inactive", "model_version",
]
SHARES = ["next_step_p_view", "next_step_p_cart", "next_step_p_purchase", "next_step_p_remove", "next_step_p_none"]
#: the ``--config`` file: the tiny model's hyperparameters and its run settings (chunk_users, torch_threads) together
TINY = dict(max_len=20, hidden_size=16, n_layers=1, n_heads=2, epochs=2, min_train_steps=30, batch_size=64,
            max_train_examples=3000, chunk_users=150, torch_threads=1, n_train_cutoffs=2, item_vocab_cap=500)


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    files = write_simulated_shop(tmp_path_factory.mktemp("cli-model"), 200, 6, 3, {"tiny": TINY})
    return {**files, "config": files["tiny"]}


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, err


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CARTSIGHT_HOME", str(tmp_path / "home"))


@pytest.mark.slow
def test_one_shot_score_writes_every_shopper(capsys, shop, tmp_path):
    out_csv = tmp_path / "scores.csv"
    run(capsys, "score", shop["events"], "--out", out_csv, "--config", shop["config"], "--quiet")
    frame = pd.read_csv(out_csv, dtype={"user_id": str})
    assert list(frame.columns[: len(PREDICTION_COLUMNS)]) == PREDICTION_COLUMNS
    assert len(frame) == shop["users"] and frame["user_id"].is_unique
    assert frame["p_buy_within_7d"].between(0, 1).all()
    probs = frame[SHARES].sum(axis=1)
    assert probs.round(4).eq(1).all()
    assert frame["model_version"].nunique() == 1
    assert frame["expected_revenue"].notna().all() and (frame["expected_revenue"] >= 0).all()
    assert frame["expected_revenue"].gt(0).any() and frame["p_inactive"].between(0, 1).all()


@pytest.mark.slow
def test_train_score_segment_export_on_a_dataset(capsys, shop, tmp_path):
    db = f"duckdb:///{tmp_path / 'cli.duckdb'}"
    run(capsys, "ingest", shop["events"], "--name", "shop", "--db", db, "--quiet")

    out, _ = run(capsys, "train", "--dataset", "shop", "--db", db, "--config", shop["config"], "--json")
    card = json.loads(out)
    assert card["dataset"] == "shop" and card["horizon_days"] == 7
    assert set(card["heads"]) == {"propensity", "next_event_type", "next_category", "next_items"}
    for head in card["heads"].values():
        assert head["used"] in head["metrics"]  # the forecast in use is one that was measured

    scores = tmp_path / "scores.csv"
    _, err = run(capsys, "score", "--dataset", "shop", "--db", db, "--out", scores)
    frame = pd.read_csv(scores, dtype={"user_id": str})
    assert len(frame) == shop["users"] and set(frame["model_version"]) == {card["model_version"]}
    assert list(frame.columns[: len(PREDICTION_COLUMNS)]) == PREDICTION_COLUMNS
    # the next category's chance is filled whichever forecast names the category
    assert frame["next_category_p"].notna().all() and frame["next_category_p"].between(0, 1).all()
    n = f"{shop['users']:,}"
    assert f"[  0%] scoring: scoring {n} shoppers" in err  # a re-score shows its progress
    assert f"[100%] scoring: scored {n} of {n} shoppers" in err

    segments_csv = tmp_path / "segments.csv"
    out, _ = run(capsys, "segment", "--dataset", "shop", "--db", db, "--k", "3", "--out", segments_csv)
    seg = pd.read_csv(segments_csv, dtype={"user_id": str})
    assert len(seg) == shop["users"] and seg["segment"].nunique() == 3
    assert {"user_id", "segment", "segment_name", "recency_days"} <= set(seg.columns)
    assert all(name in out for name in seg["segment_name"].unique())

    export_csv = tmp_path / "targets.csv"
    out, _ = run(capsys, "export", "--dataset", "shop", "--db", db, "--top-percent", "20", "--holdout", "0.1",
                 "--format", "csv", "--out", export_csv, "--json")
    counts = json.loads(out)
    targets = pd.read_csv(export_csv, dtype={"user_id": str})
    assert counts["matched"] == round(0.2 * shop["users"])
    assert len(targets) == counts["exported"] == counts["matched"] - counts["holdout"]
    top = frame.sort_values("p_buy_within_7d", ascending=False)["p_buy_within_7d"].iloc[counts["matched"] - 1]
    assert (targets["propensity"] >= top - 1e-9).all()


def test_bad_model_config_is_a_clear_error(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hidden_size": 15, "n_heads": 2}))
    code = cli.main(["train", "--dataset", "x", "--db", f"duckdb:///{tmp_path / 'x.duckdb'}", "--config", str(bad)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "hidden_size" in err


# --- files written from hostile data --------------------------------------------------------------------------

#: Shopper ids a spreadsheet would run, and ids that are numbers (kept as they are).
FORMULA_IDS = ['=HYPERLINK("http://x")', "+1", "-1+2", "@SUM(A1)", "\tx", "\rx"]
NUMBER_IDS = ["-3", "-0.25", "+4420"]
CATEGORY_FORMS = ('=HYPERLINK("http://x/{}")', "+{}", "-1+{}", "@SUM({})", "\t{}", "\r{}")
ITEM_FORMS = ("={}", "+x{}", "-x{}", "@{}", "\t{}", "\r{}")


def _hostile_shop(engine, name: str) -> pd.DataFrame:
    """A simulated shop whose first shoppers, every category and every item are formula-like; loaded as ``name``."""
    import sqlalchemy as sa

    from core import store
    from core.store import derived
    from tests.conftest import make_dataset

    frame = files.to_canonical(simulate.simulate(n_users=120, weeks=5, seed=7).events)
    users = sorted(frame["user_id"].unique())
    frame["user_id"] = frame["user_id"].map(dict(zip(users, FORMULA_IDS + NUMBER_IDS))).fillna(frame["user_id"])
    for col, forms in (("category", CATEGORY_FORMS), ("item_id", ITEM_FORMS)):
        values = sorted(frame[col].dropna().unique())
        frame[col] = frame[col].map({v: forms[i % len(forms)].format(v) for i, v in enumerate(values)})
    frame = frame.assign(quantity=pd.array([None] * len(frame), dtype="Int64"))
    did = make_dataset(engine, name, [])
    with engine.begin() as conn:
        store.bulk_insert(conn, store.stored_events, frame.assign(dataset_id=did))
        derived.derive_dataset(conn, did)
        conn.execute(sa.update(store.datasets).where(store.datasets.c.dataset_id == did).values(
            n_users=frame["user_id"].nunique(), rows_loaded=len(frame), rows_read=len(frame),
            first_event=frame["event_time"].min().to_pydatetime(),
            last_event=frame["event_time"].max().to_pydatetime()))
    return frame


def _csv_cells(path) -> list[dict]:
    import csv

    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_score_and_segment_files_carry_no_live_formula(capsys, shop, engine, tmp_path):
    from core.present.safecsv import escape_cell

    frame = _hostile_shop(engine, "hostile")
    db = engine.url.render_as_string(hide_password=False)
    run(capsys, "score", "--dataset", "hostile", "--db", db, "--config", shop["config"], "--quiet",
        "--out", tmp_path / "scores.csv")
    run(capsys, "segment", "--dataset", "hostile", "--db", db, "--k", "2", "--out", tmp_path / "segments.csv")
    expected_ids = {escape_cell(u) for u in frame["user_id"].unique()}
    assert {'\'=HYPERLINK("http://x")', "'+1", "'-1+2", "'@SUM(A1)", "'\tx", "'\rx", "-3", "-0.25", "+4420"} \
        <= expected_ids
    for name in ("scores.csv", "segments.csv"):
        rows = _csv_cells(tmp_path / name)
        assert {r["user_id"] for r in rows} == expected_ids and len(rows) == len(expected_ids), name  # no row split
        live = [(r["user_id"], k, v) for r in rows for k, v in r.items() if escape_cell(v) != v]
        assert live == [], f"{name}: cells a spreadsheet would run"
    scores = _csv_cells(tmp_path / "scores.csv")
    categories = [r["next_category"] for r in scores if r["next_category"]]
    items = [r["top_items"] for r in scores if r["top_items"]]
    assert categories and all(c.startswith("'") for c in categories)  # every category is formula-like
    assert items and all(i.startswith("'") for i in items)
    assert all(float(r["p_buy_within_7d"]) >= 0 for r in scores)  # numbers are still numbers
