"""The training-time estimate and the time left of a running job (core.model.train_estimate), on hand-checked numbers."""
from __future__ import annotations

import pytest

from core.model import train_estimate


def test_rate_scales_training_with_the_sampled_events_and_scoring_with_every_shopper():
    rate = train_estimate.TrainingRate(fixed_s=10.0, per_1k_events_s=0.2, per_shopper_s=0.001)
    # 3,000 shoppers, 200,000 events, all trained on: 10 + 0.2 * 200 + 0.001 * 3,000
    assert rate.seconds(3_000, 200_000, 20_000) == pytest.approx(53.0)
    # 40,000 shoppers above a 20,000 cap: half the events are trained on, every shopper is scored
    assert rate.seconds(40_000, 2_000_000, 20_000) == pytest.approx(10 + 0.2 * 1_000 + 40)
    assert rate.seconds(0, 0, 20_000) == pytest.approx(10.0)


def test_estimate_scales_the_datasets_last_training_when_there_is_one():
    assert train_estimate.estimate_training_seconds(3_000, 200_000, 20_000, previous_seconds=40.0,
                                        previous_users_trained=2_000) == pytest.approx(60.0)
    assert train_estimate.estimate_training_seconds(30_000, 2_000_000, 20_000, previous_seconds=40.0,
                                        previous_users_trained=2_000) == pytest.approx(400.0)
    assert train_estimate.estimate_training_seconds(3_000, 200_000, 20_000) == pytest.approx(
        train_estimate.DEFAULT_RATE.seconds(3_000, 200_000, 20_000))


@pytest.mark.parametrize("fraction, elapsed, estimate, expected", [
    (0.5, 30.0, None, 30.0),      # half done in 30 s: 30 s to go
    (0.25, 10.0, 999.0, 30.0),    # its own pace wins over the estimate once past 5 %
    (0.01, 20.0, 50.0, 30.0),     # too early to extrapolate: the estimate less the time spent
    (0.01, 80.0, 50.0, 0.0),      # past the estimate: not negative
    (0.0, 5.0, None, None),       # nothing to go by
    (1.0, 5.0, None, 0.0),
])
def test_remaining_seconds(fraction, elapsed, estimate, expected):
    assert train_estimate.remaining_seconds(fraction, elapsed, estimate) == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize("seconds, words", [(3, "about 5 s"), (41, "about 45 s"), (60, "about 1 min"),
                                            (61, "about 2 min"), (3_900, "about 1 h 5 min")])
def test_describe_seconds(seconds, words):
    assert train_estimate.describe_seconds(seconds) == words
