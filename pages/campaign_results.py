"""The Campaigns page's Results section: a past export measured against its holdout on the data that came after it.

Every number comes from ``core.campaigns.results``, the chart from ``core.charts.campaigns``; this module only reads
the widgets and renders.
"""
from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from core.present import formats

from core import config
from core.campaigns import exports, results
from core.charts import campaigns as charts
from core.errors import CartsightError
from pages.campaign_uplift import show_uplift
from pages.common import md, show_error, show_table

_CACHE = {"ttl": config.CAMPAIGNS_CACHE_TTL_SECONDS, "max_entries": config.CAMPAIGNS_CACHE_MAX_ENTRIES,
          "show_spinner": False}
STATUS_BOX = {results.STATUS_OPEN: st.info, results.STATUS_SMALL: st.warning, results.STATUS_MEASURED: st.success}
TABLE_COLUMNS = {"treated": "Exported", "holdout": "Held out", "converted_treated": "Bought (exported)",
                 "converted_holdout": "Bought (held out)", "conversion_treated": "Conversion (exported)",
                 "conversion_holdout": "Conversion (held out)", "lift_abs": "Lift", "lift_ci_low": "95 % CI from",
                 "lift_ci_high": "95 % CI to", "p_value": "p-value", "revenue_per_treated": "Revenue / shopper (exported)",
                 "revenue_per_holdout": "Revenue / shopper (held out)"}


@st.cache_data(**_CACHE)
def _measure(_engine, store_key: str, dataset: str, data_key: tuple, export_id: int, days: int,
             orders_bytes: bytes | None, orders_name: str | None) -> dict:
    orders = results.read_orders_bytes(orders_bytes, orders_name) if orders_bytes else None
    return results.campaign_results(_engine, dataset, export_id, days=days, orders=orders)


def _label(row: dict) -> str:
    as_of = "no as-of time" if pd.isna(row["as_of"]) else f"as of {pd.Timestamp(row['as_of']):%Y-%m-%d %H:%M}"
    name = row["name"] if isinstance(row["name"], str) and row["name"] else row["file_name"]
    return (f"#{row['export_id']} {name} (made {pd.Timestamp(row['created_at']):%Y-%m-%d}, {as_of}, "
            f"{formats.count(int(row['holdout']))} held out)")


def _table(rows: list[dict], key: str, title: str) -> None:
    if not rows:
        return
    frame = pd.DataFrame(rows)[[key, *TABLE_COLUMNS]].rename(columns={key: title, **TABLE_COLUMNS})
    kinds = {TABLE_COLUMNS[c]: formats.PERCENT for c in ("conversion_treated", "conversion_holdout")}
    # the lift is a difference of two conversions: in points, as the sentence above the table says it
    kinds.update({TABLE_COLUMNS[c]: formats.POINTS for c in ("lift_abs", "lift_ci_low", "lift_ci_high")})
    show_table(frame, key=f"camp_results_{key}", kinds={**kinds, "p-value": formats.SCORE,
                                                        TABLE_COLUMNS["revenue_per_treated"]: formats.MONEY,
                                                        TABLE_COLUMNS["revenue_per_holdout"]: formats.MONEY})


def _figures(result: dict) -> None:
    a, b, c, d = st.columns(4)
    rate = formats.percent
    a.metric("Conversion of the list", rate(result["conversion_treated"]),
             help=f"{formats.count(result['converted_treated'])} of {formats.count(result['treated'])} exported shoppers bought in the window.")
    b.metric("Conversion of the holdout", rate(result["conversion_holdout"]),
             help=f"{formats.count(result['converted_holdout'])} of {formats.count(result['holdout'])} held-out shoppers bought in the window.")
    c.metric("Incremental buyers", "—" if result["incremental_buyers"] is None else
             formats.signed(result['incremental_buyers'], formats.ESTIMATE), help="The lift × the exported shoppers.")
    d.metric("Incremental revenue", "—" if result["incremental_revenue"] is None else
             formats.signed(result['incremental_revenue'], formats.MONEY),
             help="The difference in revenue per shopper × the exported shoppers"
                  + ("" if result["revenue_ci_low"] is None else
                     f"; 95 % CI {formats.signed(result['incremental_revenue_ci'][0], formats.MONEY)} to "
                     f"{formats.signed(result['incremental_revenue_ci'][1], formats.MONEY)} (bootstrap)") + ".")


def _render(result: dict) -> None:
    text = result["status_text"]
    STATUS_BOX[result["status"]](text[:1].upper() + text[1:])  # a sentence on the page
    st.markdown(f"**{md(results.headline(result))}**")
    if result["relative_lift"] is not None:
        st.caption(f"Relative lift: {formats.signed(result['relative_lift'], formats.PERCENT)} over the holdout's conversion.")
    _figures(result)
    if result["revenue_diff"] is not None:
        st.caption(f"Revenue per shopper: {formats.money(result['revenue_per_treated'])} exported against "
                   f"{formats.money(result['revenue_per_holdout'])} held out, a difference of {formats.signed(result['revenue_diff'], formats.MONEY)}"
                   + ("" if result["revenue_ci_low"] is None else
                      f" (95 % CI {formats.signed(result['revenue_ci_low'], formats.MONEY)} to {formats.signed(result['revenue_ci_high'], formats.MONEY)})") + ".")
    mde = result["min_detectable_lift"]
    st.caption("Smallest lift these groups could detect (80 % power, two-sided α 0.05): "
               + ("none up to 100 points" if mde is None else formats.points(mde)) + ".")
    if result["conversion_treated"] is not None:
        st.plotly_chart(charts.results_chart(result), key="camp_results_chart")
    _table(result["by_segment"], "segment", "Segment")
    _table(result["by_decile"], "decile", "Propensity decile (10 = highest)")
    for note in result["notes"]:
        st.caption(f"Note: {md(note)}")
    st.caption(f"Method: {result['method']}")


def show_results(engine, store_key: str, ds: dict) -> None:
    """The Results section: pick a past export with a holdout (newest first), the window, optionally an orders file."""
    st.subheader("Results")
    history = exports.list_exports(engine, ds["name"])
    measurable = history[pd.to_numeric(history["holdout"]).fillna(0) > 0] if len(history) else history
    if measurable.empty:
        st.caption("No export with a holdout yet: export a list with a holdout share, then measure it here once "
                   "later data arrives.")
        return
    by_id = {int(r["export_id"]): r for r in measurable.to_dict("records")}  # newest first, as listed
    pick = st.selectbox("Export to measure", list(by_id), key="camp_results_pick", format_func=lambda i: _label(by_id[i]))
    left, right = st.columns(2)
    try:
        default = results.default_window_days(engine, ds["name"], int(pick))
    except CartsightError as exc:
        show_error(exc)
        return
    days = int(left.number_input("Window (days after the list's as-of time)", min_value=1, value=default, step=1,
                                 key=f"camp_results_days_{pick}", help="Default: the horizon of the list's model."))
    upload = right.file_uploader("Orders file (optional)", key="camp_results_orders",
                                 help="A customer id, a time and an amount per order (Shopify, Stripe and similar "
                                      "exports are read as they are). Without one, the dataset's own events after "
                                      "the list's as-of time are used.")
    data = upload.getvalue() if upload is not None else None
    data_key = (ds.get("last_event"), ds.get("rows_loaded"), hashlib.sha256(data).hexdigest() if data else None)
    name = upload.name if upload is not None else None
    try:
        result = _measure(engine, store_key, ds["name"], data_key, int(pick), days, data, name)
    except CartsightError as exc:
        show_error(exc)
        return
    _render(result)
    show_uplift(engine, ds["name"], int(pick), days, data, name, result["status"])
