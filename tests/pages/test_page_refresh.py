"""AppTest of the refresh on the pages, on both stores: after a file is added, Forecasts offers Rescore and Retrain
beside its note; a rescore keeps the earlier forecasts, and the page shows the chance to buy then and now; the
Shopper page shows a shopper's forecast history; the Segments page the migration matrix between two runs."""
from __future__ import annotations

import pytest

from core import store
from core.analysis import forecast_history, migration, segments
from core.model import forecast
from core.simulate import files, simulate
from tests.conftest import ON_BOTH_STORES, load_simulated_shop, make_dataset, run_page
from tests.conftest import plotly_charts as _charts
from tests.e2e_support import ROOT, run_until
from tests.pages.test_page_forecasts import TINY, TINY_SETTINGS, canonical

TIMEOUT_S = 120
pytestmark = pytest.mark.slow


def _page(name: str, **state):
    return run_page(str(ROOT / "pages" / f"{name}.py"), TIMEOUT_S, dataset="shop", **state)


@ON_BOTH_STORES
def test_rescore_after_an_append_shows_what_moved_and_each_shoppers_history(app_store_url, tmp_path):
    from core.ingest.load import ingest_file

    engine = store.make_engine(app_store_url)
    sim = simulate(150, weeks=5, seed=8)
    rows = canonical(sim.events)
    split = max(r["event_time"] for r in rows).timestamp() - 7 * 86400
    later = [r["event_time"].timestamp() > split for r in rows]
    make_dataset(engine, "shop", [r for r, x in zip(rows, later) if not x])
    card = forecast.train(engine, "shop", horizon_days=7, config=TINY, settings=TINY_SETTINGS)
    files.write_csv(sim.events[later], tmp_path / "week.csv")
    ingest_file(engine, tmp_path / "week.csv", "shop", append=True)

    at = _page("forecasts")
    assert [w.value for w in at.warning if "added since" in w.value]
    at.button(key="forecast_rescore").click().run()
    run_until(at, lambda: bool(at.success) or bool(at.error), TIMEOUT_S)
    assert not at.error, at.error[0].value
    n = len({r["user_id"] for r in rows})
    assert at.success[0].value.startswith(f"Scored {n:,} shoppers again with model {card.model_version}")
    at = _page("forecasts")
    assert not [w.value for w in at.warning if "added since" in w.value]  # the forecasts see every event now

    did = card.dataset_id
    now, then = forecast_history.list_scorings(engine, did)[:2]
    shift = forecast_history.propensity_shift(
        *(forecast_history.scoring_forecasts(engine, did, s).set_index("user_id")["purchase_propensity"]
          for s in (then, now)))
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["Moved up a decile or more"] == f"{shift.moved_up:,}"
    assert tiles["Moved down a decile or more"] == f"{shift.moved_down:,}"
    assert tiles["Expected buyers"] == f"{shift.expected_buyers_now:,.1f}"  # an expected count: one decimal, as on Campaigns
    chart = _charts(at)["Chance to buy within 7 days"]
    assert chart["layout"]["xaxis"]["title"]["text"] == "Chance to buy within 7 days (%)"
    assert [t["name"] for t in chart["data"]] == [f"Then: {then.label()}", f"Now: {now.label()}"]

    shopper = next(r["user_id"] for r, x in zip(rows, later) if not x)
    at = _page("shopper", shopper_id=shopper)
    expected = forecast_history.shopper_forecast_history(engine, did, shopper)
    shown = [d.value for d in at.dataframe if "purchase_propensity" in d.value.columns]
    assert len(shown) == 1 and list(shown[0]["kind"]) == ["training", "rescore"]
    assert shown[0]["purchase_propensity"].tolist() == pytest.approx((100 * expected["purchase_propensity"]).tolist())
    assert "This shopper's forecasts at each scoring" in _charts(at)
    engine.dispose()


@ON_BOTH_STORES
def test_segments_page_shows_where_each_segment_went(app_store_url):
    engine = store.make_engine(app_store_url)
    load_simulated_shop(engine, "shop", 150, weeks=3, seed=6)
    first = segments.run_segmentation(engine, "shop", n_segments=3, seed=0)
    second = segments.run_segmentation(engine, "shop", n_segments=2, seed=0)
    at = _page("segments")
    assert at.selectbox(key="segments_moved_from").value == first.run_id
    assert at.selectbox(key="segments_moved_to").value == second.run_id
    m = migration.segment_migration(engine, "shop")
    tiles = {t.label: t.value for t in at.metric}
    assert tiles["Stayed in their segment"] == f"{m.stayed:,}" and tiles["Moved to another segment"] == f"{m.moved:,}"
    assert m.stayed + m.moved == 150 and tiles["New in the later run"] == "0"
    heat = _charts(at)["Where each segment's shoppers went"]
    assert heat["layout"]["xaxis"]["title"]["text"] == f"Segment in the later run ({second.run_id})"
    assert heat["layout"]["yaxis"]["title"]["text"] == f"Segment in the earlier run ({first.run_id})"
    engine.dispose()
