"""The Campaigns page's uplift part of a measured export's Results: fit an uplift model on its exported and held-out
shoppers, see its Qini curve beside ranking by propensity and random targeting, and the verdict.

Every number comes from ``core.campaigns.uplift``, the chart from ``core.charts.campaigns``; this module only reads
the widgets and renders.
"""
from __future__ import annotations

import streamlit as st

from core.campaigns import results, uplift
from core.charts import campaigns as charts
from core.errors import CartsightError
from core.present import formats
from pages.common import md, show_error

VERDICT_BOX = {uplift.VERDICT_BETTER: st.success, uplift.VERDICT_RANDOM_ONLY: st.info,
               uplift.VERDICT_RANDOM_NO_PROPENSITY: st.info, uplift.VERDICT_NONE: st.warning}
METHOD = ("Uplift: the chance to buy within the window if contacted minus the chance if not, from two gradient-boosting "
          "models (one on the exported shoppers, one on the held-out ones) over recency, frequency, spend and recent "
          "activity as of the list's as-of time and the chance to buy the list was built with. Each shopper of the "
          "campaign is estimated by models fitted on the other two thirds (3-fold cross-fitting), so the Qini curve is "
          "drawn on shoppers the models did not see (each third ranked on its own, the thirds summed). Qini coefficient: the area between a ranking's curve and random "
          "targeting ÷ shoppers², in points; 95 % intervals by a seeded bootstrap of the shoppers; better than random "
          "also needs a randomisation test (the exported and held-out labels shuffled, the models fitted again, 19 "
          "times) to give p ≤ 0.05. The estimates of "
          "every shopper, from their data now, are kept for the next list: rank or filter by them under Who to target.")


def _fit(engine, dataset: str, export_id: int, days: int, orders_bytes: bytes | None, orders_name: str | None) -> None:
    """Fit, and rerun the page so that the list builder above offers the new estimates."""
    try:
        with st.spinner("Fitting the uplift model, and 19 more on shuffled labels to test it…"):
            orders = results.read_orders_bytes(orders_bytes, orders_name) if orders_bytes else None
            uplift.fit_uplift(engine, dataset, export_id, days=days, orders=orders)
    except CartsightError as exc:
        show_error(exc)
        return
    st.rerun()


def _render(report: dict, days: int) -> None:
    VERDICT_BOX[report["verdict"]](f"Uplift ranking: {report['verdict']}.")
    st.markdown(md(report["verdict_text"]))
    q = report["qini"]
    cols = st.columns(3)
    for col, name, label in zip(cols, ("uplift", "propensity"), ("Qini by uplift", "Qini by chance to buy")):
        if name in q:
            col.metric(label, formats.signed(q[name]["qini"], formats.POINTS),
                       help=f"95 % CI {formats.signed(q[name]['ci_low'], formats.POINTS)} to "
                            f"{formats.signed(q[name]['ci_high'], formats.POINTS)}.")
    cols[2].metric("Qini of random targeting", formats.signed(0.0, formats.POINTS))
    st.plotly_chart(charts.qini_chart(report), key="camp_uplift_chart")
    share = report["persuadable_share"]
    st.caption(f"Estimated for {formats.count(report['n_scored'])} shoppers from their data up to {report['scored_at']}"
               + ("" if share is None else f"; {formats.percent(share)} of them have an estimated uplift above zero")
               + ". Rank the next list by estimated uplift (persuadables) under Who to target.")
    if report["window_days"] != days:
        st.caption(f"Fitted on a {report['window_days']}-day window; fit again to use {days} days.")
    for note in report["notes"]:
        st.caption(f"Note: {md(note)}")
    st.caption(f"Method: {METHOD}")


def show_uplift(engine, dataset: str, export_id: int, days: int, orders_bytes: bytes | None, orders_name: str | None,
                status: str) -> None:
    """Below a measured export's results: the "Fit uplift model" button (on the same window and orders file as the
    results) and the newest fit on this export."""
    st.markdown("#### Whom the campaign moved (uplift)")
    window_open = status == results.STATUS_OPEN
    if window_open:
        st.caption("An uplift model can be fitted once the campaign's window has passed.")
    if st.button("Fit uplift model", key=f"camp_uplift_fit_{export_id}", disabled=window_open,
                 help="Learns who bought because of the campaign from its exported and held-out shoppers, and "
                      "estimates everyone's uplift for the next list."):
        _fit(engine, dataset, export_id, days, orders_bytes, orders_name)
    run = uplift.latest_run_for_export(engine, dataset, export_id)
    if run is not None:
        _render(run["report"], days)
