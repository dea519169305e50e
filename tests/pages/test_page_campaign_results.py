"""AppTest of the Campaigns page's Results section (pages/campaign_results.py) on the hand-built shop, both stores."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from core import store
from core.campaigns import exports
from core.campaigns.targets import CampaignFilters, build_target_list
from tests.campaigns.test_campaigns import END, make_shop
from tests.conftest import ON_BOTH_STORES, add_events, plotly_charts, plotly_values, run_page
from tests.e2e_support import ROOT

PAGE = str(ROOT / "pages" / "campaigns.py")
TIMEOUT_S = 60


@pytest.fixture
def measured_shop(app_store_url):
    """The shop with two exports (the older without a holdout) and, for the newer one's exported shoppers, four
    purchases in the week after its as-of time and one of a held-out shopper; the data then runs to day 8."""
    engine = store.make_engine(app_store_url)
    make_shop(engine)
    exports.save_export(engine, build_target_list(engine, "shop", CampaignFilters(top_k=5), holdout_share=0.0), "csv")
    built = build_target_list(engine, "shop", CampaignFilters(), holdout_share=0.5, seed=2)
    export_id = exports.save_export(engine, built, "csv", name="spring")["export_id"]
    buyers = sorted(built.targets["user_id"])[:4] + sorted(built.holdout["user_id"])[:1]
    add_events(engine, "shop", pd.DataFrame([
        {"user_id": u, "event_time": END + dt.timedelta(days=1 + i), "event_type": "purchase", "item_id": "x",
         "category": "c", "price": 20.0, "quantity": 1, "session_id": f"later{i}"} for i, u in enumerate(buyers)]
        + [{"user_id": "u01", "event_time": END + dt.timedelta(days=8), "event_type": "view", "item_id": "x",
            "category": "c", "price": 20.0, "quantity": None, "session_id": "last"}]))
    yield engine, export_id
    engine.dispose()


@ON_BOTH_STORES
def test_results_section_measures_the_newest_export_with_a_holdout(measured_shop):
    engine, export_id = measured_shop
    at = run_page(PAGE, TIMEOUT_S, dataset="shop")
    assert "Results" in [h.value for h in at.subheader]
    pick = at.selectbox(key="camp_results_pick")
    assert pick.options == [f"#{export_id} spring (made {dt.date.today():%Y-%m-%d}, as of 2024-01-31 12:00, "
                            "20 held out)"]  # the export without a holdout cannot be measured
    assert at.number_input(key=f"camp_results_days_{export_id}").value == 7  # the model's horizon
    assert [w.value for w in at.warning if w.value.startswith("Groups too small")]
    headline = next(m.value for m in at.markdown if "The list converted" in m.value).replace("\\", "")
    assert "The list converted at 20.0 % against 5.0 % in the holdout: +15.0 points, 95 % CI" in headline
    assert "Fisher" in headline
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Conversion of the list"] == "20.0 %" and metrics["Incremental buyers"] == "+3.0"
    assert metrics["Incremental revenue"] == "+60.00"  # (80 - 20) / 20 per shopper × 20 exported
    chart = plotly_charts(at)["Conversion by group"]
    assert [t["name"] for t in chart["data"]] == ["The list (exported)", "Holdout (kept back)"]
    assert plotly_values(chart["data"][0]["y"]) == pytest.approx([20.0])
    assert plotly_values(chart["data"][1]["error_y"]["array"])[0] > 0
    decile = next(df.value for df in at.dataframe if "Propensity decile (10 = highest)" in df.value.columns)
    assert decile["Exported"].sum() == 20 and decile["Held out"].sum() == 20
    segment = next(df.value for df in at.dataframe if "Segment" in df.value.columns)
    assert set(segment["Segment"]) == {"Bargain hunters", "Premium fans"}
    assert any("Newcombe" in c.value for c in at.caption)

    at.number_input(key=f"camp_results_days_{export_id}").set_value(2).run()
    assert not at.exception
    assert next(m.value for m in at.metric if m.label == "Conversion of the list") == "5.0 %"  # one purchase by day 2
    assert [w.value for w in at.warning if w.value.startswith("Groups too small")]  # the window has passed
