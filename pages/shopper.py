"""Shopper: find one shopper (by id, or from suggestions: top propensity, biggest spenders, a
segment's members), see their timeline of events and sessions, their preferences beside their
segment's, their forecast with its reasons, and their segment. Data from ``core.analysis.segments``,
charts from ``core.charts.segments``."""
from __future__ import annotations

import streamlit as st

from core.charts import segments as charts
from core import config, store
from core.analysis import segments
from core.present import formats, vocabulary
from core.errors import CartsightError
from pages.common import current_dataset, get_engine, no_forecasts_text, show_error, show_table

try:  # built beside this page; the page works without it (charts from core.analysis.segments only)
    from core.analysis import preferences as prefs
except ImportError:  # pragma: no cover - only while core/analysis/preferences.py is absent
    prefs = None

FROM_SEGMENT_KEY = "shopper_from_segment"
ID_KEY = "shopper_id"
NO_VALUE = "—"
VALUE_LABEL = {"top propensity": "chance to buy", "biggest spenders": "revenue", "segment members": "revenue"}
#: The suggestion kinds in the pages' words.
KIND_WORDS = {"top propensity": "highest chance to buy", "biggest spenders": "biggest spenders",
              "segment members": "members of a segment"}


def _pick(choice_key: str) -> None:
    """Copy the chosen suggestion into the id box (a widget callback)."""
    choice = st.session_state.get(choice_key)
    if choice:
        st.session_state[ID_KEY] = choice


def _suggestions(engine, dataset: str) -> None:
    run = segments.latest_run(engine, dataset)
    arrived = st.session_state.get(FROM_SEGMENT_KEY)
    kinds = list(segments.SUGGESTION_KINDS) if run is not None else list(segments.SUGGESTION_KINDS[:2])
    default_kind = 2 if arrived and run is not None else 0
    with st.container(border=True):
        st.markdown("**Suggestions**")
        left, right = st.columns(2)
        kind = left.radio("Show", kinds, index=default_kind, key="shopper_suggest_kind", horizontal=True,
                          format_func=KIND_WORDS.get)
        segment = None
        if kind == "segment members":
            names = run.names()
            options = list(names)
            wanted = arrived.get("segment") if arrived else None
            segment = right.selectbox("Segment", options, index=options.index(wanted) if wanted in options else 0,
                                      format_func=lambda s: f"{s}. {names[s]}", key="shopper_suggest_segment")
        try:
            found = segments.suggest_shoppers(engine, dataset, kind, config.SHOPPER_SUGGESTIONS, segment=segment)
        except CartsightError as exc:
            show_error(exc)
            return
        if found.empty:
            st.caption(no_forecasts_text(store.get_dataset(engine, dataset)["dataset_id"],
                                         "No forecasts yet: train a model on the Forecasts page.")
                       if kind == "top propensity" else "No shoppers to suggest.")
            return
        label = VALUE_LABEL[kind]
        shown = {u: (f"{u} — {label} {formats.percent(v)}" if kind == "top propensity" else f"{u} — {label} {formats.money(v)}")
                 for u, v in zip(found["user_id"], found["value"])}
        st.selectbox("Pick a shopper", list(shown), index=None, format_func=shown.get, key="shopper_suggest_pick",
                     placeholder=f"{len(shown)} shoppers", on_change=_pick, args=("shopper_suggest_pick",))


def _percent(value) -> str:
    return NO_VALUE if value is None or value != value else f"{formats.percent(value)}"


def _forecast(engine, dataset: str, user_id: str) -> None:
    st.subheader("Forecast")
    row = segments.shopper_forecast(engine, dataset, user_id)
    if row is None:
        st.info(no_forecasts_text(store.get_dataset(engine, dataset)["dataset_id"],
                                  "No forecast for this shopper: train a model on the Forecasts page."))
        return
    horizon = row["horizon_days"] or config.DEFAULT_HORIZON_DAYS
    a, b, c, d = st.columns(4)
    a.metric(vocabulary.chance_to_buy(horizon), _percent(row["purchase_propensity"]), help=vocabulary.chance_to_buy_help(horizon))
    step = row["next_event_type"]
    b.metric(vocabulary.NEXT_STEP, vocabulary.STEP_WORDS.get(step, step) if step else NO_VALUE,
             help=vocabulary.next_step_help(horizon))
    c.metric(vocabulary.step_share("purchase"), _percent(row["p_purchase"]), help=vocabulary.next_step_help(horizon))
    d.metric(vocabulary.NEXT_CATEGORY, row["next_category"] or NO_VALUE,
             help=f"{vocabulary.NEXT_CATEGORY_P}: {_percent(row['next_category_p'])}. {vocabulary.NEXT_CATEGORY_P_HELP}")
    _value(row)
    st.caption(f"Model {row['model_version']}. Top items: {row['top_items'] or NO_VALUE}")
    reasons = [r for r in (row["reasons"] or "").split("; ") if r]
    if reasons:
        st.markdown("**Why**\n" + "\n".join(f"- {r}" for r in reasons))
    _history(engine, dataset, user_id)


def _history(engine, dataset: str, user_id: str) -> None:
    """Every kept forecast of this shopper: one per scoring (a version's training and each rescore after)."""
    from core.analysis import forecast_history
    from core.charts import refresh as refresh_charts

    history = forecast_history.shopper_forecast_history(engine, store.get_dataset(engine, dataset)["dataset_id"],
                                                        user_id)
    if len(history) < 2:
        st.caption("One scoring of this shopper so far: rescoring or retraining after data is added builds their "
                   "forecast history here.")
        return
    st.markdown("**Forecast history**: every scoring of this shopper, oldest first")
    st.plotly_chart(refresh_charts.forecast_history_chart(history), key="shopper_history_chart")
    horizons = history["horizon_days"].unique()
    within = (lambda label: label(int(horizons[0]))) if len(horizons) == 1 else (
        lambda label: label(0).split(" within ")[0] + " within the model's horizon")
    show_table(history, key="shopper_history", kinds={
        "purchase_propensity": formats.PERCENT, "expected_revenue": formats.MONEY, "p_inactive": formats.PERCENT},
        labels={"model_version": "Model version", "kind": "Scoring", "horizon_days": "Horizon (days)",
                "purchase_propensity": within(vocabulary.chance_to_buy),
                "expected_revenue": within(vocabulary.expected_revenue), "p_inactive": within(vocabulary.lapse_risk),
                "next_category": vocabulary.NEXT_CATEGORY},
        column_config={"as_of": st.column_config.DatetimeColumn("Data up to (as-of)", format="YYYY-MM-DD HH:mm"),
                       "scored_at": st.column_config.DatetimeColumn("Scored", format="YYYY-MM-DD HH:mm")})


def _value(row: dict) -> None:
    """Expected revenue and lapse risk within the model's horizon (a dash for a version trained before them)."""
    horizon = row["horizon_days"] or config.DEFAULT_HORIZON_DAYS
    revenue, lapse = row.get("expected_revenue"), row.get("p_inactive")
    left, right = st.columns(2)
    left.metric(vocabulary.expected_revenue(horizon), NO_VALUE if revenue is None else f"{formats.money(revenue)}",
                help=vocabulary.expected_revenue_help(horizon))
    right.metric(vocabulary.lapse_risk(horizon), NO_VALUE if lapse is None else f"{formats.percent(lapse)}",
                 help=vocabulary.lapse_risk_help(horizon)
                 + f" At least {formats.percent(config.LIKELY_TO_LAPSE)} counts as likely to lapse on the Campaigns page.")


def _profile(engine, dataset: str, user_id: str, events) -> None:
    sessions = segments.session_summary(events)
    orders = int((sessions["purchases"] > 0).sum())
    a, b, c, d = st.columns(4)
    a.metric("Events", f"{formats.count(len(events))}")
    b.metric("Sessions", f"{formats.count(len(sessions))}")
    c.metric("Orders", f"{formats.count(orders)}")
    d.metric("Revenue", f"{formats.money(sessions['revenue'].sum())}")
    st.caption(f"First seen {events['event_time'].min():%Y-%m-%d %H:%M}, last seen "
               f"{events['event_time'].max():%Y-%m-%d %H:%M} UTC.")
    run = segments.latest_run(engine, dataset)
    profile = None
    if run is None:
        st.info("Not segmented yet: run a segmentation on the Segments page to see this shopper's segment.")
    else:
        seg = segments.segment_of(engine, dataset, user_id, run.run_id)
        if seg is None:
            st.info(f"This shopper is not in segmentation run {run.run_id} (they arrived after it).")
        else:
            profile = next((p for p in run.profiles if p["segment"] == seg["segment"]), None)
            st.markdown(f"**Segment:** {seg['segment']}. {seg['segment_name']} (run {run.run_id})")
    _forecast(engine, dataset, user_id)
    st.subheader("Timeline")
    st.plotly_chart(charts.shopper_timeline(events), key="shopper_timeline")
    st.plotly_chart(charts.shopper_sessions(sessions), key="shopper_sessions")
    st.subheader("Preferences beside their segment's")
    comparison = segments.shopper_vs_segment(engine, dataset, events, profile)
    left, right = st.columns(2)
    left.plotly_chart(charts.shopper_vs_segment(comparison["category group"], "category group"),
                      key="shopper_pref_groups")
    right.plotly_chart(charts.shopper_vs_segment(comparison["price band"], "price band"), key="shopper_pref_bands")
    if prefs is not None:
        _preference_tables(engine, dataset, user_id, seg if run is not None else None)
    with st.expander("Events"):
        shown = events.iloc[::-1].assign(event_type=lambda f: [formats.event_type(t) for t in f["event_type"]])
        show_table(shown, key="shopper_events", kinds={"price": formats.MONEY},
                   column_config={"event_time": st.column_config.DatetimeColumn("Time (UTC)",
                                                                                format="YYYY-MM-DD HH:mm:ss")})


def _preference_tables(engine, dataset: str, user_id: str, seg: dict | None) -> None:
    """Top categories and brands of the shopper beside their segment's share and affinity (core.analysis.preferences)."""
    did = store.get_dataset(engine, dataset)["dataset_id"]
    cols = st.columns(2)
    for col, dim in zip(cols, ("category", "brand")):
        try:
            mine = prefs.preferences(engine, did, dim, user_id=user_id, top_n=config.TOP_N)
            table = mine[["value", "events", "share_events", "affinity"]].rename(
                columns={"share_events": "Shopper's share", "affinity": "Shopper's affinity"})
            if seg is not None:
                theirs = prefs.preferences(engine, did, dim, segment=seg["segment"], run_id=seg["run_id"])
                table = table.merge(theirs[["value", "share_events", "affinity"]].rename(
                    columns={"share_events": "Segment's share", "affinity": "Segment's affinity"}), on="value",
                    how="left")
        except CartsightError as exc:
            col.caption(str(exc))
            continue
        col.markdown(f"**Top {dim} preferences** (affinity: share ÷ everyone's share)")
        with col:
            show_table(table, key=f"shopper_pref_{dim}", labels={"value": dim.capitalize(), "events": "Events"},
                       kinds={"Shopper's share": formats.PERCENT, "Segment's share": formats.PERCENT,
                              "Shopper's affinity": formats.RATIO, "Segment's affinity": formats.RATIO})


def main() -> None:
    st.title("Shopper")
    ds = current_dataset()
    engine = get_engine()
    _suggestions(engine, ds["name"])
    user_id = st.text_input("Shopper id", key=ID_KEY, placeholder="type a user id or pick a suggestion").strip()
    if not user_id:
        st.info("Type a shopper's id, or pick one of the suggestions.")
        return
    try:
        events = segments.shopper_events(engine, ds["name"], user_id)
        if events.empty:
            st.warning(f"No shopper with id {user_id!r} in dataset {ds['name']!r}.")
            return
        _profile(engine, ds["name"], user_id, events)
    except CartsightError as exc:
        show_error(exc)


main()
