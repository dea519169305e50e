"""The refresh charts: labelled axes with units, cells and points from the analysis' numbers."""
import pandas as pd

from core.analysis import forecast_history, migration
from core.charts import refresh
from tests.analysis.test_migration import AFTER, BEFORE
from tests.conftest import plotly_values


def test_the_migration_heatmap_labels_each_cell_with_its_share_and_shoppers():
    m = migration.migration_matrix(BEFORE, AFTER, 4, 9)
    fig = refresh.migration_heatmap(m.counts, m.shares, 4, 9).to_dict()
    assert fig["layout"]["xaxis"]["title"]["text"] == "Segment in the later run (9)"
    assert fig["layout"]["yaxis"]["title"]["text"] == "Segment in the earlier run (4)"
    assert fig["data"][0]["text"][0][:2] == ["66.7 %<br>2", "33.3 %<br>1"]
    assert list(fig["data"][0]["y"])[-1] == migration.NEW_ROW


def test_then_and_now_and_the_history_name_their_units():
    shift = forecast_history.propensity_shift(pd.Series({"a": 0.1, "b": 0.3}), pd.Series({"a": 0.2, "b": 0.4}))
    fig = refresh.propensity_then_now(shift.bins, 14, "then", "now").to_dict()
    assert fig["layout"]["xaxis"]["title"]["text"] == "Chance to buy within 14 days (%)"
    assert fig["layout"]["yaxis"]["title"]["text"] == "Shoppers (% of the scoring)"
    history = pd.DataFrame({"as_of": pd.to_datetime(["2024-03-01", "2024-03-08"]), "scored_at": pd.NaT,
                            "model_version": "v", "kind": ["training", "rescore"], "horizon_days": 7,
                            "purchase_propensity": [0.1, 0.25], "expected_revenue": [3.0, 4.5], "p_inactive": 0.5,
                            "next_category": "x"})
    fig = refresh.forecast_history_chart(history).to_dict()
    assert fig["layout"]["yaxis"]["title"]["text"] == "Chance to buy within 7 days (%)"
    assert fig["layout"]["yaxis2"]["title"]["text"] == "Expected revenue (the file's currency)"
    assert fig["layout"]["xaxis"]["title"]["text"] == "Data up to (as-of time, UTC)"
    assert [round(v, 6) for v in plotly_values(fig["data"][0]["y"])] == [10.0, 25.0]
