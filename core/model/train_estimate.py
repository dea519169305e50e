"""How long a training will take, said before Train is pressed and counted down while it runs.

Training time grows with the events of the shoppers it learns from (a seeded sample above
``max_train_users``) and scoring with every shopper. :func:`estimate_training_seconds` scales
the last training of the same dataset when there is one (the rate this machine reached on
this data), else the rates ``bench/model.py`` measured (:data:`DEFAULT_RATE`).
:func:`remaining_seconds` turns a running job's progress into the time left.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

#: Progress below this share of the whole is too little to extrapolate the time left from.
MIN_FRACTION_TO_EXTRAPOLATE = 0.05


@dataclass(frozen=True)
class TrainingRate:
    """Seconds a training spends: a fixed part, per 1,000 events of the shoppers trained on, and per shopper scored.

    fixed_s: reading the window, importing the model libraries, writing the version.
    per_1k_events_s: sequences, fitting, calibration and evaluation, per 1,000 events trained on.
    per_shopper_s: scoring one shopper with reasons and writing their row.
    """

    fixed_s: float
    per_1k_events_s: float
    per_shopper_s: float

    def seconds(self, n_users: int, n_events: int, max_train_users: int) -> float:
        """The estimate for a dataset of ``n_users`` shoppers and ``n_events`` events."""
        share = min(1.0, max_train_users / n_users) if n_users else 1.0
        return self.fixed_s + self.per_1k_events_s * n_events * share / 1000 + self.per_shopper_s * n_users


#: The CPU time of ``python bench/model.py --users 3000`` (one torch thread, so the wall time on an idle core):
#: 3,000 shoppers and 194,000 events train and score in about 60 s. A busy machine takes longer; the time left
#: shown while training follows the job's own pace.
DEFAULT_RATE = TrainingRate(fixed_s=6.0, per_1k_events_s=0.25, per_shopper_s=0.001)


def estimate_training_seconds(n_users: int, n_events: int, max_train_users: int,
                              previous_seconds: float | None = None, previous_users_trained: int | None = None) -> float:
    """Expected seconds to train and score a dataset of ``n_users`` shoppers and ``n_events`` events.

    ``previous_seconds`` and ``previous_users_trained``: the dataset's last training (its card's
    ``training_seconds`` and ``n_users_trained``), scaled by the shoppers trained on now; without
    them, :data:`DEFAULT_RATE`. Raises nothing; 0 shoppers or events give the fixed part.
    """
    if previous_seconds and previous_users_trained:
        return previous_seconds * min(n_users, max_train_users) / previous_users_trained
    return DEFAULT_RATE.seconds(n_users, n_events, max_train_users)


def remaining_seconds(fraction: float, elapsed_s: float, estimate_s: float | None = None) -> float | None:
    """Seconds left of a job ``fraction`` (0..1) done after ``elapsed_s``: extrapolated from its own pace once
    it is past :data:`MIN_FRACTION_TO_EXTRAPOLATE`, before that the estimate less the time spent; None when
    neither is known."""
    if fraction >= 1.0:
        return 0.0
    if fraction >= MIN_FRACTION_TO_EXTRAPOLATE:
        return elapsed_s * (1.0 - fraction) / fraction
    if estimate_s is not None:
        return max(estimate_s - elapsed_s, 0.0)
    return None


def describe_seconds(seconds: float) -> str:
    """"about 40 s", "about 2 min", "about 1 h 5 min": rounded the way a person says a wait."""
    if seconds < 60:
        return f"about {max(5, 5 * math.ceil(seconds / 5))} s"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60} min"
