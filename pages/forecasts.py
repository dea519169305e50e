"""Forecasts: train the sequence model, read its card beside the baselines, browse every shopper's forecast.

Training runs as a ``core.jobs`` job in a worker thread (torch must not block the page); a
fragment polls its progress, draws the live loss curve and offers Cancel. The job lives on a
``st.cache_resource`` board keyed by store and dataset id, so reruns and other sessions find
it; one training runs per store at a time, however many sessions press Train at once.
``core.model.forecast`` is imported inside the functions, so the page opens quickly.
"""
from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from core.charts import forecast as charts
from core import config, jobs, store
from core.model import train_estimate
from core.present import formats, safecsv
from core.present import vocabulary
from core.errors import CartsightError
from core.jobs import Job, JobBoard
from core.model.baselines import BASELINE_LABELS
from core.model.labels import CutoffPlan, plan_cutoffs
from pages.common import current_dataset, get_engine, md, number_column, percent_range, show_error, show_table

MODEL = "model"
FORECAST_LABELS = {MODEL: "Sequence model", **BASELINE_LABELS}
HEAD_TITLES = {
    "propensity": "Chance to buy within the horizon",
    "next_event_type": vocabulary.NEXT_STEP,
    "next_category": vocabulary.NEXT_CATEGORY,
    "next_items": "Likely items",
}
#: How each verdict is shown.
VERDICT_BOXES = {"strong": "success", "useful": "info", "weak": "warning", "not measured": "info"}
#: Metrics shown per head, in this order, with their column titles.
METRIC_COLUMNS = {
    "top_decile_lift": "Top 10 % bought (× average)", "roc_auc": "ROC-AUC", "pr_auc": "PR-AUC",
    "base_rate": "Buyer share", "buyers": "Buyers", "n": "Shoppers",
    "log_loss": "Log loss", "accuracy": "Accuracy", "accuracy@1": "Accuracy@1", "accuracy@5": "Accuracy@5",
    "ndcg@10": "NDCG@10",
}
TOO_FEW = "too few buyers to measure"
CANCELLED_TEXT = "Cancelled, nothing was saved."
RESCORE = "rescore"  # the rescoring job's kind (core.jobs.rescoring_job)
RESCORE_CANCEL_HELP = "Stop scoring; the earlier forecasts stay as they were."
NOTICE_KEY = "forecast_notice"  # a message for this session's next run (a Train press that another one beat)
VALUE_TITLES = {"expected_revenue": "Expected revenue within the horizon",
                "p_inactive": "Lapse risk: no activity at all within the horizon"}
#: Value and churn metrics shown, in this order, with their column titles.
VALUE_METRIC_COLUMNS = {
    "spearman": "Spearman (rank vs spend)", "top_decile_share": "Top 10 % hold (share of revenue)",
    "level": "Forecast ÷ actual total", "roc_auc": "ROC-AUC", "calibration_error": "Calibration error",
    "brier": "Brier score", "inactive_rate": "Inactive share", "n": "Shoppers",
}


# --- the training job (core.jobs) ------------------------------------------------------------------------


def _jobs() -> JobBoard:
    """Training jobs of this server, keyed by (store URL, dataset id) (``core.jobs.training_board``)."""
    return jobs.training_board()


def _start_training(engine, key: tuple, dataset: str, horizon_days: int, estimate_s: float) -> bool:
    """Start training unless a job runs on this store already; False when another session's press came first."""
    job = jobs.training_job(engine, dataset, horizon_days)
    job.inputs["estimate_s"] = estimate_s
    return _jobs().start(key, job, clashes=lambda other: other[0] == key[0])


def _start_rescore(engine, key: tuple, dataset: str, model_version: str) -> bool:
    """Start scoring the dataset again with ``model_version`` unless a model job runs on this store already."""
    return _jobs().start(key, jobs.rescoring_job(engine, dataset, model_version),
                         clashes=lambda other: other[0] == key[0])


def _press(started: bool) -> None:
    """After a Train, Retrain or Rescore press: a notice when another session's press came first, then a rerun."""
    if not started:
        st.session_state[NOTICE_KEY] = ("Another session started a training or a rescore a moment before this press; "
                                        "one runs at a time, so this one was not started.")
    st.rerun()


@st.fragment(run_every=config.TRAIN_REFRESH_SECONDS)
def _training_progress(key: tuple) -> None:
    job: Job | None = _jobs().get(key)
    if job is None:
        return
    if not job.running:
        st.rerun()  # the whole page: the outcome and the new model card
    cancelling = job.stop_requested()
    elapsed = time.monotonic() - job.started
    left = train_estimate.remaining_seconds(job.fraction, elapsed, job.inputs.get("estimate_s"))
    remaining = "" if left is None else f", {train_estimate.describe_seconds(left)} left"
    st.progress(job.fraction, text="Cancelling…" if cancelling else f"{job.message} ({formats.seconds(elapsed)}{remaining})")
    if job.points:
        st.plotly_chart(charts.loss_chart(job.points), key="forecast_live_loss")
    st.button("Cancel", key="forecast_cancel", on_click=job.cancel, disabled=cancelling,
              help=RESCORE_CANCEL_HELP if job.inputs.get("kind") == RESCORE else "Stop training; no model version is "
              "written.")


def _outcome(job: Job) -> None:
    if job.cancelled:
        st.info(CANCELLED_TEXT)
    elif job.error:
        st.error(job.error)
    elif job.result is not None and job.inputs.get("kind") == RESCORE:
        st.success(f"Scored {formats.count(job.result)} shoppers again with model {job.inputs['model_version']} at the data's end; "
                   "its earlier forecasts are kept (What moved, below).")
    elif job.result is not None:
        st.success(f"Trained model {job.result.model_version} in {formats.seconds(job.result.training_seconds)} "
                   f"(horizon {job.inputs['horizon_days']} days).")


# --- controls -------------------------------------------------------------------------------------------


def _controls(engine, ds: dict, key: tuple, busy: bool) -> None:
    # one training at a time per server: two would share the 2 CPU cores and both crawl
    elsewhere = [j.inputs["dataset"] for k, j in _jobs().running() if k != key and k[0] == key[0]]
    left, right = st.columns([1, 3])
    horizon = left.number_input(
        "Horizon (days)", min_value=config.MIN_HORIZON_DAYS, max_value=config.MAX_HORIZON_DAYS,
        value=config.DEFAULT_HORIZON_DAYS, step=1, key="forecast_horizon", disabled=busy,
        help="A purchase within this many days after the forecast counts as 'buys'.",
    )
    plan = None
    try:
        plan = plan_cutoffs(ds["first_event"], ds["last_event"], int(horizon))
    except CartsightError as exc:
        right.error(str(exc))
    if plan is not None:
        with right.expander("How the data is split for this horizon"):
            for line in plan.describe().splitlines():
                st.markdown(f"- {line}")
    if elsewhere:
        right.info(f"A model for dataset '{md(elsewhere[0])}' is training; one training runs at a time, so Train "
                   "waits until it ends.")
    estimate_s = _estimate(engine, ds)
    if not busy:
        right.caption(f"Training and scoring this dataset ({formats.count(ds.get('n_users') or 0)} shoppers, "
                      f"{formats.count(ds.get('rows_loaded') or 0)} events) takes {train_estimate.describe_seconds(estimate_s)} "
                      "on this machine; the page stays usable meanwhile.")
    if left.button("Train", key="forecast_train", type="primary", disabled=busy or plan is None or bool(elsewhere),
                   help="Train on this dataset in the background; the page stays usable."):
        _press(_start_training(engine, key, ds["name"], int(horizon), estimate_s))


def _estimate(engine, ds: dict) -> float:
    """Seconds this dataset's training should take: its last training scaled, else the measured default rate."""
    from core.model import forecast
    from core.model.config import ModelConfig

    try:
        last = forecast.latest_model(engine, ds["name"])
    except CartsightError:
        last = None
    return train_estimate.estimate_training_seconds(
        int(ds.get("n_users") or 0), int(ds.get("rows_loaded") or 0), ModelConfig().max_train_users,
        last.training_seconds if last else None, last.n_users_trained if last else None)


# --- the model card ---------------------------------------------------------------------------------------


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    if isinstance(value, float):
        return formats.score(value)
    return str(value)


def metrics_table(head: str, info: dict) -> pd.DataFrame:
    """One row per forecast (model and baselines) with the head's metrics as text, and which is in use."""
    rows = []
    for name, metrics in info["metrics"].items():
        row = {"Forecast": FORECAST_LABELS.get(name, name), "In use": "✓" if name == info["used"] else ""}
        for k, title in METRIC_COLUMNS.items():
            if k in metrics:
                value = metrics[k]
                if head == "propensity" and k in ("roc_auc", "pr_auc") and metrics.get("measurable") is False:
                    row[title] = TOO_FEW if metrics.get("buyers", 0) < config.MIN_BUYERS_TO_MEASURE else "—"
                elif k == "base_rate" and value is not None:
                    row[title] = formats.percent(value)
                elif k == "top_decile_lift" and value is not None:
                    row[title] = formats.ratio(value)
                else:
                    row[title] = _fmt(value)
        rows.append(row)
    return pd.DataFrame(rows)


def _head_section(head: str, info: dict) -> None:
    from core.model.card import HEAD_METRICS
    from core.model.evaluation import explain_choice

    key, higher = HEAD_METRICS[head]
    label, _ = charts.METRIC_LABELS.get(key, (key, higher))
    st.markdown(f"**{HEAD_TITLES.get(head, head)}**, decided by {label}")
    st.dataframe(metrics_table(head, info), hide_index=True, key=f"forecast_metrics_{head}")
    st.markdown(explain_choice(info, key, higher, FORECAST_LABELS))
    model_note = (info["metrics"].get(MODEL) or {}).get("note")
    if head == "propensity" and model_note:
        st.warning(model_note)
    alone = info.get("transformer_alone")
    if head == "propensity" and alone:
        st.caption(f"The sequence model's propensity stacks the transformer with gradient boosting (weights fitted "
                   f"on the validation window, see the notes below). The transformer alone, before stacking: "
                   f"ROC-AUC {formats.score(alone['roc_auc'])}, PR-AUC {formats.score(alone['pr_auc'])}.")


def value_table(info: dict) -> pd.DataFrame:
    """One row per value or churn forecast (and the propensity alone as a reference) with its metrics as text."""
    from core.model.value import VALUE_LABELS

    labels = {**FORECAST_LABELS, **VALUE_LABELS}
    rows = []
    for name, metrics in {**info["metrics"], **info.get("reference", {})}.items():
        row = {"Forecast": labels.get(name, name), "In use": "✓" if name == info["used"] else ""}
        row.update({title: _fmt(metrics[k]) for k, title in VALUE_METRIC_COLUMNS.items() if k in metrics})
        rows.append(row)
    return pd.DataFrame(rows)


def _value_section(card) -> None:
    """The expected-revenue and lapse-risk heads of the card (nothing for a version trained before them)."""
    for head, info in card.value.items():
        st.markdown(f"**{VALUE_TITLES[head]}**")
        if info["metrics"]:
            st.dataframe(value_table(info), hide_index=True, key=f"forecast_value_{head}")
        st.markdown(info["note"])
        if info.get("calibration"):
            st.plotly_chart(charts.calibration_chart(info["calibration"], "no activity"),
                            key=f"forecast_value_calibration_{head}")


def _headline(card) -> None:
    """What a marketer reads first: the top 10 % beside the RFM baseline, the verdict with its thresholds, the lift."""
    st.markdown(f"**{card.headline()}**")  # our own words and numbers: nothing to escape
    word, sentence = card.verdict()
    getattr(st, VERDICT_BOXES[word])(sentence)
    tiles = st.columns(4)
    tiles[0].metric("Horizon", f"{card.horizon_days} days", help=vocabulary.chance_to_buy_help(card.horizon_days))
    tiles[1].metric("Shoppers scored", f"{formats.count(card.n_users)}")
    if card.lift:
        left, right = st.columns(2)
        left.plotly_chart(charts.lift_chart(card.lift), key="forecast_lift")
        right.plotly_chart(charts.gain_chart(card.lift), key="forecast_gain")
    else:
        st.info("Lift and cumulative gain are not drawn: too few buyers in the held-out window to measure.")


def _model_card(card) -> None:
    st.subheader(f"Model {card.model_version}")
    _headline(card)
    with st.expander("Details for analysts: every metric beside the baselines, blend weights, charts, data window"):
        _card_details(card)


def _card_details(card) -> None:
    from core.model.card import HEAD_METRICS, TARGET_TEXT

    tiles = st.columns(3)
    tiles[0].metric("Shoppers trained on" + (" (a sample)" if card.sampled else ""), f"{formats.count(card.n_users_trained)}")
    tiles[1].metric("Training examples", f"{formats.count(card.n_train_examples)}")
    tiles[2].metric("Training time", formats.seconds(card.training_seconds))
    first, last = card.data_window
    st.caption(
        f"Data window {_fmt_time(first)} to {_fmt_time(last)}; trained {_fmt_time(card.created_at)}. "
        + ("The forecasts come from a refit that includes the latest window." if card.refit_on_latest
           else "The forecasts come from the evaluated model (not refit on the latest window).")
    )
    st.markdown("**Data window, cutoffs and targets**")
    for line in CutoffPlan.from_dict(card.plan).describe().splitlines():
        st.markdown(f"- {line}")
    st.markdown(TARGET_TEXT)

    st.markdown("#### Quality on the held-out window, beside the baselines")
    for head, info in card.heads.items():
        _head_section(head, info)
    _value_section(card)

    st.markdown("#### Charts")
    st.caption("In the bar charts the forecast in use is blue, the others grey.")
    heads = [h for h in card.heads if h in HEAD_METRICS]
    cols = st.columns(2)
    for i, head in enumerate(heads):
        key, _ = HEAD_METRICS[head]
        info = card.heads[head]
        fig = charts.metrics_chart(info["metrics"], key, info["used"], FORECAST_LABELS,
                                   title=f"{HEAD_TITLES.get(head, head)} ({key})")
        cols[i % 2].plotly_chart(fig, key=f"forecast_bars_{head}")
    left, right = st.columns(2)
    if card.calibration:
        left.plotly_chart(charts.calibration_chart(card.calibration), key="forecast_calibration")
    else:
        left.info("The calibration curve is not drawn: too few buyers in the held-out window to measure.")
    if card.loss_curve:
        right.plotly_chart(charts.loss_chart(card.loss_curve), key="forecast_loss")
    for note in card.notes:
        if not any(note.startswith(f"{head}:") for head in card.heads):  # each head's choice is stated above
            st.caption(f"• {note}")


def _fmt_time(t) -> str:
    return t.strftime("%Y-%m-%d %H:%M") if hasattr(t, "strftime") else str(t)


def _pick_card(cards: list):
    if len(cards) == 1:
        return cards[0]
    labels = [f"{c.model_version} · {c.horizon_days}-day horizon · {_fmt_time(c.created_at)}" for c in cards]
    index = st.selectbox("Model version", range(len(cards)), format_func=lambda i: labels[i],
                         key="forecast_version", help="The newest is first.")
    return cards[index or 0]


# --- refresh: rescore or retrain after an append, and what moved ------------------------------------------------


def _freshness(engine, ds: dict, key: tuple, card, busy: bool) -> None:
    """When files were added after these forecasts were made: the note, and Rescore / Retrain beside it."""
    since = store.model_data_since(engine, card.model_version)
    if since is None:
        return
    st.warning(md(since.note("rescore with this model or retrain")))
    mid, right, _ = st.columns([1, 1, 2])
    if mid.button("Rescore with the current model", key="forecast_rescore", disabled=busy,
                  help=f"Score every shopper again with model {card.model_version} at the data's new end, without "
                       "training: its earlier forecasts are kept beside the new ones."):
        _press(_start_rescore(engine, key, ds["name"], card.model_version))
    if right.button("Retrain on all data", key="forecast_retrain", disabled=busy,
                    help=f"Train a new version on every event ({card.horizon_days}-day horizon, as this one); the "
                         "earlier versions and their forecasts are kept."):
        _press(_start_training(engine, key, ds["name"], card.horizon_days, _estimate(engine, ds)))


@st.cache_data(ttl=config.PREDICTIONS_CACHE_TTL_SECONDS, max_entries=config.PREDICTIONS_CACHE_MAX_ENTRIES,
               show_spinner="Comparing the scorings…")
def _shift(_engine, url: str, dataset_id: int, _then, _now, then_id: int, now_id: int):
    """The propensity shift of two scorings (a scoring's forecasts never change under its id)."""
    from core.analysis import forecast_history as fh

    then = fh.scoring_forecasts(_engine, dataset_id, _then).set_index("user_id")["purchase_propensity"]
    now = fh.scoring_forecasts(_engine, dataset_id, _now).set_index("user_id")["purchase_propensity"]
    return fh.propensity_shift(then, now)


def _what_moved(engine, url: str, ds: dict, card) -> None:
    """The chance to buy then and now: two kept scorings (default this version's newest and the one before it)."""
    from core.analysis import forecast_history as fh

    scorings = fh.list_scorings(engine, ds["dataset_id"])
    mine = [s for s in scorings if s.model_version == card.model_version]
    if mine:
        st.caption(f"These forecasts were made on the data up to {_fmt_time(mine[0].as_of)} "
                   f"({mine[0].kind}, {_fmt_time(mine[0].scored_at)} UTC).")
    if len(scorings) < 2:
        return
    st.markdown("#### What moved: the chance to buy then and now")
    now_default = scorings.index(mine[0]) if mine else 0
    left, right = st.columns(2)
    now = right.selectbox("Now", scorings, index=now_default, format_func=fh.Scoring.label, key="forecast_moved_now")
    others = [s for s in scorings if s.scoring_id != now.scoring_id]
    later = [s for s in others if s.scoring_id < now.scoring_id]
    then = left.selectbox("Then", others, index=others.index(later[0]) if later else 0, format_func=fh.Scoring.label,
                          key="forecast_moved_then")
    shift = _shift(engine, url, ds["dataset_id"], then, now, then.scoring_id, now.scoring_id)
    _shift_view(shift, then, now)


def _shift_view(shift, then, now) -> None:
    from core.charts import refresh as refresh_charts

    h = now.horizon_days
    tiles = st.columns(4)
    tiles[0].metric(f"Mean {vocabulary.chance_to_buy(h).lower()}", f"{formats.percent(shift.mean_now)}",
                    formats.signed(shift.mean_now - shift.mean_then, formats.POINTS), help=vocabulary.chance_to_buy_help(h))
    tiles[1].metric("Expected buyers", formats.estimate(shift.expected_buyers_now),
                    formats.signed(shift.expected_buyers_now - shift.expected_buyers_then, formats.ESTIMATE),
                    help="The sum of every shopper's chance to buy: the buyers each scoring expects within its horizon.")
    tiles[2].metric("Moved up a decile or more", f"{formats.count(shift.moved_up)}",
                    help="Shoppers scored both times whose rank decile rose (1 = the top 10 % of a scoring).")
    tiles[3].metric("Moved down a decile or more", f"{formats.count(shift.moved_down)}",
                    help="Shoppers scored both times whose rank decile fell.")
    st.caption(f"{formats.count(shift.stayed)} shoppers kept their decile; {formats.count(shift.new)} were scored now only (new since), "
               f"{formats.count(shift.gone)} then only.")
    st.plotly_chart(refresh_charts.propensity_then_now(shift.bins, h, f"Then: {then.label()}", f"Now: {now.label()}"),
                    key="forecast_moved_chart")
    show_table(shift.deciles, key="forecast_moved_deciles",
               kinds={"mean_then": formats.PERCENT, "mean_now": formats.PERCENT},
               labels={"decile": "Decile then (1 = top 10 %)", "shoppers": "Shoppers scored both times",
                       "moved_up": "Moved up", "stayed": "Kept their decile", "moved_down": "Moved down",
                       "mean_then": "Mean chance then", "mean_now": "Mean chance now"})


# --- every shopper's forecast -------------------------------------------------------------------------------


@st.cache_data(ttl=config.PREDICTIONS_CACHE_TTL_SECONDS, max_entries=config.PREDICTIONS_CACHE_MAX_ENTRIES,
               show_spinner="Reading the forecasts…")
def _options(_engine, url: str, dataset_id: int, model_version: str) -> dict:
    from core.model import forecast_rows

    return forecast_rows.forecast_options(_engine, dataset_id, model_version)


@st.cache_data(ttl=config.PREDICTIONS_CACHE_TTL_SECONDS, max_entries=config.PREDICTIONS_CACHE_MAX_ENTRIES,
               show_spinner="Reading the forecasts…")
def _matching(_engine, url: str, dataset_id: int, model_version: str, chosen, limit: int) -> tuple[pd.DataFrame, int]:
    """The first ``limit`` forecasts the filters keep and how many they keep, both from the store."""
    from core.model import forecast_rows

    return (forecast_rows.matching_forecasts(_engine, dataset_id, model_version, chosen, limit),
            forecast_rows.count_forecasts(_engine, dataset_id, model_version, chosen))


def _shown_caption(shown: int, matched: int, total: int, h: int) -> str:
    if shown < matched:
        head = (f"Showing the first {formats.count(shown)} of {formats.count(matched)} matching shoppers "
                f"({formats.count(total)} in all), highest chance to buy first")
    else:
        head = f"Showing {formats.count(matched)} of {formats.count(total)} shoppers, highest chance to buy first"
    return (f"{head}; click a column to sort. {vocabulary.chance_to_buy_help(h)} {vocabulary.NEXT_CATEGORY_P}: "
            f"{vocabulary.NEXT_CATEGORY_P_HELP}")


def _forecast_filter(options: dict, h: int):
    """The filters above the table, as a :class:`core.model.forecast_rows.ForecastFilter`."""
    from core.model.forecast_rows import ForecastFilter

    labels = vocabulary.column_labels(h)
    left, mid, right = st.columns(3)
    lo_hi = percent_range(left, labels["purchase_propensity"], "forecast_propensity", vocabulary.chance_to_buy_help(h))
    types = mid.multiselect(vocabulary.NEXT_STEP, options["types"],
                            format_func=lambda s: vocabulary.STEP_WORDS.get(s, s), key="forecast_types", placeholder="all",
                            help=vocabulary.next_step_help(h))
    categories = right.multiselect(vocabulary.NEXT_CATEGORY, options["categories"], key="forecast_categories",
                                   placeholder="all")
    return ForecastFilter(tuple(lo_hi), tuple(types), tuple(categories))


def _forecast_table(engine, url: str, ds: dict, card) -> None:
    st.markdown("#### Every shopper's forecast")
    did, version, h = ds["dataset_id"], card.model_version, card.horizon_days
    options = _options(engine, url, did, version)
    if not options["shoppers"]:
        st.info("This model version has no forecasts stored.")
        return
    labels = vocabulary.column_labels(h)
    chosen = _forecast_filter(options, h)
    shown, matched = _matching(engine, url, did, version, chosen, config.FORECAST_TABLE_ROWS)
    st.caption(_shown_caption(len(shown), matched, options["shoppers"], h))
    shares = [*vocabulary.STEP_COLUMNS, "next_category_p"]
    percent = formats.PERCENT
    steps = shown["next_event_type"].map(lambda s: vocabulary.STEP_WORDS.get(s, s), na_action="ignore")
    show_table(
        shown.assign(next_event_type=steps).rename(columns=labels), key="forecast_table",
        kinds={**{labels[c]: percent for c in (*shares, "purchase_propensity", "p_inactive")},
               labels["expected_revenue"]: formats.MONEY},
        column_config={
            labels["purchase_propensity"]: st.column_config.ProgressColumn(
                labels["purchase_propensity"], min_value=0.0, max_value=100.0, format=formats.TABLE_FORMATS[percent],
                help=vocabulary.chance_to_buy_help(h)),
            labels["next_event_type"]: st.column_config.TextColumn(labels["next_event_type"],
                                                                   help=vocabulary.next_step_help(h)),
            labels["reasons"]: st.column_config.TextColumn(labels["reasons"], width="large"),
            labels["expected_revenue"]: number_column(labels["expected_revenue"], formats.MONEY,
                                                      vocabulary.expected_revenue_help(h)),
            labels["p_inactive"]: number_column(labels["p_inactive"], percent, vocabulary.lapse_risk_help(h)),
        },
    )
    _forecast_download(engine, ds, card, chosen, shown, matched)


def _forecast_download(engine, ds: dict, card, chosen, shown: pd.DataFrame, matched: int) -> None:
    """Every matching forecast as CSV, up to :data:`config.FORECAST_DOWNLOAD_ROWS` (Campaigns exports any number).

    When the table holds every match the file is made from it; otherwise it is read and written only when the
    analyst clicks (Streamlit runs the callable then), not on every rerun of the page: 250,000 rows read from a
    team's store and written as CSV took seconds each time a filter moved.
    """
    from core.model import forecast_rows

    n = min(matched, config.FORECAST_DOWNLOAD_ROWS)
    label = "Download these forecasts (CSV)"
    if matched > n:
        label = f"Download the first {formats.count(n)} of these forecasts (CSV)"
        st.caption(f"{formats.count(matched)} shoppers match: a download holds the first "
                   f"{formats.count(n)}. Campaigns exports a list of any size.")

    def as_csv(rows: pd.DataFrame) -> bytes:
        return safecsv.csv_bytes(vocabulary.export_frame(rows, card.horizon_days))

    did, version = ds["dataset_id"], card.model_version
    data = as_csv(shown) if n <= len(shown) else (
        lambda: as_csv(forecast_rows.matching_forecasts(engine, did, version, chosen, n)))
    st.download_button(label, data, file_name=f"{ds['name']}-forecasts-{version}.csv", mime="text/csv",
                       key="forecast_download", on_click="ignore")


# --- page ------------------------------------------------------------------------------------------------


def main() -> None:
    st.title("Forecasts")
    st.caption("For every shopper: the chance to buy within the horizon, the likely next step, the likely next "
               "category and items, and the reasons, from a small sequence model trained on this dataset "
               "and measured beside simple baselines on the latest, held-out days.")
    ds = current_dataset()
    engine = get_engine()
    url = store.resolve_url()
    key = (url, ds["dataset_id"])
    job = _jobs().get(key)
    notice = st.session_state.pop(NOTICE_KEY, None)
    if notice:
        st.info(notice)
    running = job is not None and job.running  # read once: the job may end while this run draws the page
    _controls(engine, ds, key, running)
    if running:
        _training_progress(key)
    elif job is not None:
        _outcome(job)

    from core.model import forecast

    try:
        cards = forecast.list_models(engine, ds["name"])
    except CartsightError as exc:
        show_error(exc)
        return
    if not cards:
        st.info(config.TRAINING_TEXT if running else
                "No model yet for this dataset: choose a horizon and press **Train**.")
        return
    card = _pick_card(cards)
    _freshness(engine, ds, key, card, running)
    _model_card(card)
    _what_moved(engine, url, ds, card)
    _forecast_table(engine, url, ds, card)


main()
