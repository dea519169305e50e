"""AppTest of the uplift part of the Campaigns page's Results (pages/campaign_uplift.py) and the list builder's
ranking by uplift, on a simulated campaign that moved one group of shoppers, both stores."""
from __future__ import annotations

import pytest

from core import store
from core.campaigns import exports, uplift
from tests.campaigns.test_uplift import GROUP_EFFECT, SIM_USERS, uplift_campaign, without_refits
from tests.conftest import plotly_charts, plotly_values, run_page
from tests.e2e_support import ROOT

PAGE = str(ROOT / "pages" / "campaigns.py")
TIMEOUT_S = 180
PERSUADABLES = "estimated uplift (persuadables)"


@pytest.mark.slow
def test_fit_uplift_draws_the_qini_curve_and_offers_the_ranking(app_store_url, tmp_path, monkeypatch):
    from core import config

    monkeypatch.setenv(config.HOME_ENV, str(tmp_path / "home"))
    without_refits(monkeypatch)
    engine = store.make_engine(app_store_url)
    sim = uplift_campaign(engine, seed=31, effect=GROUP_EFFECT)
    export_id = sim["export_id"]
    at = run_page(PAGE, TIMEOUT_S, dataset="sim")
    assert PERSUADABLES not in at.selectbox(key="camp_rank_by").options
    assert at.checkbox(key="camp_uplift_on").disabled
    assert "Qini curve" not in plotly_charts(at)

    at.button(key=f"camp_uplift_fit_{export_id}").click().run(timeout=TIMEOUT_S)
    assert not at.exception, [e.value for e in at.exception]
    assert [s.value for s in at.success if s.value == f"Uplift ranking: {uplift.VERDICT_BETTER}."]
    chart = plotly_charts(at)["Qini curve"]
    assert (chart["layout"]["xaxis"]["title"]["text"], chart["layout"]["yaxis"]["title"]["text"]) == (
        "share of shoppers targeted (%)", "incremental buyers")
    assert [t["name"] for t in chart["data"]] == ["Ranked by estimated uplift", "Ranked by chance to buy",
                                                  "Random targeting"]
    shares, ranked = plotly_values(chart["data"][0]["x"]), plotly_values(chart["data"][0]["y"])
    random = plotly_values(chart["data"][2]["y"])
    assert ranked[-1] == pytest.approx(random[-1])  # both end at the campaign's incremental buyers
    half = shares.index(50.0)
    assert ranked[half] > 0.7 * random[-1]  # the persuadables first: the top half holds most incremental buyers
    metrics = {m.label: m.value for m in at.metric}
    qini = {k: float(v.split()[0]) for k, v in metrics.items() if k.startswith("Qini")}  # "+1.1 points"
    assert qini["Qini by uplift"] > qini["Qini by chance to buy"]

    assert PERSUADABLES in at.selectbox(key="camp_rank_by").options
    at.selectbox(key="camp_rank_by").set_value("uplift")
    at.radio(key="camp_top_mode").set_value("top %").run(timeout=TIMEOUT_S)
    assert not at.exception, [e.value for e in at.exception]
    assert next(m.value for m in at.metric if m.label == "Shoppers matching these filters") == f"{SIM_USERS // 10:,}"
    preview = next(df.value for df in at.dataframe if "uplift" in df.value.columns)
    assert preview["user_id"].isin(sim["affected"]).mean() > 0.8
    at.download_button(key="camp_export").click().run(timeout=TIMEOUT_S)
    history = exports.list_exports(engine, "sim")
    assert history["ranking"].tolist()[:2] == ["uplift", "propensity"]  # newest first
    engine.dispose()
