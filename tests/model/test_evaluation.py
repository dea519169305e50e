import math

import numpy as np
import pytest

from core import config
from core.errors import ParameterError
from core.model import evaluation as ev


def test_roc_and_pr_auc_by_hand():
    y, p = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    # pairs (pos, neg): (0.35>0.1) (0.35<0.4) (0.8>0.1) (0.8>0.4) -> 3 of 4
    assert ev.roc_auc(y, p) == pytest.approx(0.75)
    # ranked: 1, 0, 1, 0 -> precision 1 at recall .5, 2/3 at recall 1
    assert ev.pr_auc(y, p) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_auc_none_for_one_class():
    assert ev.roc_auc([0, 0, 0], [0.1, 0.2, 0.3]) is None
    assert ev.pr_auc([1, 1], [0.1, 0.2]) is None
    assert ev.roc_auc([], []) is None


@pytest.mark.parametrize(
    "y, p, message",
    [([0, 2], [0.1, 0.2], r"y must hold 0/1 labels; found \[2.0\]"),
     ([0, 1], [0.1], "same length; got 2 labels and 1 scores"),
     ([0, 1], [0.1, float("nan")], "1 missing scores")],
)
def test_bad_inputs(y, p, message):
    with pytest.raises(ParameterError, match=message):
        ev.roc_auc(y, p)


def test_lift_by_decile_by_hand():
    ranked_y = [1, 1, 1, 0, 0, 0, 1, 0] + [0] * 12  # 20 shoppers, 4 buyers, overall rate 0.2
    scores = np.linspace(1.0, 0.05, 20)
    order = np.random.default_rng(3).permutation(20)  # shuffled input, ranking must restore it
    table = ev.lift_by_decile(np.array(ranked_y)[order], scores[order])
    assert list(table["decile"]) == list(range(1, 11))
    assert list(table["n"]) == [2] * 10
    assert list(table["buyers"]) == [2, 1, 0, 1, 0, 0, 0, 0, 0, 0]
    assert list(table["rate"][:4]) == [1.0, 0.5, 0.0, 0.5]
    assert list(table["lift"][:4]) == pytest.approx([5.0, 2.5, 0.0, 2.5])
    assert list(table["cum_gain"][:4]) == pytest.approx([0.5, 0.75, 0.75, 1.0])
    assert table["cum_share"].iloc[2] == pytest.approx(0.3) and table["cum_gain"].iloc[-1] == 1.0


def test_lift_small_n_and_ties():
    # 5 shoppers: shopper r falls in decile 2r + 1; equal scores keep their given order
    table = ev.lift_by_decile([0, 1, 1, 0, 0], [0.5, 0.5, 0.9, 0.1, 0.2])
    assert list(table["decile"]) == [1, 3, 5, 7, 9]
    assert list(table["buyers"]) == [1, 0, 1, 0, 0]  # order: 0.9(1), 0.5(0), 0.5(1), 0.2, 0.1
    assert math.isnan(ev.lift_by_decile([0, 0], [0.3, 0.1])["lift"].iloc[0])


def test_calibration_table_by_hand():
    y, p = [0, 1, 0, 1, 1], [0.05, 0.15, 0.55, 0.6, 1.0]
    two = ev.calibration_table(y, p, n_bins=2)
    assert list(two["bin"]) == [0, 1] and list(two["n"]) == [2, 3]
    assert list(two["mean_predicted"]) == pytest.approx([0.1, (0.55 + 0.6 + 1.0) / 3])
    assert list(two["observed_rate"]) == pytest.approx([0.5, 2 / 3])
    assert list(two["lower"]) == [0.0, 0.5] and list(two["upper"]) == [0.5, 1.0]
    ten = ev.calibration_table(y, p)
    assert list(ten["bin"]) == [0, 1, 5, 6, 9]  # p = 1.0 goes to the last bin
    # ECE with 2 bins: 2/5 * |0.5 - 0.1| + 3/5 * |2/3 - 0.71667|
    assert ev.expected_calibration_error(y, p, 2) == pytest.approx(0.4 * 0.4 + 0.6 * abs(2 / 3 - 2.15 / 3))


def test_accuracy_and_ndcg_by_hand():
    true = ["a", "b", "c", None, float("nan")]
    ranked = [["a", "x"], ["x", "b"], ["x", "y"], ["a"], ["a"]]
    assert ev.accuracy_at_k(true, ranked, 1) == pytest.approx(1 / 3)
    assert ev.accuracy_at_k(true, ranked, 2) == pytest.approx(2 / 3)
    assert ev.ndcg_at_k(true, ranked, 1) == pytest.approx(1 / 3)
    assert ev.ndcg_at_k(true, ranked, 2) == pytest.approx((1 + 1 / math.log2(3)) / 3)
    assert ev.accuracy_at_k([None], [["a"]], 1) is None
    out = ev.evaluate_ranking(true, ranked, ks=(1, 2), ndcg_k=2)
    assert out == pytest.approx({"n": 3, "accuracy@1": 1 / 3, "accuracy@2": 2 / 3, "ndcg@2": (1 + 1 / math.log2(3)) / 3})
    with pytest.raises(ParameterError, match="k must be a whole number >= 1; got 0"):
        ev.accuracy_at_k(true, ranked, 0)
    with pytest.raises(ParameterError, match="same length; got 1 and 2"):
        ev.ndcg_at_k(["a"], [["a"], ["b"]], 3)


def test_multiclass_log_loss_by_hand():
    classes = ["a", "b", "c"]
    proba = np.array([[0.5, 0.25, 0.25], [0.1, 0.2, 0.7]])
    assert ev.multiclass_log_loss(["a", "c"], proba, classes) == pytest.approx(-(math.log(0.5) + math.log(0.7)) / 2)
    # rows are renormalised: [1, 1, 2] -> [.25, .25, .5]
    assert ev.multiclass_log_loss(["c"], np.array([[1.0, 1.0, 2.0]]), classes) == pytest.approx(-math.log(0.5))
    # a zero probability is clipped, not infinite
    assert ev.multiclass_log_loss(["b"], np.array([[1.0, 0.0, 0.0]]), classes) == pytest.approx(-math.log(ev.EPS))
    nt = ev.evaluate_next_type(["a", "c"], proba, classes)
    assert nt["accuracy"] == 1.0 and nt["n"] == 2
    with pytest.raises(ParameterError, match=r"labels \['z'\] that are not in classes"):
        ev.multiclass_log_loss(["z"], np.array([[1.0, 0, 0]]), classes)
    with pytest.raises(ParameterError, match=r"shape \(1, 3\).*got \(1, 2\)"):
        ev.multiclass_log_loss(["a"], np.array([[1.0, 0]]), classes)


def test_evaluate_propensity_too_few_buyers():
    rng = np.random.default_rng(0)
    y = np.zeros(100)
    y[:19] = 1
    out = ev.evaluate_propensity(y, rng.random(100))
    assert out["measurable"] is False and out["roc_auc"] is None and out["pr_auc"] is None
    assert out["note"] == ("Too few buyers to measure: 19 of 100 shoppers bought in the held-out window "
                           "(at least 20 are needed).")
    y[19] = 1
    p = y * 0.5 + 0.1  # buyers score 0.6, others 0.1: perfect ranking
    out = ev.evaluate_propensity(y, p)
    assert out["measurable"] is True and out["roc_auc"] == 1.0 and out["pr_auc"] == 1.0
    assert out["buyers"] == 20 and out["base_rate"] == 0.2 and out["note"] == ""
    assert ev.evaluate_propensity([1] * 30, [0.5] * 30)["note"].startswith("Every one of the 30 shoppers")


def test_pick_forecast():
    m = {"model": {"roc_auc": 0.70}, "rfm_gbm": {"roc_auc": 0.80}, "random": {"roc_auc": None}}
    used, note = ev.pick_forecast(m, "roc_auc")
    assert used == "rfm_gbm"
    assert note == ("The model did not beat Rfm gbm on the held-out window (ROC-AUC 0.700 vs 0.800), "
                    "so Rfm gbm's forecast is used.")  # metric and forecast named in words, never by their code names
    used, note = ev.pick_forecast({"model": {"log_loss": 0.9}, "markov": {"log_loss": 1.1}}, "log_loss",
                                  higher_is_better=False)
    assert used == "model" and "beat every baseline" in note
    used, note = ev.pick_forecast({"model": {"roc_auc": None}, "rfm_gbm": {"roc_auc": None}}, "roc_auc")
    assert used == "model" and "could not be measured" in note


def _ece_setup(n=5000, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.random(n)
    y = (rng.random(n) < q).astype(int)
    return y, q ** 3  # scores far too low: a shopper shown 0.125 buys half the time


@pytest.mark.parametrize("method", ["beta", "platt", "interpolated", None])
def test_every_calibration_keeps_every_shopper_apart(method):
    """Calibrated propensities follow the raw order strictly and visibly: two raw scores 0.001 apart never
    land within 0.00001 of each other, where a step function gives whole bands of shoppers one value."""
    y, raw = _ece_setup()
    cal = ev.fit_calibrator(y[:2500], raw[:2500], *([method] if method else []))
    assert cal.kind == (method or config.CALIBRATION_METHOD)
    before = ev.expected_calibration_error(y[2500:], raw[2500:])
    after = ev.expected_calibration_error(y[2500:], cal(raw[2500:]))
    assert before > 0.15 and after < 0.05
    assert ev.roc_auc(y[2500:], cal(raw[2500:])) == pytest.approx(ev.roc_auc(y[2500:], raw[2500:]), abs=1e-12)
    grid = np.linspace(0.05, 0.95, 901)  # raw scores 0.001 apart
    assert (np.diff(cal(grid)) > 1e-5).all()
    scores = np.random.default_rng(1).random(3000)
    assert np.unique(cal(scores)).size == np.unique(scores).size
    again = ev.Calibrator.from_dict(cal.to_dict())
    assert np.allclose(again(grid), cal(grid)) and again.kind == cal.kind


def test_beta_calibration_has_the_lowest_held_out_log_loss_on_a_skewed_score():
    """Scores that are too confident at the top and too shy at the bottom: beta bends both ends, Platt one."""
    rng = np.random.default_rng(4)
    q = rng.beta(1, 6, 20000)
    y = (rng.random(q.size) < q).astype(int)
    raw = q ** 0.5
    fits = {m: ev.fit_calibrator(y[:10000], raw[:10000], m) for m in ("beta", "platt")}
    from sklearn.metrics import log_loss

    losses = {m: log_loss(y[10000:], c(raw[10000:])) for m, c in fits.items()}
    assert losses["beta"] <= losses["platt"] + 1e-4


def test_small_validation_sets_fall_back_from_interpolated_to_platt():
    y, raw = _ece_setup(150, seed=1)
    cal = ev.fit_calibrator(y, raw, "interpolated")
    assert cal.kind == "platt" and cal.a_ > 0
    assert ev.expected_calibration_error(y, cal(raw)) < ev.expected_calibration_error(y, raw)
    with pytest.raises(ParameterError, match="method must be one of"):
        ev.fit_calibrator(y, raw, "splines")


def test_older_versions_calibrators_still_load():
    """A saved isotonic step function reads back joined through its steps' middles (hand-checked knots
    (0, 0.1), (0.5, 0.6), (1, 0.9)); a saved Platt map without the newer ``c`` reads back as it was."""
    old = {"kind": "isotonic", "x": [0.0, 0.3, 0.7, 1.0], "y": [0.1, 0.6, 0.6, 0.9], "a": 1.0, "b": 0.0, "stack": None}
    cal = ev.Calibrator.from_dict(old)
    assert cal.kind == "interpolated" and cal.x_.tolist() == [0.0, 0.5, 1.0] and cal.y_.tolist() == [0.1, 0.6, 0.9]
    assert cal(np.array([0.3, 0.4, 0.5, 0.7])) == pytest.approx([0.4, 0.5, 0.6, 0.72], abs=2e-6)
    platt = ev.Calibrator.from_dict({"kind": "platt", "x": [], "y": [], "a": 2.0, "b": -1.0,
                                     "stack": [1.0, 0.5, 0.1]})
    raw = 1 / (1 + np.exp(-(np.log(0.2 / 0.8) + 0.5 * np.log(0.3 / 0.7) + 0.1)))
    assert platt(0.2, 0.3) == pytest.approx(1 / (1 + np.exp(-(2 * np.log(raw / (1 - raw)) - 1))), abs=2e-6)


def test_step_midpoints_close_the_ends_at_zero_and_one():
    x, y = ev.step_midpoints([0.1, 0.3, 0.4, 0.8], [0.05, 0.05, 0.2, 0.2])
    assert x.tolist() == pytest.approx([0.0, 0.2, 0.6, 1.0]) and y.tolist() == pytest.approx([0.0, 0.05, 0.2, 1.0])


def test_ties_of_a_coarse_baseline_are_broken_by_the_runner_up():
    trees = np.array([0.2, 0.2, 0.2, 0.5])
    model = np.array([0.1, 0.3, 0.2, 0.05])
    out = ev.break_ties(trees, model)
    assert list(np.argsort(-out)) == [3, 1, 2, 0]
    assert np.abs(out - trees).max() < config.TIE_BREAK


def test_identity_calibrator_for_one_class():
    cal = ev.fit_calibrator([0, 0, 0], [0.2, 0.5, 0.9])
    assert cal.kind == "identity"
    assert list(cal(np.array([0.2, 0.7]))) == [0.2, 0.7]


def test_explain_choice():
    labels = {"most_popular": "Most popular", "markov_chain": "Markov chain"}
    lost = {"metrics": {"model": {"accuracy@1": 0.21}, "most_popular": {"accuracy@1": 0.30},
                        "markov_chain": {"accuracy@1": 0.25}}, "used": "most_popular"}
    assert ev.explain_choice(lost, "accuracy@1", labels=labels) == (
        "The model did not beat Most popular on the held-out window (Accuracy@1 0.210 vs 0.300), "
        "so Most popular's forecast is used.")
    won = {"metrics": {"model": {"log_loss": 0.8}, "markov_chain": {"log_loss": 0.9}}, "used": "model"}
    assert ev.explain_choice(won, "log_loss", False, labels) == (
        "The sequence model's forecast is used: it beat every baseline on the held-out window "
        "(Log loss 0.800; best baseline, Markov chain, 0.900).")
    few = {"metrics": {"model": {"roc_auc": None, "note": "Too few buyers to measure: 3 of 90 shoppers bought."}},
           "used": "model"}
    assert ev.explain_choice(few, "roc_auc") == (
        "The sequence model's forecast is used; too few buyers to measure: 3 of 90 shoppers bought.")


def test_stacking_two_models_beats_each_and_stays_calibrated():
    rng = np.random.default_rng(3)
    n = 6000
    a, b = rng.normal(size=n), rng.normal(size=n)  # two independent signals, one seen by each model
    y = (rng.random(n) < 1 / (1 + np.exp(-(a + b - 2)))).astype(int)
    p_a, p_b = 1 / (1 + np.exp(-(a - 2))), 1 / (1 + np.exp(-(b - 2)))
    half = n // 2
    stack = ev.fit_stacker(y[:half], p_a[:half], p_b[:half])
    assert stack is not None and stack[0] > 0.5 and stack[1] > 0.5
    cal = ev.fit_calibrator(y[:half], ev.Calibrator(stack=stack).blend(p_a[:half], p_b[:half]))
    cal.stack_ = stack
    blended = cal(p_a[half:], p_b[half:])
    auc = ev.roc_auc(y[half:], blended)
    assert auc > ev.roc_auc(y[half:], p_a[half:]) + 0.05 and auc > ev.roc_auc(y[half:], p_b[half:]) + 0.05
    assert ev.expected_calibration_error(y[half:], blended) < 0.03
    again = ev.Calibrator.from_dict(cal.to_dict())
    assert again.stack_ == pytest.approx(stack) and np.allclose(again(p_a[:50], p_b[:50]), blended[:0].tolist() or cal(p_a[:50], p_b[:50]))
    with pytest.raises(ParameterError, match="second model"):
        cal(p_a[:5])


def test_stacking_needs_enough_buyers():
    y = np.array([1] * 5 + [0] * 500)
    p = np.linspace(0.01, 0.9, y.size)
    assert ev.fit_stacker(y, p, p[::-1]) is None


def test_a_calibrated_forecast_stays_within_the_campaign_filters_tolerance_of_its_map():
    """The tie-break moves a forecast off the fitted map's value by less than TIE_BREAK; campaign filters
    compare propensity bounds with that slack (PROPENSITY_TOLERANCE), so "at least 0.6" keeps a 0.6 forecast."""
    cal = ev.Calibrator("interpolated", x=[0.0, 0.3, 0.7, 1.0], y=[0.1, 0.6, 0.6, 0.9])  # flat from 0.3 to 0.7
    raw = np.array([0.3, 0.4, 0.5, 0.6, 0.7])
    on_flat = cal(raw)
    assert (on_flat < 0.6).any() and len(set(on_flat.tolist())) == len(raw)  # off the value, raw order kept
    assert np.abs(on_flat - 0.6).max() < config.TIE_BREAK
    assert config.PROPENSITY_TOLERANCE == config.TIE_BREAK
    assert (on_flat >= 0.6 - config.PROPENSITY_TOLERANCE).all()
