"""Target lists on DuckDB and PostgreSQL: filters, suppression, consent, holdout, expected outcome.

The fixture shop has 40 shoppers u00…u39 with hand-set behaviour, forecasts and segments:

- shopper i was last seen ``i`` days before the data's end (2024-01-31 12:00), and first 40 days before;
- shoppers with i % 5 == 0 bought once, at their last visit, for 10 × (i + 1) (one order each);
- even shoppers' views cost 1.0, odd shoppers' 100.0 (one category of 40 items, each at its own
  shopper's view price), so two prices allow two bands, budget below 100 and mid from 100: even
  shoppers prefer "budget", odd shoppers "mid";
- model "m1": propensity 0.02 × (i + 1); next category ("shoes", "bags", "hats")[i % 3];
  next step "purchase" for i >= 30 else "view"; expected revenue 5 × (7i mod 40) (every value once,
  an order unlike the propensity's: the top eight are u17, u34, u11, u28, u05, u22, u39, u16);
  chance of no activity i / 40 (shoppers unseen for longer likelier to lapse: i >= 20 at least 0.5);
- segmentation run: segment i % 2 (0 "Bargain hunters", 1 "Premium fans").
"""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from core import store
from core.campaigns import targets as campaigns
from core.campaigns import outcome
from core.campaigns.targets import CampaignFilters, build_target_list, count_matches
from core.errors import NotFittedError, ParameterError, SchemaError
from core.campaigns.identities import read_identities, read_suppression
from tests.conftest import ROOT, make_dataset

N = 40
END = dt.datetime(2024, 1, 31, 12, 0)
FIXTURES = ROOT / "tests" / "fixtures" / "campaigns"
CATEGORIES = ("shoes", "bags", "hats")
SEGMENT_NAMES = {0: "Bargain hunters", 1: "Premium fans"}


def uid(i: int) -> str:
    return f"u{i:02d}"


def propensity(i: int) -> float:
    return round(0.02 * (i + 1), 4)


def shop_events() -> list[dict]:
    rows = []
    for i in range(N):
        price = 1.0 if i % 2 == 0 else 100.0
        for days in (40, i):
            rows.append({"user_id": uid(i), "event_time": END - dt.timedelta(days=days), "event_type": "view",
                         "item_id": f"it{i}", "category": "c", "price": price, "session_id": f"s{i}"})
        if i % 5 == 0:
            rows.append({"user_id": uid(i), "event_time": END - dt.timedelta(days=i), "event_type": "purchase",
                         "item_id": f"it{i}", "category": "c", "price": 10.0 * (i + 1), "quantity": 1,
                         "session_id": f"s{i}"})
    return rows


def expected_revenue(i: int) -> float:
    return 5.0 * ((7 * i) % N)


def add_model(engine, did: int, version: str = "m1", value: bool = True) -> None:
    """Model ``version``'s forecasts; ``value=False``: a version trained before the value and churn forecasts."""
    with engine.begin() as conn:
        conn.execute(store.models.insert().values(
            model_version=version, dataset_id=did, created_at=dt.datetime(2024, 2, 1), horizon_days=7,
            path="/nowhere", config_json="{}", metrics_json="{}", status="ready"))
        conn.execute(store.predictions.insert(), [{
            "dataset_id": did, "model_version": version, "user_id": uid(i), "purchase_propensity": propensity(i),
            "next_event_type": "purchase" if i >= 30 else "view", "p_view": 0.5, "p_cart": 0.1,
            "p_purchase": propensity(i), "p_remove": 0.0, "p_none": 0.1, "next_category": CATEGORIES[i % 3],
            "next_category_p": 0.4, "top_items": f"it{i} it{i + 1}", "reasons": f"viewed it{i}; came back",
            "expected_revenue": expected_revenue(i) if value else None, "p_inactive": i / N if value else None}
            for i in range(N)])


def add_segments(engine, did: int) -> int:
    with engine.begin() as conn:
        run_id = int(conn.execute(sa.select(store.segment_run_id_seq.next_value())).scalar_one())  # no RETURNING
        conn.execute(store.segment_runs.insert().values(  # on Spark: the id first, as the store's own code does
            run_id=run_id, dataset_id=did, created_at=dt.datetime(2024, 2, 2), n_segments=2, model_version="m1",
            features_json="{}", profiles_json=json.dumps([{"segment": s, "name": n} for s, n in SEGMENT_NAMES.items()])))
        conn.execute(store.segments.insert(), [{
            "dataset_id": did, "run_id": run_id, "user_id": uid(i), "segment": i % 2,
            "segment_name": SEGMENT_NAMES[i % 2]} for i in range(N)])
    return run_id


def make_shop(engine, name: str = "shop", model: bool = True, segments: bool = True, value: bool = True) -> int:
    """The fixture shop described in the module docstring; returns its dataset id."""
    did = make_dataset(engine, name, shop_events())
    if model:
        add_model(engine, did, value=value)
    if segments:
        add_segments(engine, did)
    return did


@pytest.fixture
def shop(engine):
    make_shop(engine)
    return engine


# --- filters --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("filters, expected", [
    (CampaignFilters(), [uid(i) for i in range(N)]),
    (CampaignFilters(segments=[1]), [uid(i) for i in range(1, N, 2)]),
    (CampaignFilters(min_propensity=0.5, max_propensity=0.6), [uid(i) for i in range(24, 30)]),
    (CampaignFilters(top_k=3), ["u37", "u38", "u39"]),
    (CampaignFilters(top_percent=10), ["u36", "u37", "u38", "u39"]),
    # 20 shoppers in segment 0; ceil(20 × 25 / 100) = 5 highest
    (CampaignFilters(segments=[0], top_percent=25), ["u30", "u32", "u34", "u36", "u38"]),
    (CampaignFilters(next_categories=["hats"], next_event_types=["purchase"]), ["u32", "u35", "u38"]),
    (CampaignFilters(seen_within_days=7), [uid(i) for i in range(8)]),
    (CampaignFilters(not_seen_days=35), [uid(i) for i in range(36, N)]),
    (CampaignFilters(exclude_bought_days=7, seen_within_days=9), ["u01", "u02", "u03", "u04", "u06", "u07", "u08",
                                                                  "u09"]),
    (CampaignFilters(min_spend=200), ["u20", "u25", "u30", "u35"]),
    (CampaignFilters(price_bands=["mid"]), [uid(i) for i in range(1, N, 2)]),
    (CampaignFilters(price_bands=["luxury"]), []),
    (CampaignFilters(price_bands=["budget"], min_spend=100), ["u10", "u20", "u30"]),
    (CampaignFilters(min_p_inactive=0.5), [uid(i) for i in range(20, N)]),
    (CampaignFilters(min_p_inactive=0.5, max_p_inactive=0.6), [uid(i) for i in range(20, 25)]),
    (CampaignFilters(min_expected_revenue=180), ["u11", "u17", "u28", "u34"]),  # 5 × (36..39)
    # top 20 % of 40 by expected revenue: 5 × (39, 38, …, 32)
    (CampaignFilters(top_percent=20, rank_by="expected_revenue"), sorted(["u17", "u34", "u11", "u28", "u05", "u22",
                                                                          "u39", "u16"])),
    (CampaignFilters(top_k=3, rank_by="p_inactive", segments=[0]), ["u34", "u36", "u38"]),
])
def test_filters_match_hand_counts(shop, filters, expected):
    built = build_target_list(shop, "shop", filters, holdout_share=0.0)
    assert sorted(built.targets["user_id"]) == expected
    assert built.counts["matched"] == built.counts["exported"] == len(expected)
    assert count_matches(shop, "shop", filters) == len(expected)


def test_list_is_joined_to_forecast_and_segment(shop):
    built = build_target_list(shop, "shop", CampaignFilters(top_k=2), holdout_share=0.0)
    first = built.targets.iloc[0]
    assert first["user_id"] == "u39"
    assert first["propensity"] == pytest.approx(0.8)
    assert (first["segment"], first["segment_name"]) == (1, "Premium fans")
    assert first["next_category"] == "shoes" and first["top_items"] == "it39 it40"
    assert first["reasons"] == "viewed it39; came back"
    assert built.model_version == "m1"


def test_a_list_ranked_by_expected_revenue_is_in_that_order_with_both_forecasts(shop):
    built = build_target_list(shop, "shop", CampaignFilters(top_percent=20, rank_by="expected_revenue"),
                              holdout_share=0.0)
    targets = built.targets
    assert targets["user_id"].tolist() == ["u17", "u34", "u11", "u28", "u05", "u22", "u39", "u16"]
    assert targets["expected_revenue"].tolist() == [195.0, 190.0, 185.0, 180.0, 175.0, 170.0, 165.0, 160.0]
    assert targets["p_inactive"].tolist() == [17 / 40, 34 / 40, 11 / 40, 28 / 40, 5 / 40, 22 / 40, 39 / 40, 16 / 40]
    assert targets["propensity"].iloc[0] == pytest.approx(0.36)
    # the list's expected revenue is the sum of its shoppers' forecasts, not propensity × order value
    assert built.outcome["expected_revenue"] == pytest.approx(1420.0)
    assert built.outcome["revenue_basis"] == "the sum of the shoppers' expected revenue within the model's horizon"
    lapsing = build_target_list(shop, "shop", CampaignFilters(min_p_inactive=0.5, rank_by="p_inactive"),
                                holdout_share=0.0).targets
    assert lapsing["user_id"].tolist()[:3] == ["u39", "u38", "u37"] and len(lapsing) == 20


def test_filters_json_round_trip():
    f = CampaignFilters(segments=[2, 1], top_percent=12.5, exclude_bought_days=30, price_bands=["budget"])
    text = f.to_json()
    assert '"top_percent": 12.5' in text and "min_propensity" not in text
    assert CampaignFilters.from_json(text) == f


@pytest.mark.parametrize("kwargs, column", [
    ({"top_k": 5, "top_percent": 10}, "top_k"),
    ({"min_propensity": 1.5}, "min_propensity"),
    ({"min_propensity": 0.6, "max_propensity": 0.5}, "min_propensity"),
    ({"top_percent": 0}, "top_percent"),
    ({"price_bands": ["cheap"]}, "price_bands"),
    ({"next_event_types": ["buy"]}, "next_event_types"),
    ({"not_seen_days": -1}, "not_seen_days"),
    ({"min_p_inactive": 1.2}, "min_p_inactive"),
    ({"min_p_inactive": 0.7, "max_p_inactive": 0.6}, "min_p_inactive"),
    ({"rank_by": "spend"}, "rank_by"),
    ({"min_expected_revenue": -5}, "min_expected_revenue"),
])
def test_bad_filters_name_the_parameter(kwargs, column):
    with pytest.raises(ParameterError) as err:
        CampaignFilters(**kwargs)
    assert err.value.parameter == column
    assert column in str(err.value)


def test_without_model_segment_lists_work_and_say_so(engine):
    make_shop(engine, model=False)
    built = build_target_list(engine, "shop", CampaignFilters(segments=[0]), holdout_share=0.0)
    assert len(built.targets) == 20
    assert built.outcome["expected_buyers"] is None and built.outcome["lift"] is None
    assert any("No trained model" in n for n in built.notes)
    with pytest.raises(NotFittedError, match="no trained model"):
        count_matches(engine, "shop", CampaignFilters(top_percent=10))
    with pytest.raises(NotFittedError, match="min_p_inactive"):
        count_matches(engine, "shop", CampaignFilters(min_p_inactive=0.5))


def test_segment_filter_without_segmentation_explains(engine):
    make_shop(engine, segments=False)
    with pytest.raises(NotFittedError, match="Segments page"):
        build_target_list(engine, "shop", CampaignFilters(segments=[1]))


# --- expected outcome ------------------------------------------------------------------------------------


def test_expected_outcome_hand_checked(engine):
    make_shop(engine, value=False)  # a version trained before the value forecast: propensity × order value
    built = build_target_list(engine, "shop", CampaignFilters(top_k=4), holdout_share=0.0)
    out = built.outcome
    assert out["list_size"] == 4
    assert out["expected_buyers"] == pytest.approx(0.80 + 0.78 + 0.76 + 0.74)
    # mean of the list 0.77 over the mean of all 40 scored shoppers 0.41
    assert out["lift"] == pytest.approx(0.77 / 0.41)
    # nobody in u36..u39 bought before: dataset average order value 1480 / 8 orders = 185
    assert out["expected_revenue"] == pytest.approx(3.08 * 185.0)
    assert out["cut"]["share_contacted"] == pytest.approx(0.1)
    assert out["cut"]["share_buyers"] == pytest.approx(3.08 / 16.4)
    gain = out["gain"]
    assert gain.iloc[0].tolist() == [0.0, 0.0] and gain.iloc[-1].tolist() == pytest.approx([1.0, 1.0])
    at_cut = gain.loc[gain["share_contacted"].sub(0.1).abs().idxmin(), "share_buyers"]
    assert at_cut == pytest.approx(3.08 / 16.4)


def test_expected_revenue_uses_own_order_value(engine):
    make_shop(engine, value=False)
    built = build_target_list(engine, "shop", CampaignFilters(min_spend=300), holdout_share=0.0)
    # u30 spent 310 in one order, u35 360: 0.62 × 310 + 0.72 × 360
    assert built.outcome["expected_revenue"] == pytest.approx(0.62 * 310 + 0.72 * 360)
    assert "own average order value (2 shoppers" in built.outcome["revenue_basis"]


def test_gain_curve_of_uniform_scores_is_the_diagonal():
    gain = outcome.gain_curve(np.full(10, 0.3), n_points=5)
    assert np.allclose(gain["share_contacted"], gain["share_buyers"])


# --- suppression and consent ------------------------------------------------------------------------------


def test_suppression_by_id_and_email_always_removes(shop):
    identities = read_identities(FIXTURES / "identities.csv")
    suppression = read_suppression(b"u05\nALICE.SMITH@example.com \ncarol.x+news@googlemail.com\n")
    built = build_target_list(shop, "shop", CampaignFilters(seen_within_days=9), identities=identities,
                              suppression=suppression, holdout_share=0.0)
    # u05 by id, u00 by e-mail (case and spaces), u02 by its gmail variant (dots, +suffix, googlemail)
    assert built.counts["suppressed"] == 3
    assert sorted(built.targets["user_id"]) == ["u01", "u03", "u04", "u06", "u07", "u08", "u09"]


def test_suppression_emails_without_identity_emails_refuse_the_list(shop):
    suppression = read_suppression(b"u01\nx@example.com\n")
    with pytest.raises(ParameterError, match="holds 1 e-mails, but no identity file with an e-mail column") as err:
        build_target_list(shop, "shop", CampaignFilters(seen_within_days=2), suppression=suppression, holdout_share=0.0)
    assert err.value.parameter == "suppression"
    with pytest.raises(ParameterError, match="no identity file with an e-mail column"):
        build_target_list(shop, "shop", suppression=suppression, identities=read_identities(b"user_id,phone\nu00,\n"),
                          holdout_share=0.0)
    ids_only = build_target_list(shop, "shop", CampaignFilters(seen_within_days=2),
                                 suppression=read_suppression(b"u01\n"), holdout_share=0.0)
    assert sorted(ids_only.targets["user_id"]) == ["u00", "u02"]


@pytest.mark.parametrize("data, suppressed", [
    (b"customer_id,reason\nu05,unsubscribed\nu00,complaint\n", {"u00", "u05"}),
    (b"Email Address\ncarol.x@gmail.com\nALICE.SMITH@example.com\n", {"u00", "u02"}),  # Mailchimp
    (b"Customer ID;E-mail;reason\nu05;;unsubscribed\n;alice.smith@example.com;bounced\n", {"u00", "u05"}),
    (b"Email\tExternal ID\n\tu07\ndave@example.org\t\n", {"u03", "u07"}),  # Klaviyo, tab-separated
])
def test_suppression_files_of_real_tools_suppress(shop, data, suppressed):
    built = build_target_list(shop, "shop", CampaignFilters(seen_within_days=9),
                              identities=read_identities(FIXTURES / "identities.csv"),
                              suppression=read_suppression(data), holdout_share=0.0)
    assert built.counts["suppressed"] == len(suppressed)
    assert sorted(set(built.targets["user_id"]) | suppressed) == [f"u0{i}" for i in range(10)]


@pytest.mark.parametrize("destination, consented", [
    # consent_ads yes; u02 and u03 said no; u06-u08 lost only a bad phone, country or consent_email value
    ("google", ["u00", "u01", "u04", "u06", "u07", "u08", "u09"]),
    ("klaviyo", ["u00", "u02", "u03", "u04", "u06", "u07", "u09"]),  # consent_email yes; u01 no, u08 "maybe"
])
def test_consent_per_destination(shop, destination, consented):
    identities = read_identities(FIXTURES / "identities.csv")
    built = build_target_list(shop, "shop", CampaignFilters(seen_within_days=9), identities=identities,
                              holdout_share=0.0, destination=destination)
    assert sorted(built.targets["user_id"]) == consented
    # 10 matched (u00-u09), all in the identity file; u05 has consent for both but no valid e-mail or phone
    assert built.counts["matched"] == 10 and built.counts["not_in_identities"] == 0
    assert built.counts["no_consent"] == 10 - len(consented) - 1
    assert built.counts["no_identifier"] == 1
    assert built.counts["exported"] == len(consented)
    assert built.consent_column == {"google": "consent_ads", "klaviyo": "consent_email"}[destination]
    assert built.consent_basis is None


@pytest.mark.parametrize("destination", ["google", "meta", "klaviyo", "mailchimp"])
def test_not_in_the_identity_file_is_counted_apart_from_no_consent(shop, destination):
    # top 20 %: u32-u39; the identity file knows u30-u35 only, u33 without consent
    lines = [f"u{i},s{i}@example.com,{'no' if i == 33 else 'yes'},{'no' if i == 33 else 'yes'}" for i in range(30, 36)]
    identities = read_identities(("user_id,email,consent_email,consent_ads\n" + "\n".join(lines)).encode())
    built = build_target_list(shop, "shop", CampaignFilters(top_percent=20), identities=identities,
                              holdout_share=0.0, destination=destination)
    assert built.counts["matched"] == 8
    assert built.counts["not_in_identities"] == 4  # u36-u39
    assert built.counts["no_consent"] == 1  # u33
    assert sorted(built.targets["user_id"]) == ["u32", "u34", "u35"]
    assert sum(built.counts[k] for k in campaigns.COUNT_KEYS if k != "matched") == built.counts["matched"]


def test_plain_csv_keeps_shoppers_not_in_the_identity_file(shop):
    identities = read_identities(b"user_id,email\nu39,a@example.com\n")
    built = build_target_list(shop, "shop", CampaignFilters(top_k=3), identities=identities, holdout_share=0.0,
                              destination="csv")
    assert sorted(built.targets["user_id"]) == ["u37", "u38", "u39"]
    assert built.counts["not_in_identities"] == 0 and built.consent_column is None


def test_ad_destination_needs_identities(shop):
    with pytest.raises(ParameterError, match="needs an identity file"):
        build_target_list(shop, "shop", destination="meta")


@pytest.mark.parametrize("destination, column", [("meta", "consent_ads"), ("google", "consent_ads"),
                                                 ("klaviyo", "consent_email"), ("mailchimp", "consent_email")])
def test_missing_consent_column_exports_nobody_without_a_stated_basis(shop, destination, column):
    identities = read_identities(b"user_id,email,consent_sms\nu00,a@example.com,yes\nu01,,yes\n")
    for basis in (None, "", "   "):
        with pytest.raises(SchemaError, match=f"The identity file has no {column} column") as err:
            build_target_list(shop, "shop", CampaignFilters(seen_within_days=1), identities=identities,
                              holdout_share=0.0, destination=destination, consent_basis=basis)
        assert err.value.column == column
    basis = "Existing customers, soft opt-in (PECR reg. 22(3))"
    built = build_target_list(shop, "shop", CampaignFilters(seen_within_days=1), identities=identities,
                              holdout_share=0.0, destination=destination, consent_basis=f"  {basis} ")
    assert built.targets["user_id"].tolist() == ["u00"]
    assert built.counts["no_identifier"] == 1 and built.counts["no_consent"] == 0
    assert (built.consent_column, built.consent_basis) == (column, basis)
    assert any(basis in n and f"no {column} column" in n for n in built.notes)


def test_basis_is_not_used_where_the_consent_column_exists(shop):
    identities = read_identities(b"user_id,email,Accepts Email Marketing\nu00,a@example.com,no\nu01,b@example.com,yes\n")
    built = build_target_list(shop, "shop", CampaignFilters(seen_within_days=1), identities=identities,
                              holdout_share=0.0, destination="klaviyo", consent_basis="legitimate interest")
    assert built.targets["user_id"].tolist() == ["u01"] and built.counts["no_consent"] == 1
    assert built.consent_basis is None


# --- holdout ------------------------------------------------------------------------------------------------


def test_holdout_is_reproducible_and_disjoint(shop):
    a = build_target_list(shop, "shop", holdout_share=0.25, seed=7)
    b = build_target_list(shop, "shop", holdout_share=0.25, seed=7)
    c = build_target_list(shop, "shop", holdout_share=0.25, seed=8)
    assert a.holdout["user_id"].tolist() == b.holdout["user_id"].tolist()
    assert a.holdout["user_id"].tolist() != c.holdout["user_id"].tolist()
    assert a.counts["holdout"] == 10 and a.counts["exported"] == 30
    assert not set(a.holdout["user_id"]) & set(a.targets["user_id"])
    # 40 shoppers in deciles of 4: 10 held out, one per decile
    assert a.holdout["propensity_decile"].value_counts().sort_index().tolist() == [1] * 10


def test_split_holdout_is_stratified_by_decile():
    n = 2000
    frame = pd.DataFrame({"user_id": [f"x{i:05d}" for i in range(n)], "propensity": np.linspace(0, 1, n)})
    frame["propensity_decile"] = campaigns.assign_deciles(frame["propensity"])
    assert frame["propensity_decile"].value_counts().tolist() == [200] * 10
    mask = campaigns.split_holdout(frame, 0.1, seed=3)
    assert int(mask.sum()) == 200
    per_decile = frame[mask].groupby("propensity_decile").size()
    assert per_decile.tolist() == [20] * 10
    assert mask.equals(campaigns.split_holdout(frame, 0.1, seed=3))


def test_holdout_share_is_checked():
    frame = pd.DataFrame({"user_id": ["a"], "propensity": [0.5], "propensity_decile": [1]})
    with pytest.raises(ParameterError, match="holdout share 0.9"):
        campaigns.split_holdout(frame, 0.9, seed=0)


def test_filter_options(shop):
    opts = campaigns.filter_options(shop, "shop")
    assert opts["model_version"] == "m1"
    assert opts["segments"] == SEGMENT_NAMES
    assert sorted(opts["next_categories"]) == sorted(CATEGORIES)


def test_gain_chart_marks_the_cut(shop):
    from core.charts import campaigns as charts_campaigns

    built = build_target_list(shop, "shop", CampaignFilters(top_k=4), holdout_share=0.0)
    fig = charts_campaigns.gain_chart(built.outcome)
    cut = next(t for t in fig.data if t.name == "This list")
    assert cut.x[0] == pytest.approx(10.0) and cut.y[0] == pytest.approx(100 * 3.08 / 16.4)
    assert fig.layout.shapes[0].x0 == pytest.approx(10.0)
    bars = charts_campaigns.counts_chart(built.counts)
    assert list(bars.data[0].x) == [4, 0, 0, 0, 0, 0, 4]
    no_model = dict(built.outcome, gain=None, cut=None)
    with pytest.raises(SchemaError, match="no gain curve"):
        charts_campaigns.gain_chart(no_model)


def test_empty_list_has_zero_counts(shop):
    built = build_target_list(shop, "shop", CampaignFilters(min_spend=1e9))
    assert built.counts == dict.fromkeys(campaigns.COUNT_KEYS, 0)
    assert built.outcome["list_size"] == 0 and built.outcome["expected_buyers"] == 0.0


def test_holdout_without_model_is_a_plain_random_share(engine):
    make_shop(engine, model=False)
    built = build_target_list(engine, "shop", CampaignFilters(segments=[1]), holdout_share=0.2, seed=1)
    assert built.counts["holdout"] == 4 and built.counts["exported"] == 16
    assert built.holdout["propensity_decile"].isna().all()


def test_a_shopper_listed_twice_is_suppressed_by_either_address(shop):
    identities = read_identities(b"user_id,email,consent_email\nu01,old@example.com,yes\nu01,new@example.com,yes\n"
                                 b"u02,keep@example.com,yes\n")
    built = build_target_list(shop, "shop", CampaignFilters(seen_within_days=9), identities=identities,
                              suppression=read_suppression(b"Email\nNEW@example.com\n"), holdout_share=0.0,
                              destination="klaviyo")
    assert built.counts["suppressed"] == 1
    assert built.targets["user_id"].tolist() == ["u02"]


def test_ids_a_spreadsheet_wrote_as_floats_still_suppress_and_join(engine, monkeypatch):
    """510791900.0 in a suppression or identity file is the shopper 510791900, and the other way round."""
    monkeypatch.setitem(globals(), "uid", lambda i: str(510791900 + i))
    make_shop(engine)
    identities = read_identities(b"user_id,email,consent_email\n510791900,a@example.com,yes\n"
                                 b"510791901.0,b@example.com,yes\n510791902,c@example.com,yes\n")
    built = build_target_list(engine, "shop", CampaignFilters(seen_within_days=9), identities=identities,
                              suppression=read_suppression(b"customer_id\n510791900.0\n"), holdout_share=0.0,
                              destination="klaviyo")
    assert built.counts["suppressed"] == 1
    assert sorted(zip(built.targets["user_id"], built.targets["email"])) == [
        ("510791901", "b@example.com"), ("510791902", "c@example.com")]
