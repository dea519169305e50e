"""Which propensity calibration to use: held-out calibration error and ties of each method on the same scores.

For each seed it simulates shoppers (``core.simulate``), trains through ``core.model.forecast.train``
(a small configuration, 1 torch thread), and keeps what the calibration reads: the raw,
stacked scores and the purchase labels of the validation window (where a calibrator is
fitted) and of the held-out test window (where it is judged). Every method of
``core.model.evaluation.fit_calibrator``, and the flat-step isotonic map older versions
used, is then fitted on the same validation scores and measured on the test window:
expected calibration error (10 bins), log loss, Brier score, ROC-AUC, and how coarse the
forecast is (distinct values and the largest group of shoppers sharing one, at 4 places).
The table is printed as Markdown.

    python bench/calibration.py                       # 3,000 shoppers, seeds 4, 5, 6
    python bench/calibration.py --users 1500 --seeds 1 2 3
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import config, simulate, store
from core.model import forecast
from core.model import evaluation as ev  # noqa: E402
from core.model.config import ModelConfig, PipelineSettings  # noqa: E402

SMALL = dict(max_len=20, hidden_size=32, n_layers=1, n_heads=2, epochs=3, min_train_steps=30, batch_size=64,
             max_train_examples=6000, n_train_cutoffs=3, item_vocab_cap=500)
SETTINGS = PipelineSettings(chunk_users=500, torch_threads=1, n_reasons=0)


def captured_scores(n_users: int, weeks: int, seed: int, folder: Path) -> dict:
    """Train once; return {"valid": (y, raw), "test": (y, raw)} as the calibration saw them."""
    from tests.model.test_forecast import canonical, load_events

    engine = store.make_engine(f"duckdb:///{folder / f'calibration-{seed}.duckdb'}")
    load_events(engine, "sim", canonical(simulate.simulate(n_users, weeks=weeks, seed=seed).events))
    seen: dict = {}
    real_fit, real_evaluate = ev.fit_calibrator, forecast._evaluate

    def fit(y, p, *args):
        seen["valid"] = (np.asarray(y, float), np.asarray(p, float))
        return real_fit(y, p, *args)

    def evaluate(test, pred, calibrator, rfm, rankers, history, plan, *args, **kwargs):
        p_rfm = rfm["propensity"].predict_proba(history, plan.test_cutoff, test.batch.user_ids)
        seen["test"] = (test.targets["purchased"].to_numpy(float), calibrator.blend(pred.propensity, p_rfm))
        return real_evaluate(test, pred, calibrator, rfm, rankers, history, plan, *args, **kwargs)

    ev.fit_calibrator, forecast._evaluate = fit, evaluate
    try:
        forecast.train(engine, "sim", horizon_days=7, config=ModelConfig(**SMALL), seed=seed, settings=SETTINGS)
    finally:
        ev.fit_calibrator, forecast._evaluate = real_fit, real_evaluate
        engine.dispose()
    return seen


def _step_isotonic(y, p, test_p) -> np.ndarray:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    return (1 - config.TIE_BREAK) * iso.predict(test_p) + config.TIE_BREAK * test_p


def rows_for(seed, seen: dict) -> list[list]:
    """One row per method: seed, shoppers, method, ECE, log loss, Brier, ROC-AUC, distinct values, largest tie."""
    from sklearn.metrics import brier_score_loss, log_loss

    (yv, pv), (yt, pt) = seen["valid"], seen["test"]
    forecasts = {"flat-step isotonic (older versions)": _step_isotonic(yv, pv, pt)}
    forecasts.update({m: ev.fit_calibrator(yv, pv, m)(pt) for m in ev.CALIBRATION_METHODS})
    rows = []
    for name, c in forecasts.items():
        _, counts = np.unique(np.round(c, 4), return_counts=True)
        rows.append([seed, len(yt), name, ev.expected_calibration_error(yt, c),
                     log_loss(yt, np.clip(c, ev.EPS, 1 - ev.EPS)), brier_score_loss(yt, c), ev.roc_auc(yt, c),
                     len(counts), int(counts.max())])
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--weeks", type=int, default=6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[4, 5, 6])
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ[config.HOME_ENV] = tmp  # the trained versions go with the folder
        for seed in args.seeds:
            rows += rows_for(seed, captured_scores(args.users, args.weeks, seed, Path(tmp)))
    print("| seed | test shoppers | calibration | ECE | log loss | Brier | ROC-AUC | distinct (4 places) | largest tie |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:,} | {r[2]} | {r[3]:.4f} | {r[4]:.4f} | {r[5]:.4f} | {r[6]:.4f} | {r[7]:,} | {r[8]:,} |")
    for name in dict.fromkeys(r[2] for r in rows):
        mine = np.array([r[3:6] for r in rows if r[2] == name], dtype=float).mean(axis=0)
        print(f"| mean | | {name} | {mine[0]:.4f} | {mine[1]:.4f} | {mine[2]:.4f} | | | |")


if __name__ == "__main__":
    main()
