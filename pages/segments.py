"""Segments: run a segmentation (automatic or chosen number of segments), the map of shoppers,
a profile card per segment, a side-by-side comparison of two segments, and the RFM grid.
Every number comes from ``core.analysis.segments`` / ``core.analysis.rfm``, every chart from ``core.charts.segments``."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.charts import segments as charts
from core import config, jobs
from core.analysis import rfm, segments
from core.errors import CartsightError
from core.jobs import Job
from core.present import formats
from core.store import data_added_since, safe_url, resolve_url
from pages.common import current_dataset, get_engine, md, show_error, show_table, training_now

K_CHOICES = [segments.AUTO] + list(range(config.SEGMENT_K_RANGE[0], config.SEGMENT_K_RANGE[1] + 1))
SHOPPER_PAGE = "pages/shopper.py"
#: Session-state key the Shopper page reads to list a segment's members.
FROM_SEGMENT_KEY = "shopper_from_segment"
NO_VALUE = "—"
#: Session-state key of this session's segmentation job (core.jobs), followed until it ends.
JOB_KEY = "segments_job"
_CACHE = {"ttl": config.SEGMENTS_CACHE_TTL_SECONDS, "max_entries": config.SEGMENTS_CACHE_MAX_ENTRIES,
          "show_spinner": False}


@st.cache_data(**_CACHE)
def _rfm(_engine, store: str, dataset_id: int):
    table = rfm.rfm_table(_engine, dataset_id)
    return rfm.grid(table), rfm.summary(table)


def _pct(value) -> str:
    return formats.percent(value)


def _listing(rows: list[dict]) -> str:
    parts = [f"{r['name']} {_pct(r['share'])}" + (f" ({formats.ratio(r['affinity'])})" if r.get("affinity") else "")
             for r in rows]
    return ", ".join(parts) or NO_VALUE


def _card(profile: dict, run_id: int, key_prefix: str) -> None:
    """One segment's profile card, with a button that opens its shoppers on the Shopper page."""
    with st.container(border=True):
        st.markdown(f"**{profile['segment']}. {profile['name']}**")
        a, b, c = st.columns(3)
        a.metric("Shoppers", f"{formats.count(profile['size'])}", help=f"{_pct(profile['share_shoppers'])} of all shoppers")
        b.metric("Share of revenue", _pct(profile["share_revenue"]))
        c.metric("Conversion", _pct(profile["conversion"]), help="Share of the segment's shoppers who bought.")
        if profile.get("mean_propensity") is not None:
            st.caption(f"Mean chance to buy within the model's horizon: {_pct(profile['mean_propensity'])}")
        st.caption(f"Median time since the last event: {formats.days(profile['median_recency_days'])}")
        bands = sorted(profile["group_index"]["bands"], key=lambda r: -(r["affinity"] or 0))
        st.markdown(f"- Top categories: {_listing(profile.get('top_categories', []))}\n"
                    f"- Top brands: {_listing(profile.get('top_brands', []))}\n"
                    f"- Price bands (by affinity): {_listing(bands)}")
        if st.button("Open its shoppers", key=f"{key_prefix}_open_{profile['segment']}",
                     help="List this segment's shoppers on the Shopper page."):
            st.session_state[FROM_SEGMENT_KEY] = {"segment": profile["segment"], "run_id": run_id}
            st.switch_page(SHOPPER_PAGE)


def _run_controls(engine, dataset: str) -> None:
    job: Job | None = st.session_state.get(JOB_KEY)
    busy = job is not None and job.running
    left, right = st.columns([3, 1])
    k = left.select_slider("Number of segments", options=K_CHOICES, value=segments.AUTO, key="segments_k",
                           disabled=busy,
                           help="'auto' tries 2 to 10 segments and keeps the one with the best silhouette "
                                "(how much closer shoppers are to their own segment than to the next).")
    right.write("")
    if right.button("Run", key="segments_run", type="primary", disabled=busy):
        job = jobs.segmentation_job(engine, dataset, k).start()
        st.session_state[JOB_KEY] = job
    if job is not None and job.inputs["dataset"] == dataset:
        _follow(job)


def _follow(job: Job) -> None:
    """Show the segmentation job's progress until it ends (Cancel reruns the page, which follows it again),
    then how it ended, once."""
    if job.running:
        st.button("Cancel", key="segments_cancel", on_click=job.cancel, disabled=job.stop_requested(),
                  help="Stop the segmentation; no run is stored.")
        bar = st.progress(job.fraction, text=job.message)
        while not job.join(config.SEGMENT_POLL_SECONDS):
            bar.progress(job.fraction, text="Cancelling…" if job.stop_requested() else job.message)
        bar.empty()
    del st.session_state[JOB_KEY]
    if job.cancelled:
        st.info(job.error or "The segmentation was cancelled: no run was stored.")
    elif job.error:
        st.error(job.error)
    elif job.result is not None:
        run = job.result
        st.success(f"Segmented {formats.count(sum(p['size'] for p in run.profiles))} shoppers into {run.n_segments} segments "
                   f"(run {run.run_id}).")


def _features(run: segments.SegmentRun) -> None:
    with st.expander(f"Features used ({len(run.feature_names)}), scaling and choice of the number of segments"):
        st.markdown("Each feature is standard-scaled (mean 0, standard deviation 1; category and price-band shares "
                    "after a square root) and weighted by block so that taste (categories, price bands) leads "
                    "and activity follows.")
        show_table(pd.DataFrame({"Feature": [formats.label(f) for f in run.feature_names],
                                 "Mean before scaling": run.scaling["mean"], "Scale": run.scaling["scale"]}),
                   key="segments_scaling")
        if run.silhouette_by_k:
            show_table(pd.DataFrame({"Segments": list(run.silhouette_by_k),
                                     "Silhouette": list(run.silhouette_by_k.values())}),
                       kinds={"Silhouette": formats.SCORE}, key="segments_silhouette")
        for note in run.notes:
            st.caption(f"Note: {note}")


def _comparison(run: segments.SegmentRun) -> None:
    st.subheader("Compare two segments")
    options = [p["segment"] for p in run.profiles]
    names = run.names()
    left, right = st.columns(2)
    a = left.selectbox("Segment", options, index=0, format_func=lambda s: f"{s}. {names[s]}", key="segments_compare_a")
    b = right.selectbox("Segment", options, index=min(1, len(options) - 1), format_func=lambda s: f"{s}. {names[s]}",
                        key="segments_compare_b")
    by_seg = {p["segment"]: p for p in run.profiles}
    with left:
        _card(by_seg[a], run.run_id, "segments_compare_a")
    with right:
        _card(by_seg[b], run.run_id, "segments_compare_b")
    st.plotly_chart(charts.segment_comparison(run.profiles, [a] if a == b else [a, b]), key="segments_compare_chart")


def _migration(engine, dataset: str) -> None:
    """Where the shoppers of one run went in another (default: the run before the newest, and the newest)."""
    from core.analysis import migration
    from core.charts import refresh as refresh_charts

    runs = segments.list_runs(engine, dataset)
    if len(runs) < 2:
        return
    st.subheader("What moved between two runs")
    labels = {r.run_id: f"Run {r.run_id} of {r.created_at:%Y-%m-%d %H:%M} UTC ({r.n_segments} segments)" for r in runs}
    ids = list(labels)
    left, right = st.columns(2)
    run_from = left.selectbox("Earlier run", ids, index=1, format_func=labels.get, key="segments_moved_from")
    run_to = right.selectbox("Later run", ids, index=0, format_func=labels.get, key="segments_moved_to")
    if run_from == run_to:
        st.info("Pick two different runs to see how shoppers moved between them.")
        return
    m = migration.segment_migration(engine, dataset, run_from, run_to)
    tiles = st.columns(4)
    tiles[0].metric("Stayed in their segment", f"{formats.count(m.stayed)}",
                    help="Shoppers whose later segment continues their earlier one (the same name, else the segment "
                         "that took most of its shoppers); these pairs sit on the diagonal.")
    tiles[1].metric("Moved to another segment", f"{formats.count(m.moved)}")
    tiles[2].metric("New in the later run", f"{formats.count(m.new)}", help="Shoppers the earlier run did not hold.")
    tiles[3].metric("Gone from the later run", f"{formats.count(m.gone)}", help="Shoppers the later run does not hold.")
    st.plotly_chart(refresh_charts.migration_heatmap(m.counts, m.shares, run_from, run_to), key="segments_moved_chart")
    with st.expander("The migration matrix: shoppers per earlier segment (rows) and later segment (columns)"):
        st.dataframe(m.counts, key="segments_moved_counts")


def _rfm_section(engine, dataset_id: int) -> None:
    st.subheader("RFM lens")
    st.caption("Buyers scored 1–5 on recency (days since the last purchase), frequency (orders) and monetary value "
               "(revenue), by quintile among buyers; FM is the mean of F and M. Shoppers who never bought are "
               "counted apart.")
    grid, summary = _rfm(engine, safe_url(resolve_url()), dataset_id)
    if summary.empty:
        st.info("No shoppers in this dataset.")
        return
    st.plotly_chart(charts.rfm_heatmap(grid), key="segments_rfm_grid")
    show_table(summary, key="segments_rfm_summary", kinds={
        "share_shoppers": formats.PERCENT, "share_revenue": formats.PERCENT, "revenue": formats.MONEY,
        "median_recency_days": formats.DAYS, "mean_frequency": formats.DECIMAL},
        labels={"share_shoppers": "Share of shoppers", "share_revenue": "Share of revenue",
                "median_recency_days": "Median days since the last purchase", "mean_frequency": "Mean orders"})


def main() -> None:
    st.title("Segments")
    ds = current_dataset()
    engine = get_engine()
    _run_controls(engine, ds["name"])
    try:
        run = segments.latest_run(engine, ds["name"])
    except CartsightError as exc:
        show_error(exc)
        st.stop()
    if run is None:
        st.info("No segments yet for this dataset: choose the number of segments and press **Run**.")
    else:
        st.caption(f"Run {run.run_id} of {run.created_at:%Y-%m-%d %H:%M} UTC: {run.n_segments} segments"
                   + (f", with the forecasts of model {run.model_version}" if run.model_version else
                      ", without forecasts (no model trained yet)") + ".")
        if not run.model_version and training_now(ds["dataset_id"]):
            st.info(config.TRAINING_TEXT + " Run the segmentation again then to profile the segments with them.")
        since = data_added_since(engine, ds["dataset_id"], run.created_at)
        if since is not None:  # files were added to the dataset after this run
            st.warning(md(since.note("re-run")))
        _features(run)
        names = run.names()
        if run.map_points:
            st.plotly_chart(charts.segment_map(run.map_points, names), key="segments_map")
        st.plotly_chart(charts.segment_sizes(run.profiles), key="segments_sizes")
        st.subheader("Profiles")
        cols = st.columns(2)
        for i, profile in enumerate(run.profiles):
            with cols[i % 2]:
                _card(profile, run.run_id, "segments_card")
        _comparison(run)
        _migration(engine, ds["name"])
    _rfm_section(engine, ds["dataset_id"])


main()
