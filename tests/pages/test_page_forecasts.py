"""AppTest of the Forecasts page: no model yet, a too-short dataset, the card after training, Train/Cancel.

The datasets come from the simulator (REES46 layout, converted to canonical rows). One is
trained once per module by calling ``core.model.forecast.train`` with a tiny config; the Train
button is exercised on another with ``train`` wrapped to use the same tiny config. The module's
store is built on DuckDB and, for the tests marked ``ON_BOTH_STORES``, on PostgreSQL.
"""
from __future__ import annotations

import contextlib
import csv
import datetime as dt
import functools
import io
import json
import threading

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.charts import forecast as charts
from core import config, store
from core.model import forecast
from core.present import formats, vocabulary
from core.model.config import ModelConfig, PipelineSettings
from core.model.labels import plan_cutoffs
from core.simulate import simulate
from core.simulate.files import to_canonical
from tests.conftest import STORE_KINDS, make_dataset, pg_schema_url
from tests.e2e_support import ROOT, isolated_store, run_until

PAGE = str(ROOT / "pages" / "forecasts.py")
TIMEOUT_S = 120
TRAIN_TIMEOUT_S = 300
TRAINED, FRESH, BUTTON, SHORT = "trained shop", "fresh shop", "button shop", "short shop"
TINY = ModelConfig(hidden_size=16, n_layers=1, n_heads=1, max_len=20, epochs=2, batch_size=64,
                   max_train_examples=128)
TINY_SETTINGS = PipelineSettings(torch_threads=1, chunk_users=500)
LABELS = {
    "model": "Sequence model", "most_popular": "Most popular", "own_most_frequent": "Shopper's own most frequent",
    "markov_chain": "Markov chain (last category → next)",
    "gradient_boosting_rfm": "Gradient boosting on recency/frequency/monetary",
}
HEAD_METRIC = {"propensity": ("roc_auc", True), "next_event_type": ("log_loss", False),
               "next_category": ("accuracy@1", True), "next_items": ("ndcg@10", True)}
VALUE_HEADS = ("expected_revenue", "p_inactive")
VALUE_LABELS = {"propensity_x_spend": "Propensity × spend if they buy (gradient boosting)",
                "gamma_gamma_x_propensity": "Gamma-Gamma purchase value × propensity",
                "past_spend_rate": "Past spend per horizon", "recency": "Recency alone (days since last seen)"}

pytestmark = pytest.mark.slow


def canonical(events: pd.DataFrame) -> list[dict]:
    """The simulator's REES46 rows as canonical event dicts."""
    rows = to_canonical(events).to_dict("records")
    for r in rows:
        r["event_time"] = r["event_time"].to_pydatetime()
    return rows


#: Tests on the DuckDB store and on PostgreSQL (the module's store is built once per kind).
ON_BOTH_STORES = pytest.mark.parametrize("shop", STORE_KINDS, indirect=True)
#: Tests on DuckDB only: the Train button's worker thread costs 10 s more and calls the same
#: ``forecast.train`` that builds the PostgreSQL store's model.
ON_DUCKDB = pytest.mark.parametrize("shop", ["duckdb"], indirect=True)


@pytest.fixture(scope="module")
def shop(request, tmp_path_factory):
    """A store with four datasets; TRAINED has one model version trained with the tiny config.

    The store is DuckDB or (indirect parameter ``"postgres"``) a PostgreSQL schema of its own,
    named by ``CARTSIGHT_DB_URL``; every test names its kinds, so each store is built once.
    """
    mp = pytest.MonkeyPatch()
    try:
        url = isolated_store(mp, tmp_path_factory.mktemp("forecasts_page"))
        with contextlib.ExitStack() as stack:
            if request.param == "postgres":
                url = stack.enter_context(pg_schema_url(request.getfixturevalue("pg_url")))
                mp.setenv(config.DB_URL_ENV, url)
            yield from _shop(url)
    finally:
        mp.undo()  # also when PostgreSQL is skipped or a load fails: the next module starts clean


def _shop(url: str):
    engine = store.make_engine(url)
    try:
        users = {}
        for name, (n_users, weeks, seed) in {TRAINED: (300, 4, 3), FRESH: (100, 3, 4), BUTTON: (120, 3, 5)}.items():
            rows = canonical(simulate(n_users, weeks=weeks, seed=seed).events)
            make_dataset(engine, name, rows)
            users[name] = {r["user_id"] for r in rows}
        t0 = dt.datetime(2024, 3, 1)
        make_dataset(engine, SHORT, [{"user_id": "u", "event_time": t0 + dt.timedelta(days=d), "event_type": "view"}
                                     for d in (0, 1, 2)])
        card = forecast.train(engine, TRAINED, horizon_days=7, config=TINY, settings=TINY_SETTINGS)
        yield {"url": url, "engine": engine, "card": card, "users": users}
    finally:
        engine.dispose()


def _page(dataset: str) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT_S)
    at.session_state["dataset"] = dataset
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown] + [e.value for kind in ("info", "warning", "success", "error")
                                               for e in getattr(at, kind)]


def _frame(at: AppTest, name: str) -> pd.DataFrame:
    """A dataframe by its page key (AppTest does not expose keys of dataframes: they come in page order)."""
    order = [f"forecast_metrics_{h}" for h in HEAD_METRIC] + [f"forecast_value_{h}" for h in VALUE_HEADS] + [
        "forecast_table"]
    frames = list(at.dataframe)
    assert len(frames) == len(order), f"{len(frames)} dataframes on the page"
    return frames[order.index(name)].value


def _winner(metrics: dict, key: str, higher: bool) -> str:
    """The forecast with the best value of ``key``; the model wins ties and unmeasurable heads."""
    scored = {n: m[key] for n, m in metrics.items() if m.get(key) is not None}
    if "model" not in scored:
        return "model"
    best = max(scored.values()) if higher else min(scored.values())
    return "model" if scored["model"] == best else next(n for n, v in scored.items() if v == best)


@ON_BOTH_STORES
def test_before_training_says_no_model_and_offers_train(shop):
    at = _page(FRESH)
    assert "No model yet for this dataset: choose a horizon and press **Train**." in [i.value for i in at.info]
    train = at.button(key="forecast_train")
    assert train.label == "Train" and not train.disabled
    assert at.number_input(key="forecast_horizon").value == config.DEFAULT_HORIZON_DAYS
    ds = store.get_dataset(shop["engine"], FRESH)
    plan = plan_cutoffs(ds["first_event"], ds["last_event"], config.DEFAULT_HORIZON_DAYS)
    assert f"- Held-out test cutoff: {plan.test_cutoff:%Y-%m-%d %H:%M}" in " ".join(_texts(at))
    assert not at.get("plotly_chart") and not [d for d in at.dataframe]


@ON_BOTH_STORES
def test_too_short_data_is_a_message_and_train_is_off(shop):
    at = _page(SHORT)
    assert len(at.error) == 1
    msg = at.error[0].value
    assert "The data spans 2.0 days" in msg and "needs at least 15 days" in msg
    assert "Load a longer history" in msg or "at most" in msg
    assert at.button(key="forecast_train").disabled
    at.number_input(key="forecast_horizon").set_value(1).run()  # 1-day horizon needs 3 days: still too short
    assert "a 1-day horizon needs at least 3 days" in at.error[0].value


@ON_BOTH_STORES
def test_card_after_training(shop, download_content):
    card = shop["card"]
    users = shop["users"][TRAINED]
    at = _page(TRAINED)
    texts = _texts(at)
    assert not any("No model yet" in t for t in texts)
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["Shoppers scored"] == f"{len(users):,}" and card.n_users == len(users)
    assert tiles["Horizon"] == "7 days"
    assert f"Model {card.model_version}" in [s.value for s in at.subheader]

    for head, (key, higher) in HEAD_METRIC.items():
        info = card.heads[head]
        table = _frame(at, f"forecast_metrics_{head}")
        assert table["Forecast"].tolist() == [LABELS[n] for n in info["metrics"]]
        assert table["Forecast"].iloc[0] == "Sequence model" and len(table) >= 2  # the model and its baselines
        assert table.loc[table["In use"] == "✓", "Forecast"].tolist() == [LABELS[info["used"]]]
        # the stored choice is the best forecast on the held-out window, and the page names it
        assert info["used"] == _winner(info["metrics"], key, higher)
        if info["used"] == "model":
            assert any(t.startswith("The sequence model's forecast is used") for t in texts), head
        else:
            mine, theirs = info["metrics"]["model"][key], info["metrics"][info["used"]][key]
            sentence = (f"The model did not beat {LABELS[info['used']]} on the held-out window ({formats.label(key)} {mine:.3f} "
                        f"vs {theirs:.3f}), so {LABELS[info['used']]}'s forecast is used.")
            assert sentence in texts, head
    assert set(_frame(at, "forecast_metrics_next_category")["Forecast"]) == {
        "Sequence model", "Most popular", "Shopper's own most frequent", "Markov chain (last category → next)"}

    # the card's notes are on the page (each head's choice is said in its own section), and a stacked
    # propensity shows the transformer alone beside it
    captions = [c.value for c in at.caption]
    for note in card.notes:
        if not any(note.startswith(f"{head}:") for head in card.heads):
            assert f"• {note}" in captions, note
    alone = card.heads["propensity"].get("transformer_alone")
    if alone:
        assert any(f"The transformer alone, before stacking: ROC-AUC {alone['roc_auc']:.3f}" in c for c in captions)
    prop = card.heads["propensity"]["metrics"]["model"]
    roc_cell = _frame(at, "forecast_metrics_propensity")["ROC-AUC"].iloc[0]
    if prop["measurable"]:
        assert roc_cell == f"{prop['roc_auc']:.3f}"
        charts_drawn = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
        lift = next(c for c in charts_drawn if c["layout"]["title"]["text"].startswith("Lift by decile"))
        assert [round(v, 6) for v in lift["data"][0]["y"]] == [round(r["lift"], 6) for r in card.lift]
        assert list(lift["data"][0]["x"]) == [str(d) for d in range(1, 11)]  # decile order, top decile first
        assert lift["layout"]["xaxis"]["type"] == "category"
    else:
        assert roc_cell == "too few buyers to measure"
        assert any("Too few buyers to measure" in w.value for w in at.warning)

    for head in VALUE_HEADS:  # value and churn: every forecast, the one in use marked, the propensity alone beside
        info = card.value[head]
        table = _frame(at, f"forecast_value_{head}")
        assert len(table) == len(info["metrics"]) + len(info.get("reference", {})) >= 3
        assert table.loc[table["In use"] == "✓", "Forecast"].tolist() == [
            {**LABELS, **VALUE_LABELS}.get(info["used"], info["used"])]
        assert info["note"] in texts
    assert "Purchase propensity alone (a ranking, not an amount)" in set(
        _frame(at, "forecast_value_expected_revenue")["Forecast"])
    assert "Recency alone (days since last seen)" in set(_frame(at, "forecast_value_p_inactive")["Forecast"])

    table = _frame(at, "forecast_table")
    assert len(table) == len(users) and set(table["Shopper"]) == users
    assert table["Chance to buy within 7 days"].is_monotonic_decreasing
    assert table["Expected revenue within 7 days"].notna().all()
    assert table["Chance of no activity within 7 days"].between(0, 100).all()  # shown in percent
    assert any(c.value.startswith(f"Showing {len(users):,} of {len(users):,} shoppers") for c in at.caption)

    preds = forecast.load_predictions(shop["engine"], TRAINED)
    lo = float(preds["purchase_propensity"].median().round(2))
    slider = at.slider(key="forecast_propensity")
    assert (slider.min, slider.max, slider.value) == (0, 100, (0, 100))  # chances are chosen in percent
    slider.set_value((round(lo * 100), 100)).run()
    expected = preds[preds["purchase_propensity"].between(lo, 1.0)]
    shown = _frame(at, "forecast_table")
    assert 0 < len(shown) < len(users) and set(shown["Shopper"]) == set(expected["user_id"])
    top_type = preds["next_event_type"].value_counts().index[0]
    at.multiselect(key="forecast_types").select(top_type).run()
    shown = _frame(at, "forecast_table")
    both = expected[expected["next_event_type"] == top_type]
    assert set(shown["Shopper"]) == set(both["user_id"])
    assert (shown["Likely next step"] == vocabulary.STEP_WORDS[top_type]).all()  # in words: "nothing", not "none"

    button = at.get("download_button")[0]
    content = download_content(button).decode()
    downloaded = pd.read_csv(io.StringIO(content), dtype={"user_id": str})
    assert set(downloaded["user_id"]) == set(both["user_id"])
    assert "reasons" in downloaded.columns and (downloaded["model_version"] == card.model_version).all()
    # the CSV says what the page says: the chance to buy within the horizon, apart from the next step's shares
    assert {"p_buy_within_7d", "next_step", "next_step_p_purchase"} <= set(downloaded.columns)
    assert not {"purchase_propensity", "p_purchase"} & set(downloaded.columns)


@ON_BOTH_STORES
def test_card_opens_with_a_headline_and_a_verdict_then_folds_the_details(shop):
    """A marketer reads first how the top 10 % bought beside the RFM baseline, then a verdict with its thresholds;
    ROC-AUC, NDCG and the blend weights are folded in an expander below."""
    card = shop["card"]
    at = _page(TRAINED)
    lifts = card.top_decile_lifts()
    used = card.heads["propensity"]["used"]
    headline = at.markdown[[m.value for m in at.markdown].index(f"**{card.headline()}**")]
    if used in lifts:
        assert f"bought {lifts[used]:.1f}× as often as average in the held-out 7-day window" in headline.value
        assert lifts[used] == pytest.approx(card.lift[0]["lift"])
        other = next(n for n in lifts if n != used)
        assert f"{lifts[other]:.1f}×" in headline.value
    word, sentence = card.verdict()
    boxes = {"strong": at.success, "useful": at.info, "weak": at.warning, "not measured": at.info}[word]
    assert sentence in [b.value for b in boxes]
    assert f"at least {config.VERDICT_STRONG_LIFT:g}×" in sentence and f"from {config.VERDICT_USEFUL_LIFT:g}×" in sentence
    expander = next(e for e in at.expander if e.label.startswith("Details for analysts"))
    folded = [m.value for m in expander.markdown]
    assert "#### Quality on the held-out window, beside the baselines" in folded
    value_tables = sum(1 for info in card.value.values() if info["metrics"])  # value and churn, folded too
    assert len(expander.dataframe) == len(HEAD_METRIC) + value_tables  # every head's metrics table is folded


@ON_DUCKDB
def test_train_button_trains_in_background_and_shows_the_card(shop, monkeypatch):
    monkeypatch.setattr(forecast, "train", functools.partial(forecast.train, config=TINY, settings=TINY_SETTINGS))
    at = _page(BUTTON)
    at.number_input(key="forecast_horizon").set_value(3).run()
    at.button(key="forecast_train").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run_until(at, lambda: bool(at.success) or bool(at.error), TRAIN_TIMEOUT_S)
    assert not at.error, at.error[0].value
    cards = forecast.list_models(shop["engine"], BUTTON)
    assert len(cards) == 1 and cards[0].horizon_days == 3
    assert at.success[0].value.startswith(f"Trained model {cards[0].model_version} in ")
    assert at.success[0].value.endswith("(horizon 3 days).")
    table = _frame(at, "forecast_table")
    assert set(table["Shopper"]) == shop["users"][BUTTON]
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert "Loss curve" in titles and not at.get("progress")  # the live view is gone, the card's curve is drawn
    assert at.button(key="forecast_train").disabled is False


@ON_BOTH_STORES
def test_cancel_writes_nothing(shop, monkeypatch):
    real = forecast.train
    reached = threading.Event()

    def held_train(engine, dataset, horizon_days=7, config=None, progress=None, should_stop=None, seed=0):
        def hold(report):
            progress(report)
            reached.set()
            for _ in range(TIMEOUT_S * 10):  # wait for the Cancel click, then let train see it
                if should_stop():
                    return
                threading.Event().wait(0.1)

        return real(engine, dataset, horizon_days, TINY, hold, should_stop, seed, settings=TINY_SETTINGS)

    monkeypatch.setattr(forecast, "train", held_train)
    at = _page(FRESH)
    at.button(key="forecast_train").click().run()
    assert reached.wait(TIMEOUT_S)
    at.run()
    assert at.get("progress"), "the progress bar is shown while training"
    assert at.button(key="forecast_train").disabled
    at.button(key="forecast_cancel").click().run()
    run_until(at, lambda: any(i.value == "Cancelled, nothing was saved." for i in at.info), TIMEOUT_S)
    assert forecast.list_models(shop["engine"], FRESH) == []
    did = store.get_dataset(shop["engine"], FRESH)["dataset_id"]
    folder = config.models_dir() / str(did)
    assert not folder.exists() or not any(folder.iterdir())  # no half-written version folder
    assert "No model yet for this dataset: choose a horizon and press **Train**." in [i.value for i in at.info]
    assert not at.button(key="forecast_train").disabled


def test_charts_have_labelled_axes_and_references():
    lift = [{"decile": 1, "n": 2, "buyers": 2, "rate": 1.0, "lift": 5.0, "cum_share": 0.5, "cum_gain": 0.8},
            {"decile": 2, "n": 2, "buyers": 0, "rate": 0.0, "lift": 0.0, "cum_share": 1.0, "cum_gain": 1.0}]
    fig = charts.lift_chart(lift[::-1]).to_dict()  # in any order, drawn in decile order as categories
    assert list(fig["data"][0]["x"]) == ["1", "2"] and fig["layout"]["xaxis"]["type"] == "category"
    assert fig["layout"]["xaxis"]["title"]["text"] == "Score decile (1 = top 10 % of forecasts)"
    assert fig["layout"]["yaxis"]["title"]["text"] == "Lift (× the overall purchase rate)"
    assert list(fig["data"][0]["y"]) == [5.0, 0.0]
    assert fig["layout"]["shapes"][0]["y0"] == 1.0  # the no-model line
    gain = charts.gain_chart(lift).to_dict()
    assert list(gain["data"][1]["x"]) == [0.0, 50.0, 100.0] and list(gain["data"][1]["y"]) == [0.0, 80.0, 100.0]
    assert list(gain["data"][0]["y"]) == [0, 100]  # random-order diagonal
    cal = charts.calibration_chart([{"mean_predicted": 0.1, "observed_rate": 0.2, "n": 10}]).to_dict()
    assert cal["data"][0]["name"] == "perfectly calibrated" and list(cal["data"][0]["x"]) == [0, 100.0]
    assert cal["layout"]["xaxis"]["title"]["text"] == "Forecast purchase probability (%)"
    assert list(cal["data"][1]["y"]) == [20.0]
    loss = charts.loss_chart([{"step": 5, "train_loss": 2.0, "valid_loss": None},
                              {"step": 10, "train_loss": 1.5, "valid_loss": 1.7}]).to_dict()
    assert [t["name"] for t in loss["data"]] == ["training loss", "validation loss"]
    assert list(loss["data"][1]["x"]) == [10]
    bars = charts.metrics_chart({"model": {"roc_auc": 0.7}, "b": {"roc_auc": 0.8}, "c": {"roc_auc": None}},
                                "roc_auc", "b").to_dict()
    assert list(bars["data"][0]["y"]) == ["model", "b"] and list(bars["data"][0]["x"]) == [0.7, 0.8]
    assert bars["layout"]["xaxis"]["title"]["text"] == "ROC-AUC (0.5 = random, 1 = perfect)"
    assert list(bars["data"][0]["marker"]["color"]) == [charts.OTHER_COLOUR, charts.USED_COLOUR]


def _stored_version(shop, name: str, version: str, users: list[str], row) -> None:
    """A dataset ``name`` of ``users`` (one view each) and a ready version whose forecasts are ``row(i, user)``'s,
    its card copied from the trained one."""
    engine = shop["engine"]
    did = make_dataset(engine, name, [{"user_id": u, "event_time": dt.datetime(2024, 3, 1), "event_type": "view"}
                                      for u in users])
    card = {**shop["card"].to_dict(), "model_version": version, "dataset": name, "dataset_id": did}
    with engine.begin() as conn:
        conn.execute(store.models.insert().values(
            model_version=version, dataset_id=did, created_at=dt.datetime(2024, 3, 2), horizon_days=7,
            path="/nowhere", config_json="{}", metrics_json=json.dumps(card), status="ready"))
        conn.execute(store.predictions.insert(), [{
            "dataset_id": did, "model_version": version, "user_id": u, "next_event_type": "view", "p_view": 0.5,
            "p_cart": 0.1, "p_purchase": 0.2, "p_remove": 0.0, "p_none": 0.2, "next_category_p": 0.4, **row(i, u)}
            for i, u in enumerate(users)])


@ON_BOTH_STORES
def test_forecast_download_escapes_formula_cells(shop, download_content):
    """A version whose shoppers, categories and items are formula-like (its card copied from the trained one)."""
    from core.present.safecsv import escape_cell

    name, version = "formula shop", "formulas-v1"
    users = ['=HYPERLINK("http://x")', "+1", "-1+2", "@SUM(A1)", "\tx", "\rx", "-3", "-0.25", "+4420"]
    _stored_version(shop, name, version, users, lambda i, u: {
        "purchase_propensity": 0.9 - i / 20, "next_category": ["=1+1", "@SUM(A1)", "\tshoes", "-0.25"][i % 4],
        "top_items": ["+1 -2", "-1+2 3", "=cmd|' /C calc'!A0", "\r4"][i % 4], "reasons": "viewed =1+1"})
    at = _page(name)
    button = at.get("download_button")[0]
    content = download_content(button).decode()
    rows = list(csv.DictReader(io.StringIO(content, newline="")))
    assert [r["user_id"] for r in rows] == [escape_cell(u) for u in users]
    assert rows[0]["user_id"] == '\'=HYPERLINK("http://x")' and [r["user_id"] for r in rows[-3:]] == ["-3", "-0.25",
                                                                                                     "+4420"]
    assert [r["next_category"] for r in rows[:4]] == ["'=1+1", "'@SUM(A1)", "'\tshoes", "-0.25"]
    assert [r["top_items"] for r in rows[:4]] == ["'+1 -2", "'-1+2 3", "'=cmd|' /C calc'!A0", "'\r4"]
    assert {r["reasons"] for r in rows} == {"viewed =1+1"} and rows[0]["p_buy_within_7d"] == "0.9"


@ON_BOTH_STORES
def test_the_table_shows_the_first_forecasts_and_the_download_every_match_up_to_its_cap(shop, download_content,
                                                                                         monkeypatch):
    """The filters run in the store: the table holds the first rows by chance to buy, the caption counts every
    match, the download holds the matches up to its own cap and says so, read only when clicked; a dataset of
    millions never comes whole."""
    users = [f"s{i:02d}" for i in range(12)]
    _stored_version(shop, "big shop", "big-v1", users, lambda i, u: {
        "purchase_propensity": [0.9, 0.8, 0.8, 0.7, 0.6, 0.5, 0.4, 0.4, 0.3, 0.2, 0.1, 0.05][i],
        "next_event_type": "cart" if i % 3 == 0 else "view", "next_category": ["shoes", "bags"][i % 2]})
    monkeypatch.setattr(config, "FORECAST_TABLE_ROWS", 5)
    monkeypatch.setattr(config, "FORECAST_DOWNLOAD_ROWS", 8)
    at = _page("big shop")
    table = _frame(at, "forecast_table")
    assert table["Shopper"].tolist() == ["s00", "s01", "s02", "s03", "s04"]  # a tie at 80 % by shopper id
    assert any(c.value.startswith("Showing the first 5 of 12 matching shoppers (12 in all)") for c in at.caption)
    button = at.get("download_button")[0]
    assert button.proto.label == "Download the first 8 of these forecasts (CSV)"
    assert button.proto.deferred_file_id  # more than the table: read and written only when clicked
    rows = list(csv.DictReader(io.StringIO(download_content(button).decode(), newline="")))
    assert [r["user_id"] for r in rows] == users[:8]
    assert at.multiselect(key="forecast_categories").options == ["bags", "shoes"]
    at.multiselect(key="forecast_types").select("cart").run()
    assert _frame(at, "forecast_table")["Shopper"].tolist() == ["s00", "s03", "s06", "s09"]
    assert any(c.value.startswith("Showing 4 of 12 shoppers") for c in at.caption)
    at.slider(key="forecast_propensity").set_value((40, 100)).run()
    at.multiselect(key="forecast_categories").select("shoes").run()
    assert _frame(at, "forecast_table")["Shopper"].tolist() == ["s00", "s06"]  # 0.4 kept: the range is closed
    button = at.get("download_button")[0]
    assert button.proto.label == "Download these forecasts (CSV)"
    assert not button.proto.deferred_file_id  # the table's rows, in hand
    rows = list(csv.DictReader(io.StringIO(download_content(button).decode(), newline="")))
    assert [r["user_id"] for r in rows] == ["s00", "s06"]


@ON_BOTH_STORES
def test_every_page_that_waits_for_forecasts_says_training_while_a_model_trains(shop):
    """While a training job for a dataset without a model runs, Forecasts, Shopper, Campaigns and Segments say
    "Training… forecasts will appear here" where they would otherwise say to press Train; once it ends they don't."""
    from core import jobs
    from core.analysis import segments
    from core.errors import TrainingCancelled

    engine = shop["engine"]
    did = store.get_dataset(engine, FRESH)["dataset_id"]
    segments.run_segmentation(engine, FRESH, 2)
    release = threading.Event()

    def held(_job):  # a training that ends cancelled once released: no model is written
        release.wait(TIMEOUT_S)
        raise TrainingCancelled("cancelled")

    job = jobs.Job(held, cancelled_by=TrainingCancelled,
                   inputs={"dataset": FRESH, "horizon_days": 7, "estimate_s": 600.0})
    assert jobs.training_board().start((store.resolve_url(), did), job)
    pages = {name: str(ROOT / "pages" / f"{name}.py") for name in ("forecasts", "shopper", "campaigns", "segments")}

    def opened(name: str, user_id: str | None = None) -> AppTest:
        at = AppTest.from_file(pages[name], default_timeout=TIMEOUT_S)
        at.session_state["dataset"] = FRESH
        if user_id is not None:
            at.session_state["shopper_id"] = user_id
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    def texts(name: str, user_id: str | None = None) -> str:
        at = opened(name, user_id)
        return " ".join(_texts(at) + [c.value for c in at.caption])

    user = sorted(shop["users"][FRESH])[0]
    try:
        for name in pages:
            assert config.TRAINING_TEXT in texts(name), name
        shown = texts("shopper", user)
        assert shown.count(config.TRAINING_TEXT) == 2 and "train a model on the Forecasts page" not in shown
        assert "press **Train**" not in texts("forecasts")
        # nothing reported yet: the time left is the estimate less the time spent (10 minutes, rounded up)
        progress = opened("forecasts").get("progress")
        assert len(progress) == 1 and progress[0].proto.text.endswith(", about 10 min left)")
    finally:
        release.set()
        job.join(TIMEOUT_S)
    assert "No model yet for this dataset: choose a horizon and press **Train**." in texts("forecasts")
    assert all(config.TRAINING_TEXT not in texts(name) for name in pages)


@ON_BOTH_STORES
def test_forecasts_page_states_how_long_training_will_take(shop):
    """Before Train is pressed the page says how long training this dataset takes, from its shoppers and events."""
    from core.model import train_estimate
    from core.model.config import ModelConfig

    ds = store.get_dataset(shop["engine"], FRESH)
    at = _page(FRESH)
    expected = train_estimate.describe_seconds(train_estimate.estimate_training_seconds(
        ds["n_users"], ds["rows_loaded"], ModelConfig().max_train_users))
    shown = [c.value for c in at.caption if c.value.startswith("Training and scoring this dataset")]
    assert shown == [f"Training and scoring this dataset ({ds['n_users']:,} shoppers, {ds['rows_loaded']:,} events) "
                     f"takes {expected} on this machine; the page stays usable meanwhile."]


@ON_BOTH_STORES
def test_a_model_trained_before_an_append_is_marked_as_built_on_older_data(shop, tmp_path):
    """A version (its card copied from the trained one) of a dataset that a file is added to after its training."""
    from core.ingest.load import ingest_file

    engine, name, version = shop["engine"], "growing shop", "growing-v1"
    did = make_dataset(engine, name, [{"user_id": u, "event_time": dt.datetime(2024, 3, 1, h), "event_type": "view"}
                                      for h, u in enumerate(["a", "b"])])
    card = {**shop["card"].to_dict(), "model_version": version, "dataset": name, "dataset_id": did}
    with engine.begin() as conn:
        conn.execute(store.models.insert().values(
            model_version=version, dataset_id=did, created_at=dt.datetime(2024, 3, 2), horizon_days=7,
            path="/nowhere", config_json="{}", metrics_json=json.dumps(card), status="ready"))
    assert not [w.value for w in _page(name).warning if "added since" in w.value]
    week = tmp_path / "week.csv"
    week.write_text("user_id,event_time,event_type\nc,2024-03-08 10:00:00,view\nd,2024-03-08 11:00:00,view\n"
                    "a,2024-03-01 00:00:00,view\n")  # the last line is an event the dataset holds: not added
    ingest_file(engine, week, name, append=True)
    notes = [w.value.replace("\\", "") for w in _page(name).warning if "added since" in w.value]
    assert notes == ["Built on the data up to 2024-03-01 01:00; 2 events were added since: rescore with this model "
                     "or retrain to include them."]
    at = _page(name)
    assert at.button(key="forecast_rescore").label == "Rescore with the current model"
    assert at.button(key="forecast_retrain").label == "Retrain on all data"
