"""The forecasts' words: one label per number on every page, CSV headers that say the same, old headers read back."""
import pandas as pd

from core.present import vocabulary


def test_the_two_purchase_numbers_have_different_names_everywhere():
    labels = vocabulary.column_labels(7)
    assert labels["purchase_propensity"] == "Chance to buy within 7 days"
    assert labels["p_purchase"] == "Next step: purchase" and labels["next_event_type"] == "Likely next step"
    assert vocabulary.chance_to_buy(1) == "Chance to buy within 1 day"
    names = vocabulary.export_names(14)
    assert names["purchase_propensity"] == "p_buy_within_14d" and names["p_purchase"] == "next_step_p_purchase"
    assert len(set(labels.values())) == len(labels) and len(set(names.values())) == len(names)
    # each explanation names the other number, so nobody reads one for the other
    assert "Next step: purchase" in vocabulary.chance_to_buy_help(7)
    assert "Chance to buy within 7 days" in vocabulary.next_step_help(7) and "not calibrated" in vocabulary.next_step_help(7)


def test_export_headers_read_back_as_the_stored_names():
    stored = pd.DataFrame({"user_id": ["a"], "purchase_propensity": [0.4], "next_event_type": ["cart"],
                           "p_purchase": [0.33], "next_category_p": [0.2], "expected_revenue": [12.0]})
    exported = vocabulary.export_frame(stored, 7)
    assert list(exported.columns) == ["user_id", "p_buy_within_7d", "next_step", "next_step_p_purchase",
                                      "next_category_p", "expected_revenue"]
    pd.testing.assert_frame_equal(vocabulary.stored_frame(exported), stored)
    pd.testing.assert_frame_equal(vocabulary.stored_frame(stored), stored)  # an older file's header as it is
