"""core.simulate: determinism, REES46 layout, planted structure, and the committed sample file."""
from __future__ import annotations

import gzip
import re

import numpy as np
import pandas as pd
import pytest

from core.config import SAMPLE_FILE, SESSION_GAP_MINUTES
from core.errors import CartsightError
from core.simulate import (CATEGORIES, EVENT_COLUMNS, EVENT_TYPE_NAMES, PRICE_BANDS, SimConfig, buying_mode_at,
                           iter_chunks, simulate, write_csv)

N_USERS, WEEKS, SEED = 600, 6, 11


@pytest.fixture(scope="module")
def sim():
    return simulate(N_USERS, WEEKS, SEED)


@pytest.fixture(scope="module")
def events(sim):
    """Events with parsed time and the planted truth joined on."""
    ev = sim.events.copy()
    ev["t"] = pd.to_datetime(ev["event_time"].str[:19])
    cat = sim.catalogue.set_index("product_id")
    ev["category"] = cat["category"].reindex(ev["product_id"]).to_numpy()
    ev["band"] = cat["price_band"].reindex(ev["product_id"]).to_numpy()
    ev["brand_name"] = cat["brand_name"].reindex(ev["product_id"]).to_numpy()
    return ev.merge(sim.truth[["user_id", "group"]], on="user_id", how="left")


def test_same_seed_gives_identical_frames_and_other_seed_differs(sim):
    again = simulate(N_USERS, WEEKS, SEED)
    pd.testing.assert_frame_equal(sim.events, again.events)
    pd.testing.assert_frame_equal(sim.truth, again.truth)
    pd.testing.assert_frame_equal(sim.catalogue, again.catalogue)
    assert np.array_equal(sim.buying_mode, again.buying_mode)
    other = simulate(N_USERS, WEEKS, SEED + 1)
    assert len(other.events) != len(sim.events) or not other.events.equals(sim.events)
    assert not np.array_equal(other.buying_mode, sim.buying_mode)


def test_columns_order_and_value_domains(sim):
    ev = sim.events
    assert tuple(ev.columns) == EVENT_COLUMNS
    assert ev["event_time"].str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC").all()
    assert ev["event_time"].is_monotonic_increasing
    assert ev["event_time"].iloc[0] >= "2024-01-01 00:00:00 UTC"
    assert ev["event_time"].iloc[-1] < "2024-02-12 00:00:00 UTC"  # 6 weeks from Monday 1 January
    assert set(ev["event_type"]) == set(EVENT_TYPE_NAMES)
    shares = ev["event_type"].value_counts(normalize=True)
    assert shares["view"] > 0.8 and 0.001 < shares["wishlist"] < 0.03
    for col in ("product_id", "category_id", "user_id"):
        assert ev[col].dtype == np.int64
    assert ev["category_id"].astype(str).str.len().eq(19).all()
    codes = ev["category_code"].dropna()
    assert codes.str.fullmatch(r"[a-z_]+(\.[a-z_]+)+").all()
    assert codes.nunique() >= 20
    assert 0.02 < ev["category_code"].isna().mean() < 0.09
    brands = ev["brand"].dropna()
    assert (brands == brands.str.lower()).all() and brands.nunique() >= 100
    assert 0.03 < ev["brand"].isna().mean() < 0.2
    assert (ev["price"] > 0).all()
    assert np.allclose(ev["price"] * 100, np.round(ev["price"] * 100))
    assert ev["user_session"].str.fullmatch(r"[0-9a-z]{7}").all()
    # one product always has one category and one price, as in a catalogue
    per_product = ev.groupby("product_id").agg(c=("category_id", "nunique"), p=("price", "nunique"))
    assert (per_product == 1).all().all()


def test_prices_spread_log_normally_around_category_levels(sim):
    cat = sim.catalogue
    medians = cat.groupby("category")["price"].median()
    assert medians["electronics.smartphone"] > 5 * medians["computers.peripherals.mouse"]
    # within a category the luxury quartile is far dearer than the budget quartile
    band_median = cat[cat["category"] == "electronics.smartphone"].groupby("price_band")["price"].median()
    assert band_median["luxury"] > 3 * band_median["budget"]
    assert set(cat["price_band"]) == set(PRICE_BANDS)


def test_session_ids_follow_the_30_minute_gap_rule(events):
    ev = events.sort_values(["user_id", "t"], kind="stable")
    same_user = ev["user_id"].eq(ev["user_id"].shift())
    gap = ev["t"].diff()
    new_session = ev["user_session"].ne(ev["user_session"].shift())
    long_gap = same_user & (gap > pd.Timedelta(minutes=SESSION_GAP_MINUTES))
    short_gap = same_user & (gap <= pd.Timedelta(minutes=SESSION_GAP_MINUTES))
    assert long_gap.sum() > 1000
    assert new_session[long_gap].all()
    assert not new_session[short_gap].any()
    assert ev.groupby("user_session")["user_id"].nunique().eq(1).all()


def test_carts_follow_views_and_precede_most_purchases(events):
    def first_time(kind):
        return events[events["event_type"] == kind].groupby(["user_id", "product_id"])["t"].min()

    carts = events[events["event_type"] == "cart"][["user_id", "product_id", "t"]]
    first_view = first_time("view").rename("view_t")
    joined = carts.join(first_view, on=["user_id", "product_id"])
    assert (joined["view_t"] < joined["t"]).all()

    buys = events[events["event_type"] == "purchase"][["user_id", "product_id", "t"]]
    joined = buys.join(first_time("cart").rename("cart_t"), on=["user_id", "product_id"])
    carted_before = (joined["cart_t"] < joined["t"]).mean()
    assert 0.8 < carted_before < 1.0  # most, not all: some purchases skip the cart
    delay = (joined["t"] - joined["cart_t"]).dropna()
    assert delay.median() < pd.Timedelta(days=1)
    assert (delay > pd.Timedelta(hours=1)).mean() > 0.3  # many come back hours or days later
    # some carts are removed, many simply abandoned
    n_carts = (events["event_type"] == "cart").sum()
    assert 0.05 < (events["event_type"] == "remove_from_cart").sum() / n_carts < 0.4


def test_planted_groups_differ_in_categories_bands_and_brands(sim, events):
    views = events[events["event_type"] == "view"]
    for grp in sim.groups.itertuples():
        core = grp.core_categories.split()
        share = views.groupby("group")["category"].apply(lambda c, core=core: c.isin(core).mean())
        assert share[grp.group] > 0.7, (grp.group, share.to_dict())
        others = share.drop(grp.group)
        assert others.mean() < 0.3, (grp.group, share.to_dict())
        favoured = grp.favoured_brands.split()
        brand_share = views.groupby("group")["brand_name"].apply(lambda b, f=favoured: b.isin(f).mean())
        assert brand_share[grp.group] > brand_share.drop(grp.group).max(), (grp.group, brand_share.to_dict())
    band_index = views["band"].map({b: i for i, b in enumerate(PRICE_BANDS)})
    mean_band = band_index.groupby(views["group"]).mean()
    assert mean_band["premium electronics"] - mean_band["budget tech"] > 1.0
    assert mean_band.idxmax() == "premium electronics" and mean_band.idxmin() == "budget tech"
    assert set(sim.truth["group"]) == set(sim.groups["group"])


def test_buying_mode_shoppers_buy_far_more_in_the_following_week(sim, events):
    rates_in, rates_out = [], []
    for cutoff in pd.date_range("2024-01-15", "2024-01-29", freq="7D"):
        mode = buying_mode_at(sim, cutoff)
        window = events[(events["t"] >= cutoff) & (events["t"] < cutoff + pd.Timedelta(days=7))]
        buyers = window.loc[window["event_type"] == "purchase", "user_id"].unique()
        bought = mode.index.isin(buyers)
        rates_in.append(bought[mode.to_numpy()].mean())
        rates_out.append(bought[~mode.to_numpy()].mean())
    assert np.mean(rates_in) > 3 * np.mean(rates_out), (rates_in, rates_out)


def test_buying_mode_at_contract(sim):
    mode = buying_mode_at(sim, "2024-01-20 15:30")
    assert mode.dtype == bool and mode.index.name == "user_id"
    assert list(mode.index) == list(sim.truth["user_id"])
    assert np.array_equal(mode.to_numpy(), sim.buying_mode[:, 19])
    assert 0.03 < sim.buying_mode.mean() < 0.25
    same_day = buying_mode_at(sim, pd.Timestamp("2024-01-20 23:59", tz="UTC"))
    assert same_day.equals(mode)
    with pytest.raises(CartsightError, match="when must fall in the simulated period"):
        buying_mode_at(sim, "2024-03-01")
    with pytest.raises(CartsightError, match="when must be a time"):
        buying_mode_at(sim, "not a time")


def test_churned_and_late_shoppers_are_silent_outside_their_dates(sim, events):
    truth = sim.truth.set_index("user_id")
    assert 0.1 < truth["churn_date"].notna().mean() < 0.3
    assert 0.08 < (truth["join_date"] > sim.start).mean() < 0.25
    span = events.groupby("user_id")["t"].agg(["min", "max"]).join(truth[["join_date", "churn_date"]])
    assert (span["min"] >= span["join_date"]).all()
    churned = span.dropna(subset=["churn_date"])
    assert (churned["max"] < churned["churn_date"]).all()
    assert set(events["user_id"]) == set(truth.index)  # every shopper appears at least once


def test_daily_and_weekly_rhythm(events):
    hour = events["t"].dt.hour
    assert (hour.between(18, 21)).sum() > 3 * (hour.between(2, 5)).sum()
    weekday = events["t"].dt.weekday
    per_day = events.groupby([events["t"].dt.normalize()]).size()
    weekend = per_day[per_day.index.weekday >= 5].mean()
    midweek = per_day[per_day.index.weekday.isin([1, 2])].mean()
    assert weekend > 1.1 * midweek
    assert weekday.nunique() == 7


def test_recent_categories_come_back(events):
    views = events[events["event_type"] == "view"].sort_values(["user_id", "t"], kind="stable")
    firsts = views.groupby("user_session", sort=False).first().sort_values(["user_id", "t"])
    counts = views.groupby(["user_session", "category"]).size().sort_values(ascending=False, kind="stable")
    prev_main = counts.reset_index().drop_duplicates("user_session").set_index("user_session")["category"]
    firsts["prev"] = prev_main.reindex(firsts.index).groupby(firsts["user_id"]).shift().to_numpy()
    known = firsts.dropna(subset=["prev"])
    assert (known["category"] == known["prev"]).mean() > 0.35  # 0.15 without the habit


def test_iter_chunks_hold_exactly_the_simulated_events():
    cfg = SimConfig(block_users=100)
    whole = simulate(350, 2, 5, config=cfg).events
    chunks = list(iter_chunks(350, 2, 5, users_per_chunk=150, config=cfg))
    assert len(chunks) == 2  # 150 rounds up to two blocks of 100: 200 + 150 shoppers
    users = [set(c["user_id"]) for c in chunks]
    assert not users[0] & users[1]
    assert all(c["event_time"].is_monotonic_increasing for c in chunks)
    rebuilt = pd.concat(chunks).sort_values("event_time", kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(rebuilt, whole)


def test_write_csv_round_trips_and_gzip_bytes_are_reproducible(tmp_path):
    sim = simulate(60, 2, 3)
    path = tmp_path / "ev.csv.gz"
    assert write_csv(sim, path) == len(sim.events)
    data = path.read_bytes()
    assert data[:2] == b"\x1f\x8b"
    assert write_csv(sim.events, tmp_path / "again.csv.gz") == len(sim.events)
    assert (tmp_path / "again.csv.gz").read_bytes() == data
    back = pd.read_csv(path, dtype={"category_code": "str", "brand": "str", "user_session": "str"})
    assert list(back.columns) == list(EVENT_COLUMNS)
    pd.testing.assert_frame_equal(back, sim.events, check_dtype=False)
    first = gzip.decompress(data).split(b"\n")[1].decode()
    row = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC,\w+,\d+,\d{19},[a-z_.]*,[a-z]*,\d+\.\d\d,\d{9},\w{7}"
    assert re.fullmatch(row, first)
    plain = tmp_path / "ev.csv"
    rows = write_csv(iter_chunks(60, 2, 3, users_per_chunk=30, config=SimConfig(block_users=30)), plain)
    assert rows == len(simulate(60, 2, 3, config=SimConfig(block_users=30)).events)
    assert plain.read_bytes().count(b"event_time") == 1  # one header for all chunks


@pytest.mark.parametrize("kwargs, message", [
    ({"n_users": 0}, "n_users must be an integer >= 1; got 0"),
    ({"weeks": 1.5}, "weeks must be an integer >= 1; got 1.5"),
    ({"seed": -1}, "seed must be an integer >= 0; got -1"),
    ({"start": "someday"}, "start must be a date such as '2024-01-01'; got 'someday'"),
])
def test_bad_arguments_name_the_parameter(kwargs, message):
    with pytest.raises(CartsightError, match=re.escape(message)):
        simulate(**{"n_users": 10, "weeks": 1, **kwargs})


def test_write_csv_rejects_unknown_compression_and_bad_frames(tmp_path):
    with pytest.raises(CartsightError, match="compress must be 'gzip' or None; got 'zip'"):
        write_csv(pd.DataFrame(), tmp_path / "x.csv", compress="zip")
    with pytest.raises(CartsightError, match=r"lacks columns \['event_time'"):
        write_csv(pd.DataFrame({"user_id": [1]}), tmp_path / "x.csv")


# ------------------------------------------------------------------ the committed sample file
@pytest.fixture(scope="module")
def sample():
    return pd.read_csv(SAMPLE_FILE, dtype={"category_code": "str", "brand": "str", "user_session": "str"})


def test_committed_sample_file_meets_the_brief(sample):
    assert SAMPLE_FILE.stat().st_size < 8 * 1024 * 1024
    assert list(sample.columns) == list(EVENT_COLUMNS)
    assert 150_000 <= len(sample) <= 260_000
    assert sample["user_id"].nunique() >= 3000
    times = pd.to_datetime(sample["event_time"].str[:19])
    assert times.max() - times.min() >= pd.Timedelta(weeks=8)
    assert set(sample["event_type"]) == set(EVENT_TYPE_NAMES)
    assert sample["category_code"].nunique() >= 20
    assert sample["brand"].nunique() >= 100
    assert sample["price"].quantile(0.95) > 10 * sample["price"].quantile(0.05)


@pytest.mark.slow
def test_committed_sample_file_is_what_generate_writes(tmp_path):
    """The committed file is exactly the documented command's output (regenerate it if this fails)."""
    out = tmp_path / "sample.csv.gz"
    write_csv(simulate(3000, 10, 7, "2024-01-01"), out)
    assert out.read_bytes() == SAMPLE_FILE.read_bytes()


def test_write_csv_quotes_values_that_need_it(tmp_path):
    frame = simulate(20, 1, 2).events.head(3).copy()
    frame["brand"] = ["a,b", 'say "hi"', None]
    write_csv(frame, tmp_path / "q.csv")
    lines = (tmp_path / "q.csv").read_text().splitlines()
    assert ',"a,b",' in lines[1] and ',"say ""hi""",' in lines[2]
    back = pd.read_csv(tmp_path / "q.csv", dtype={"brand": "str"})
    assert back["brand"].iloc[0] == "a,b" and back["brand"].iloc[1] == 'say "hi"'
    assert pd.isna(back["brand"].iloc[2])


def test_truth_holds_each_shoppers_entry_chance_and_taste_mix(sim, events):
    cfg = sim.config
    enter = sim.truth["mode_enter"].to_numpy()
    assert ((enter > 0) & (enter <= 0.9)).all() and abs(enter.mean() - cfg.mode_enter) < 0.2 * cfg.mode_enter
    assert sim.taste.shape == (N_USERS, len(CATEGORIES)) and np.allclose(sim.taste.sum(axis=1), 1.0)
    top = np.array([c[0] for c in CATEGORIES])[sim.taste.argmax(axis=1)]
    assert (top == sim.truth["top_category"].to_numpy()).all()
    # shoppers whose entry chance is in the top quarter spend a larger share of their days in buying mode
    high = enter >= np.quantile(enter, 0.75)
    low = enter <= np.quantile(enter, 0.25)
    assert sim.truth["buying_share"][high].mean() > 1.5 * sim.truth["buying_share"][low].mean()
