"""Uplift: the Qini numbers by hand, simulated campaigns with an effect on one group of shoppers (and none),
refusals, the stored estimates ranking and filtering target lists, and the export's ranking, on both stores."""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from core import cli, config, store
from core.campaigns import exports, uplift
from core.campaigns.targets import CampaignFilters, build_target_list, count_matches
from core.errors import CartsightError, NotFittedError, ParameterError
from core.model.rfm_baseline import rfm_features
from tests.campaigns.test_campaigns import END, N, make_shop, uid
from tests.conftest import add_events, make_dataset, simulated_events

# --- the Qini numbers by hand ---------------------------------------------------------------------------

# four shoppers, best first: exported buyer, held-out non-buyer, exported non-buyer, held-out buyer
TREATED, CONVERTED = np.array([1, 0, 1, 0]), np.array([1, 0, 0, 1])


def test_qini_curve_and_coefficient_by_hand():
    # top 1: 1 buyer of 1 exported, nobody held out: 1; top 2: 1 − 0 × 1/1 = 1; top 3: 1 − 0 × 2/1 = 1;
    # all: 1 − 1 × 2/2 = 0. Area above the random line (to 0): (1 + 1 + 1 + 0) / 4²
    curve = uplift.qini_curve(np.array([4.0, 3.0, 2.0, 1.0]), TREATED, CONVERTED)
    assert curve["share"].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert curve["incremental"].tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    assert uplift.qini_coefficient(np.array([4.0, 3.0, 2.0, 1.0]), TREATED, CONVERTED) == pytest.approx(3 / 16)
    # the reverse order: top 1 the held-out buyer, 0 exported: 0; top 2: 0 − 1 × 1/1 = −1; top 3: 0 − 1 × 1/2;
    # all: 0 again
    reverse = np.array([1.0, 2.0, 3.0, 4.0])
    assert uplift.qini_curve(reverse, TREATED, CONVERTED)["incremental"].tolist() == [0.0, 0.0, -1.0, -0.5, 0.0]
    assert uplift.qini_coefficient(reverse, TREATED, CONVERTED) == pytest.approx(-1.5 / 16)


def test_compare_rankings_and_the_verdict_words():
    rng = np.random.default_rng(3)
    n = 4000
    treated = rng.integers(0, 2, n)
    group = rng.random(n) < 0.5  # the campaign moves only this half: +20 points
    converted = (rng.random(n) < 0.1 + 0.2 * (treated * group)).astype(int)
    q = uplift.compare_rankings({"uplift": group + rng.random(n) * 0.1, "propensity": rng.random(n)},
                                treated, converted)
    assert q["uplift"]["ci_low"] > 0 and q["uplift - propensity"]["ci_low"] > 0
    assert q["propensity"]["ci_low"] < 0 < q["propensity"]["ci_high"]
    assert uplift.verdict(q) == uplift.VERDICT_BETTER
    assert uplift.verdict({"uplift": q["propensity"]}) == uplift.VERDICT_NONE
    tied = {"uplift": q["uplift"], "uplift - propensity": {"difference": 0.0, "ci_low": -0.01, "ci_high": 0.01}}
    assert uplift.verdict(tied) == uplift.VERDICT_RANDOM_ONLY
    assert uplift.verdict({"uplift": q["uplift"]}) == uplift.VERDICT_RANDOM_NO_PROPENSITY
    # an interval above zero is not enough when the randomisation test does not agree
    assert uplift.verdict({**q, "uplift": {**q["uplift"], "p_value": 0.1}}) == uplift.VERDICT_NONE
    assert uplift.verdict({**q, "uplift": {**q["uplift"], "p_value": 0.05}}) == uplift.VERDICT_BETTER


def test_the_randomisation_test_refits_on_shuffled_labels():
    rng = np.random.default_rng(5)
    n = 1200
    x = rng.normal(size=(n, 2))
    treated = rng.permutation(np.repeat([0, 1], n // 2))
    moved = x[:, 0] > 0  # the campaign moves half the shoppers: +40 points
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "treated": treated,
                          "converted": (rng.random(n) < 0.15 + 0.4 * treated * moved).astype(int)})
    estimates, folds = uplift.cross_fitted(frame, ["a", "b"])
    observed = uplift.compare_rankings({"uplift": estimates}, treated, frame["converted"], folds)["uplift"]["qini"]
    nulls = uplift.null_qinis(frame, ["a", "b"])  # one set of shuffled campaigns, for both questions
    assert len(nulls) == config.UPLIFT_PERMUTATIONS == 19
    # no shuffled campaign comes near: the smallest p-value 19 shuffles can give
    assert uplift.p_value_among(observed, nulls) == pytest.approx(0.05)
    # a coefficient of zero is reached by about half of them
    assert 0.2 < uplift.p_value_among(0.0, nulls) < 0.8


def test_the_learner_refuses_use_before_fit_and_a_group_without_buyers():
    with pytest.raises(NotFittedError, match="TwoModelUplift is not fitted yet"):
        uplift.TwoModelUplift().predict(np.zeros((2, 3)))
    with pytest.raises(CartsightError, match="The held out shoppers of this fold are 2, of whom 0 bought"):
        uplift.TwoModelUplift().fit(np.zeros((4, 1)), np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))


# --- simulated campaigns --------------------------------------------------------------------------------

SIM_USERS, WINDOW_DAYS = 4000, 14
#: in the campaign's group (shoppers whose mean viewed price is above the median), the chance that an exported
#: shopper who would not have bought buys because of the campaign; nobody else is moved
GROUP_EFFECT = 0.3


def uplift_campaign(engine, seed: int, effect: float, holdout: float = 0.5) -> dict:
    """Weeks 1-8 of simulated shoppers with a stand-in propensity (from recency and visits) as model "m1", a list
    of everyone exported with a ``holdout`` share, weeks 9-10 added, and in the window one more purchase for
    ``effect`` of the exported shoppers of the affected group who would not have bought (none for the others).

    Returns the export id, the affected group (user ids) and the shoppers the campaign made buy."""
    events = simulated_events(SIM_USERS, 10, seed)
    cutoff = events["event_time"].min().normalize() + pd.Timedelta(weeks=8)
    before = events[events["event_time"] < cutoff]
    did = make_dataset(engine, "sim", [])
    add_events(engine, "sim", before)
    feats = rfm_features(before, before["event_time"].max() + pd.Timedelta(microseconds=1))
    score = 1 / (1 + np.exp(-(0.8 * np.log1p(feats["frequency"]) - feats["recency_days"] / 5 - 1.5)))
    with engine.begin() as conn:
        conn.execute(store.models.insert().values(
            model_version="m1", dataset_id=did, created_at=dt.datetime(2024, 3, 1), horizon_days=WINDOW_DAYS,
            path="/nowhere", config_json="{}", metrics_json="{}", status="ready"))
        store.bulk_insert(conn, store.predictions, pd.DataFrame({
            "dataset_id": did, "model_version": "m1", "user_id": feats.index.astype(str),
            "purchase_propensity": score.to_numpy()}))
    store.analyze(engine, store.predictions, store.models)  # as a scoring run does after its commit
    built = build_target_list(engine, "sim", CampaignFilters(), holdout_share=holdout, seed=seed)
    export_id = exports.save_export(engine, built, "csv")["export_id"]
    affected = set(feats.index[feats["mean_price"] > feats["mean_price"].median()])
    later = events[events["event_time"] >= cutoff]
    window = later[(later["event_time"] > built.as_of)
                   & (later["event_time"] < built.as_of + pd.Timedelta(days=WINDOW_DAYS))]
    natural = set(window.loc[window["event_type"] == "purchase", "user_id"])
    rng = np.random.default_rng(seed)
    made = [u for u in sorted(built.targets["user_id"]) if u in affected and u not in natural
            and rng.random() < effect]
    extra = pd.DataFrame({"user_id": made, "event_type": "purchase", "item_id": "campaign-item",
                          "event_time": built.as_of + pd.to_timedelta(rng.integers(3600, 13 * 86400, len(made)),
                                                                      unit="s"),
                          "category": "campaign", "brand": None, "price": 25.0,
                          "session_id": [f"campaign-{u}" for u in made]})
    add_events(engine, "sim", pd.concat([later, extra], ignore_index=True))
    return {"export_id": export_id, "affected": affected, "made": made}


def without_refits(monkeypatch) -> None:
    """Stand shuffled campaigns of Qini zero in for the randomisation test's 19 refits (six sevenths of an uplift
    fit's models), for a test of what is around the statistics: the effect test checks them on every store, and
    the randomisation test the shuffling itself."""
    monkeypatch.setattr(uplift, "null_qinis", lambda frame, names, seed=0, permutations=19: np.zeros(permutations))


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv(config.HOME_ENV, str(tmp_path / "home"))


def _stored(engine, run_id: int) -> pd.Series:
    u = store.uplift.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(u.user_id, u.uplift).where(u.run_id == run_id)).all()
    return pd.Series({r[0]: r[1] for r in rows}, dtype=float)


@pytest.mark.slow
def test_an_effect_on_one_group_is_found_and_beats_ranking_by_propensity(engine, home):
    sim = uplift_campaign(engine, seed=31, effect=GROUP_EFFECT)
    fit = uplift.fit_uplift(engine, "sim", sim["export_id"], days=WINDOW_DAYS)
    report = fit.report
    assert (report["treated"], report["holdout"]) == (1967, 1967) and len(sim["made"]) > 150
    assert report["qini"]["uplift"]["ci_low"] > 0  # beats random targeting
    assert report["qini"]["uplift"]["p_value"] == pytest.approx(0.05)  # above all 19 re-randomised campaigns
    assert report["qini"]["uplift - propensity"]["ci_low"] > 0  # and ranking by chance to buy
    assert report["verdict"] == uplift.VERDICT_BETTER
    assert report["verdict_text"].startswith("Ranking by estimated uplift is better than ranking by chance to buy")
    # the persuadables found (the top tenth of the cross-fitted estimates) are mostly in the affected half
    held = fit.held_out
    top = held.nlargest(len(held) // 10, "uplift")
    assert top["user_id"].isin(sim["affected"]).mean() > 0.8
    # every shopper gets an estimate, stored for the next lists; the affected group's are the higher ones
    stored = _stored(engine, fit.run_id)
    assert len(stored) == report["n_scored"] == SIM_USERS
    in_group = stored.index.isin(list(sim["affected"]))
    assert stored[in_group].mean() > stored[~in_group].mean() + 0.05
    run = uplift.latest_run_for_export(engine, "sim", sim["export_id"])
    assert run["run_id"] == fit.run_id and run["verdict"] == uplift.VERDICT_BETTER
    assert run["report"]["curves"]["random"]["incremental"][-1] == pytest.approx(
        run["report"]["curves"]["uplift"]["incremental"][-1])
    # a list of the top tenth by uplift is mostly the affected group, and the export records its ranking
    built = build_target_list(engine, "sim", CampaignFilters(top_percent=10, rank_by="uplift"), holdout_share=0.1)
    assert built.targets["user_id"].isin(sim["affected"]).mean() > 0.8
    record = exports.save_export(engine, built, "csv")
    row = exports.list_exports(engine, "sim").set_index("export_id").loc[record["export_id"]]
    assert (row["ranking"], row["uplift_run_id"]) == ("uplift", fit.run_id)


@pytest.mark.slow
def test_no_effect_is_no_better_than_random(duck_engine, home, monkeypatch):
    # the statistics do not depend on the store: PostgreSQL is covered by the effect test above and the store tests
    engine = duck_engine
    without_refits(monkeypatch)  # the interval decides here; the shuffled campaigns are the effect test's
    sim = uplift_campaign(engine, seed=57, effect=0.0)
    report = uplift.fit_uplift(engine, "sim", sim["export_id"], days=WINDOW_DAYS).report
    assert sim["made"] == []
    assert report["qini"]["uplift"]["ci_low"] <= 0 <= report["qini"]["uplift"]["ci_high"]
    assert report["verdict"] == uplift.VERDICT_NONE
    assert "is no better than random" in report["verdict_text"]


# --- refusals on the hand-built shop --------------------------------------------------------------------


@pytest.fixture
def shop(engine, home):
    make_shop(engine)
    return engine


def _export_half(engine) -> int:
    built = build_target_list(engine, "shop", CampaignFilters(), holdout_share=0.5, seed=2)
    return exports.save_export(engine, built, "csv")["export_id"]


def test_a_small_campaign_is_refused_with_its_sizes(shop):
    export_id = _export_half(shop)
    with pytest.raises(CartsightError, match="window still open"):
        uplift.fit_uplift(shop, "shop", export_id)
    add_events(shop, "shop", pd.DataFrame([{"user_id": uid(0), "event_time": END + dt.timedelta(days=9),
                                            "event_type": "view", "item_id": "it0", "category": "c", "price": 1.0,
                                            "session_id": "later"}]))
    with pytest.raises(CartsightError, match=rf"Not enough shoppers in the campaign of export {export_id}: 20 treated "
                                             r"\(0 bought\), 20 holdout \(0 bought\); an uplift model needs >= 200 "
                                             r"shoppers and >= 10 buyers in each group"):
        uplift.fit_uplift(shop, "shop", export_id)
    with shop.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store.uplift_runs)).scalar() == 0


# --- target lists by uplift -----------------------------------------------------------------------------


def add_uplift_run(engine, did: int, values: dict[str, float], export_id: int = 1) -> int:
    """An uplift run whose estimates are ``values`` (user id → uplift)."""
    with engine.begin() as conn:
        run_id = int(conn.execute(sa.select(store.uplift_run_id_seq.next_value())).scalar_one())
        conn.execute(store.uplift_runs.insert().values(
            run_id=run_id, dataset_id=did, export_id=export_id, created_at=dt.datetime(2024, 2, 20), window_days=7,
            verdict=uplift.VERDICT_BETTER, report_json="{}"))
        conn.execute(store.uplift.insert(), [{"dataset_id": did, "run_id": run_id, "user_id": k, "uplift": v}
                                             for k, v in values.items()])
    return run_id


#: estimated uplift of shopper i: highest for the middle shoppers (i = 20), unlike their propensity (highest at 39)
def shop_uplift(i: int) -> float:
    return round(0.10 - abs(i - 20) * 0.005, 4)


@pytest.mark.parametrize("filters, expected", [
    (CampaignFilters(top_k=3, rank_by="uplift"), ["u19", "u20", "u21"]),
    (CampaignFilters(min_uplift=0.09), ["u19", "u20", "u21"]),  # above 9 points: 10, 9.5, 9.5
    (CampaignFilters(min_uplift=0.08, top_k=2), ["u22", "u23"]),  # by propensity among u17..u23
    (CampaignFilters(segments=[0], top_k=2, rank_by="uplift"), ["u18", "u20"]),
])
def test_lists_rank_and_filter_by_the_newest_uplift(shop, filters, expected):
    did = int(store.get_dataset(shop, "shop")["dataset_id"])
    add_uplift_run(shop, did, {uid(i): -0.5 for i in range(N)})  # an older run: not used
    add_uplift_run(shop, did, {uid(i): shop_uplift(i) for i in range(N)})
    built = build_target_list(shop, "shop", filters, holdout_share=0.0)
    assert sorted(built.targets["user_id"]) == expected
    assert count_matches(shop, "shop", filters) == len(expected)
    assert built.targets.set_index("user_id")["uplift"].to_dict() == {u: shop_uplift(int(u[1:])) for u in expected}


def test_ranking_by_uplift_needs_a_run_but_no_model(engine, home):
    make_shop(engine, model=False)
    with pytest.raises(NotFittedError, match=r"The filters \['rank_by'\] use estimated uplift, but dataset 'shop' has "
                                             "no uplift model"):
        build_target_list(engine, "shop", CampaignFilters(top_k=2, rank_by="uplift"))
    with pytest.raises(ParameterError, match="min_uplift=2 is outside -1–1"):
        CampaignFilters(min_uplift=2)
    did = int(store.get_dataset(engine, "shop")["dataset_id"])
    run_id = add_uplift_run(engine, did, {uid(i): shop_uplift(i) for i in range(N)})
    built = build_target_list(engine, "shop", CampaignFilters(top_k=2, rank_by="uplift"), holdout_share=0.0)
    assert built.targets["user_id"].tolist() == ["u20", "u19"] and built.ranking == "uplift"
    assert built.uplift_run_id == run_id
    record = exports.save_export(engine, built, "csv")
    assert exports.list_exports(engine, "shop").set_index("export_id").loc[
        record["export_id"], ["ranking", "uplift_run_id"]].tolist() == ["uplift", run_id]


def test_every_export_records_its_ranking(shop):
    by_default = exports.save_export(shop, build_target_list(shop, "shop", CampaignFilters(top_k=3)), "csv")
    by_value = exports.save_export(shop, build_target_list(
        shop, "shop", CampaignFilters(top_k=3, rank_by="expected_revenue")), "csv")
    history = exports.list_exports(shop, "shop").set_index("export_id")
    assert history.loc[by_default["export_id"], "ranking"] == "propensity"
    assert history.loc[by_value["export_id"], "ranking"] == "expected_revenue"
    assert history["uplift_run_id"].isna().all()


def test_upgrade_records_older_exports_rankings(shop):
    from tests.conftest import NO_OLD_SPARK_STORES, skip_on_spark

    skip_on_spark(shop, NO_OLD_SPARK_STORES)
    by_default = exports.save_export(shop, build_target_list(shop, "shop", CampaignFilters(top_k=3)), "csv")
    by_lapse = exports.save_export(shop, build_target_list(
        shop, "shop", CampaignFilters(top_k=3, rank_by="p_inactive")), "csv")
    with shop.begin() as conn:  # the export table as schema 7 left it
        conn.exec_driver_sql("ALTER TABLE cs_exports DROP COLUMN ranking")
        conn.exec_driver_sql("ALTER TABLE cs_exports DROP COLUMN uplift_run_id")
        conn.exec_driver_sql("DROP TABLE cs_uplift")
        conn.execute(sa.update(store.schema_info).values(version=7))
    store.ensure_schema(shop)
    history = exports.list_exports(shop, "shop").set_index("export_id")
    assert history.loc[by_default["export_id"], "ranking"] == "propensity"
    assert history.loc[by_lapse["export_id"], "ranking"] == "p_inactive"
    with shop.connect() as conn:
        assert conn.execute(sa.select(store.schema_info.c.version)).scalar_one() == config.SCHEMA_VERSION
        assert conn.execute(sa.select(sa.func.count()).select_from(store.uplift)).scalar() == 0


def test_dropping_a_dataset_drops_its_uplift(shop):
    did = int(store.get_dataset(shop, "shop")["dataset_id"])
    add_uplift_run(shop, did, {uid(0): 0.1})
    store.drop_dataset(shop, "shop")
    with shop.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store.uplift)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(store.uplift_runs)).scalar() == 0


# --- the command line -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_fits_uplift_and_exports_by_it(duck_engine, home, tmp_path, capsys, monkeypatch):
    engine = duck_engine  # one store: the command reads through the same functions the two-store tests cover
    without_refits(monkeypatch)
    sim = uplift_campaign(engine, seed=31, effect=GROUP_EFFECT)
    fitted, fit_uplift = [], uplift.fit_uplift

    def fit_once(*args, **kwargs):  # the text run prints the JSON run's fit: a second fit of the same data is the same
        fitted.append(fitted[0] if fitted else fit_uplift(*args, **kwargs))
        return fitted[-1]

    monkeypatch.setattr(uplift, "fit_uplift", fit_once)
    url = engine.url.render_as_string(hide_password=False)
    code = cli.main(["uplift", "--dataset", "sim", "--export", str(sim["export_id"]), "--days", str(WINDOW_DAYS),
                     "--db", url, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert report["verdict"] == uplift.VERDICT_BETTER and report["qini"]["uplift"]["qini"] > 0
    assert set(report["qini"]) == {"uplift", "propensity", "uplift - propensity"}
    code = cli.main(["uplift", "--dataset", "sim", "--export", str(sim["export_id"]), "--days", str(WINDOW_DAYS),
                     "--db", url])
    out, _ = capsys.readouterr()
    assert code == 0 and "verdict: better than ranking by chance to buy" in out and "by propensity" in out
    assert len(fitted) == 2  # both runs went through the command's fit
    code = cli.main(["export", "--dataset", "sim", "--format", "csv", "--top-percent", "10", "--rank-by", "uplift",
                     "--out", str(tmp_path / "persuadables.csv"), "--db", url])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "ranked by uplift" in out
    listed = pd.read_csv(tmp_path / "persuadables.csv", dtype={"user_id": str})
    assert listed["user_id"].isin(sim["affected"]).mean() > 0.8
