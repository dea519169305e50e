"""Campaigns: build a target list with live counts, apply identity/suppression files, see the expected outcome,
export it in the destination's format (holdout kept back) and download past exports and their holdouts.
Every number comes from ``core.campaigns.targets`` / ``core.campaigns.exports``, every chart from ``core.charts.campaigns``;
the Results section (past exports against their holdouts) is ``pages/campaign_results.py``."""
from __future__ import annotations

import hashlib

import streamlit as st

from core import config
from core.campaigns import targets as campaigns, exports
from core.present import formats, vocabulary
from core.charts import campaigns as charts
from core.errors import CartsightError
from core.campaigns.identities import read_identities, read_suppression
from core.store.price_bands import PRICE_BANDS
from core.store import export_data_since, model_data_since, resolve_url, safe_url, segment_run_data_since
from pages.campaign_results import show_results
from pages.common import current_dataset, get_engine, md, no_forecasts_text, percent_range, show_error, show_table

_CACHE = {"ttl": config.CAMPAIGNS_CACHE_TTL_SECONDS, "max_entries": config.CAMPAIGNS_CACHE_MAX_ENTRIES,
          "show_spinner": False}
FORMAT_LABELS = {"csv": "CSV (user id, segment, forecast)", "parquet": "Parquet (same columns)",
                 "google": "Google Ads Customer Match", "meta": "Meta Custom Audience", "klaviyo": "Klaviyo list",
                 "mailchimp": "Mailchimp audience"}
TOP_MODES = ("everyone who matches", "top k", "top %")
#: What the list can be ranked by, and the words for it.
RANK_LABELS = {"propensity": "chance to buy within the horizon", "expected_revenue": "expected revenue within the horizon",
               "p_inactive": "lapse risk (chance of no activity)", "uplift": "estimated uplift (persuadables)"}
RECENCY_MODES = ("any time", "seen within the last N days", "not seen for N days")
LAST_EXPORT_KEY = "camp_last_export"
#: the file offered for the list on screen, and why its last export failed
OFFERED_KEY, EXPORT_ERROR_KEY = "camp_offered_file", "camp_export_error"
CONSENT_HELP = ("Consent applied: Klaviyo and Mailchimp export only shoppers whose consent_email is yes, Google and "
                "Meta only those whose consent_ads is yes; CSV and Parquet hold no contact details and need no "
                "consent column.")
NO_VALUE = "—"
#: The past exports' columns the page shows (the rest, e.g. the filters' JSON and the file's hash, stay in the store).
HISTORY_COLUMNS = ("export_id", "created_at", "name", "format", "rank_by", "as_of", "matched", "suppressed",
                   "no_consent", "not_in_identities", "no_identifier", "holdout", "exported", "consent_basis",
                   "file_name")


@st.cache_data(**_CACHE)
def _count(_engine, store: str, dataset: str, filters_json: str, version, run_id, uplift_run) -> int:
    return campaigns.count_matches(_engine, dataset, campaigns.CampaignFilters.from_json(filters_json))


@st.cache_data(**_CACHE)
def _build(_engine, store: str, dataset: str, filters_json: str, version, run_id, uplift_run,
           identity_bytes: bytes | None,
           suppression_bytes: bytes | None, share: float, seed: int, destination: str, consent_basis: str | None):
    identities = read_identities(identity_bytes) if identity_bytes else None
    suppression = read_suppression(suppression_bytes) if suppression_bytes else None
    return campaigns.build_target_list(_engine, dataset, campaigns.CampaignFilters.from_json(filters_json),
                                       identities=identities, suppression=suppression, holdout_share=share,
                                       seed=seed, destination=destination, consent_basis=consent_basis)


def _filters(opts: dict, dataset_id: int) -> campaigns.CampaignFilters:
    """The filter builder; returns the filters the widgets describe."""
    has_model, segs = opts["model_version"] is not None, opts["segments"]
    has_uplift = opts["uplift_run_id"] is not None
    st.subheader("Who to target")
    if not has_model:
        st.info(no_forecasts_text(dataset_id, "No trained model for this dataset: forecast filters "
                                  "(propensity, top-k, next category, next step) are off, and the list has no "
                                  "expected buyers. Train one on the **Forecasts** page."))
    if not segs:
        st.info("No segmentation for this dataset: run one on the **Segments** page to filter by segment.")
    left, right = st.columns(2)
    chosen = left.multiselect("Segments", list(segs), format_func=lambda s: f"{s}. {segs[s]}", key="camp_segments",
                              disabled=not segs, help="Shoppers in any of these segments of the current segmentation.")
    horizon = opts.get("horizon_days") or config.DEFAULT_HORIZON_DAYS
    low, high = percent_range(left, vocabulary.chance_to_buy(horizon), "camp_propensity",
                              vocabulary.chance_to_buy_help(horizon), disabled=not has_model)
    rank_by, top_k, top_percent = _ranking(left, has_model, has_uplift)
    min_uplift = _uplift_floor(left, has_uplift)
    categories = right.multiselect(vocabulary.NEXT_CATEGORY, opts["next_categories"], key="camp_next_categories",
                                   disabled=not has_model)
    steps = right.multiselect(vocabulary.NEXT_STEP, list(campaigns.NEXT_EVENT_TYPES), key="camp_next_events",
                              format_func=lambda s: vocabulary.STEP_WORDS.get(s, s), disabled=not has_model,
                              help=vocabulary.next_step_help(horizon))
    recency = right.selectbox("Last seen", RECENCY_MODES, key="camp_recency",
                              help="Counted back from the last event in the data, not from today.")
    days = right.number_input("N days", min_value=0.0, value=30.0, step=1.0, key="camp_recency_days",
                              disabled=recency == RECENCY_MODES[0])
    bought = right.number_input("Exclude shoppers who bought in the last D days (0 = keep them)", min_value=0.0,
                                value=0.0, step=1.0, key="camp_exclude_bought")
    spend = right.number_input("Minimum spend (0 = any)", min_value=0.0, value=0.0, step=10.0, key="camp_min_spend")
    bands = right.multiselect("Preferred price band", list(PRICE_BANDS), key="camp_bands",
                              help="The band of most of the shopper's priced events (quartiles of their category).")
    lapse = right.checkbox(f"Only shoppers likely to lapse (lapse risk at least {formats.percent(config.LIKELY_TO_LAPSE)})",
                           key="camp_lapse", disabled=not has_model,
                           help="Lapse risk: the model's chance that the shopper does nothing at all (no visit, no "
                                "purchase) within its horizon.")
    min_value = right.number_input("Minimum expected revenue within the horizon (0 = any)", min_value=0.0, value=0.0,
                                   step=10.0, key="camp_min_expected_revenue", disabled=not has_model,
                                   help="The model's forecast of what the shopper will spend within its horizon.")
    return campaigns.CampaignFilters(
        segments=chosen or None,
        min_propensity=low if has_model and low > 0 else None,
        max_propensity=high if has_model and high < 1 else None,
        top_k=top_k, top_percent=top_percent, min_uplift=min_uplift,
        next_categories=categories or None, next_event_types=steps or None,
        seen_within_days=days if recency == RECENCY_MODES[1] else None,
        not_seen_days=days if recency == RECENCY_MODES[2] else None,
        exclude_bought_days=bought or None, min_spend=spend or None, price_bands=bands or None,
        min_p_inactive=config.LIKELY_TO_LAPSE if has_model and lapse else None,
        min_expected_revenue=min_value if has_model and min_value else None,
        rank_by=rank_by)


def _ranking(column, has_model: bool, has_uplift: bool) -> tuple[str | None, int | None, float | None]:
    """(what ranks the list: None for propensity or nothing, top k, top %) from the Keep and Ranked-by widgets;
    the cut needs a forecast or uplift estimates to rank by."""
    mode = column.radio("Keep", TOP_MODES, key="camp_top_mode", horizontal=True, disabled=not (has_model or has_uplift))
    ranks = [k for k in RANK_LABELS if (has_uplift if k == "uplift" else has_model)]
    rank_by = column.selectbox("Ranked by", ranks, format_func=RANK_LABELS.get, key="camp_rank_by", disabled=not ranks,
                               help="The forecast that orders the list and that a top k / top % keeps the highest "
                                    "of: e.g. top 20 % by expected revenue, the shoppers most likely to lapse first, "
                                    "or the persuadables: the highest uplift estimated from a measured campaign (fit "
                                    "one under Results).")
    top_k = top_percent = None
    if ranks and mode == TOP_MODES[1]:
        top_k = int(column.number_input("k", min_value=1, value=100, step=10, key="camp_top_k"))
    elif ranks and mode == TOP_MODES[2]:
        top_percent = float(column.number_input("%", min_value=0.1, max_value=100.0, value=10.0, step=1.0,
                                                key="camp_top_percent"))
    return (rank_by if rank_by in ranks and rank_by != "propensity" else None), top_k, top_percent


def _uplift_floor(column, has_uplift: bool) -> float | None:
    """The "uplift above X points" filter (a fraction), None when off or without uplift estimates."""
    if not column.checkbox("Only shoppers with estimated uplift above", key="camp_uplift_on", disabled=not has_uplift,
                           help="Uplift: how much a campaign raises the shopper's chance to buy, estimated from a "
                                "measured campaign (fit one under Results)."):
        return None
    points = column.number_input("points", min_value=-100.0, max_value=100.0, value=0.0, step=0.5,
                                 key="camp_uplift_points", disabled=not has_uplift)
    return points / 100 if has_uplift else None


def _problems(parsed, key: str) -> None:
    """Rows left out and fields blanked, each reason in full (a table wraps its text), the whole list downloadable."""
    report = parsed.report()
    if report.empty:
        return
    with st.expander(f"{_n(len(report), 'problem')}: rows left out and fields left blank, with the reason"):
        st.table(report.head(config.CAMPAIGN_PROBLEMS_SHOWN))
        if len(report) > config.CAMPAIGN_PROBLEMS_SHOWN:
            st.caption(f"The first {formats.count(config.CAMPAIGN_PROBLEMS_SHOWN)} of {formats.count(len(report))}; download them all:")
        st.download_button("Download the problems (CSV)", data=exports.problems_csv(report),
                           file_name=f"{key}-problems.csv", mime=exports.CSV_MIME, key=f"{key}_problems",
                           on_click="ignore")


def _n(count: int, noun: str) -> str:
    return f"{formats.count(count)} {noun}{'' if count == 1 else 's'}"


def _columns_caption(parsed) -> str:
    used = ", ".join(f"{name!r} as {col}" for col, name in parsed.source_names.items()) or "one value per line"
    ignored = f"; ignored: {', '.join(repr(n) for n in parsed.ignored)}" if parsed.ignored else ""
    return f"Columns read: {used}{ignored}."


def _upload(label: str, key: str, reader, help_text: str):
    """An upload box whose file is validated at once: (bytes, parsed, refused).

    (None, None, False) when no file is given; a file that cannot be read shows why and comes
    back refused, which stops the page's export until it is replaced or removed.
    """
    uploaded = st.file_uploader(label, type=["csv", "txt", "tsv"], key=key, help=help_text)
    if uploaded is None:
        return None, None, False
    data = uploaded.getvalue()
    try:
        parsed = reader(data)
    except CartsightError as exc:
        show_error(exc)
        return None, None, True
    left_out = parsed.n_left_out
    blanked = getattr(parsed, "n_fields_blanked", 0)
    st.caption(f"{uploaded.name}: {formats.count(parsed.n_rows)} rows read, {formats.count(parsed.n_rows - left_out)} usable, {formats.count(left_out)} left "
               f"out" + (f"; {_n(blanked, 'field')} left blank (the rest of their rows kept)" if blanked else "") + ".")
    st.caption(_columns_caption(parsed))
    _problems(parsed, key)
    return data, parsed, False


def _consent_basis(fmt: str, identities, identity_bytes: bytes | None) -> str | None:
    """The legal basis the analyst states when the identity file lacks the destination's consent column.

    The widgets belong to this file and destination: another file or format asks again."""
    column = campaigns.DESTINATION_CONSENT.get(fmt)
    if column is None or identities is None or column in identities.columns:
        return None
    scope = f"{fmt}_{hashlib.sha256(identity_bytes).hexdigest()[:16]}"
    if not st.checkbox(f"Export without a {column} column, on a legal basis I state", key=f"camp_basis_ok_{scope}"):
        return None
    return st.text_input("Legal basis (recorded with the export)", key=f"camp_basis_{scope}",
                         placeholder="e.g. existing customers, soft opt-in (PECR reg. 22(3))").strip()


def _outcome(built: campaigns.TargetList) -> None:
    st.subheader("Expected outcome")
    out, counts = built.outcome, built.counts
    a, b, c, d = st.columns(4)
    a.metric("List size", f"{formats.count(out['list_size'])}", help="Shoppers in the export (the holdout is not counted).")
    b.metric("Expected buyers", NO_VALUE if out["expected_buyers"] is None else formats.estimate(out['expected_buyers']),
             help="Sum of the list's chances to buy within the model's horizon.")
    c.metric("Expected revenue", NO_VALUE if out["expected_revenue"] is None else formats.money(out['expected_revenue']),
             help=out["revenue_basis"] or "Needs purchase prices and a model.")
    d.metric("Lift over a random list", NO_VALUE if out["lift"] is None else formats.ratio(out['lift']),
             help="Mean chance to buy of the list ÷ mean chance to buy of all scored shoppers.")
    if out["revenue_basis"]:
        st.caption(f"Expected revenue = {out['revenue_basis']}.")
    cols = st.columns(len(campaigns.COUNT_KEYS))
    for col, key in zip(cols, campaigns.COUNT_KEYS):
        col.metric(charts.COUNT_LABELS[key], f"{formats.count(counts[key])}")
    for note in built.notes:
        st.caption(f"Note: {note}")
    if out["gain"] is not None:
        st.plotly_chart(charts.gain_chart(out), key="camp_gain_chart")


def _export(engine, built: campaigns.TargetList, fmt: str, list_key: str) -> None:
    """One click exports: the button hands the browser the file and records it (with its members and holdout) in
    the same click, so there is no second "Download" step; afterwards it downloads the recorded file again."""
    st.subheader("Export")
    n = len(built.targets)
    reason = exports.confirmation_needed(fmt, n)
    confirmed = True
    if reason:
        st.warning(reason)
        # the box belongs to this list: another list asks again
        confirmed = st.checkbox(f"Export this list of {formats.count(n)} shoppers anyway", key=f"camp_allow_small_{list_key[:16]}")
    if built.consent_basis:
        st.caption(f"Legal basis recorded with the export: {built.consent_basis}")
    st.text_input("Name of the list (optional)", key="camp_name")
    last = st.session_state.get(LAST_EXPORT_KEY)
    if last and last.get("list_key") == list_key:
        _recorded(engine, last)
        return
    try:
        file, file_name = _offered_file(built, fmt, list_key)
    except CartsightError as exc:
        show_error(exc)
        return
    failed = st.session_state.pop(EXPORT_ERROR_KEY, None)
    if failed:
        st.error(failed)
    st.download_button(f"Export and download {formats.count(n)} shoppers as {FORMAT_LABELS[fmt]}", data=file.data,
                       file_name=file_name, mime=file.mime, key="camp_export", type="primary", disabled=not confirmed,
                       on_click=_record_export, args=(engine, built, fmt, file, file_name, confirmed, list_key),
                       help=f"Downloads {file_name} and records it as an export, with its holdout, on the Past "
                            "exports list below, where its results are measured later.")


def _offered_file(built: campaigns.TargetList, fmt: str, list_key: str):
    """``(file, name)`` of the list in ``fmt``, rendered once per list: the name keeps the time it was first shown."""
    cached = st.session_state.get(OFFERED_KEY)
    if not cached or cached[0] != list_key:
        file = exports.render(built, fmt)
        cached = (list_key, file, exports.file_name_for(built.dataset, file))
        st.session_state[OFFERED_KEY] = cached
    return cached[1], cached[2]


def _record_export(engine, built: campaigns.TargetList, fmt: str, file, file_name: str, confirmed: bool,
                   list_key: str) -> None:
    """The download button's click: record the file the browser is given (a failure is shown on the rerun)."""
    try:
        record = exports.save_export(engine, built, fmt, name=st.session_state.get("camp_name") or None,
                                     allow_small=confirmed, file=file, file_name=file_name)
    except CartsightError as exc:
        st.session_state[EXPORT_ERROR_KEY] = f"The export was not recorded: {exc}"
        return
    st.session_state[LAST_EXPORT_KEY] = {**{k: record[k] for k in ("export_id", "file_name", "mime", "file_sha256")},
                                         "list_key": list_key}
    st.session_state.pop(OFFERED_KEY, None)


def _recorded(engine, last: dict) -> None:
    """The list was exported: what was recorded, the same file again, and a way to make a new export of it."""
    try:
        data = exports.export_file(engine, last["export_id"])
    except CartsightError as exc:
        show_error(exc)
        return
    st.success(f"Export {last['export_id']} recorded and downloaded: {last['file_name']} "
               f"(SHA-256 {last['file_sha256'][:12]}…). Its results are measured under Past exports.")
    left, right = st.columns(2)
    left.download_button(f"Download {last['file_name']} again", data=data, file_name=last["file_name"],
                         mime=last["mime"], key="camp_download", on_click="ignore")
    if right.button("Make another export of this list", key="camp_export_again", type="tertiary"):
        st.session_state.pop(LAST_EXPORT_KEY, None)
        st.rerun()


def _preview(built: campaigns.TargetList, opts: dict) -> None:
    """The list's first rows in the file's columns, headed in the pages' words (the CSV header in each tooltip);
    without a model only the shoppers and their segments, and where the forecasts would come from."""
    st.subheader("Preview")
    preview = exports.plain_frame(built.targets.head(config.CAMPAIGN_PREVIEW_ROWS))
    if built.uplift_run_id is not None:  # beside the file's columns: the estimate the list may be ranked by
        preview.insert(preview.columns.get_loc("p_inactive") + 1, "uplift",
                       built.targets["uplift"].head(config.CAMPAIGN_PREVIEW_ROWS).astype(float).to_numpy())
    horizon = opts.get("horizon_days") or config.DEFAULT_HORIZON_DAYS
    if not opts["model_version"]:
        st.info("No forecasts yet, so the list has no chance to buy, expected revenue, next category or reasons: "
                "train a model on the **Forecasts** page to add them.")
        preview = preview[[c for c in ("user_id", "segment", "segment_name", "uplift") if c in preview
                           and (preview[c].notna().any() or c == "user_id")]]
    elif built.targets["segment"].isna().all():  # no segmentation yet: no empty segment columns
        st.caption("No segmentation yet: run one on the **Segments** page to see each shopper's segment here.")
        preview = preview.drop(columns=[c for c in ("segment", "segment_name") if c in preview])
    labels = {"propensity": f"{vocabulary.chance_to_buy(horizon)} (propensity)",  # the file's column, in words
              "expected_revenue": vocabulary.expected_revenue(horizon), "p_inactive": vocabulary.lapse_risk(horizon),
              "next_category": f"{vocabulary.NEXT_CATEGORY} (next_category)",
              "uplift": "Estimated uplift (not in the file)"}
    show_table(preview, key="camp_preview", labels=labels,
               kinds={"propensity": formats.PERCENT, "expected_revenue": formats.MONEY, "p_inactive": formats.PERCENT,
                      "uplift": formats.PERCENT})


def _history(engine, dataset: str) -> None:
    st.subheader("Past exports")
    history = exports.list_exports(engine, dataset)
    if history.empty:
        st.caption("No export yet.")
        return
    shown = history[[c for c in HISTORY_COLUMNS if c in history.columns]]
    show_table(shown, key="camp_history", labels={"export_id": "Export", "format": "Format"},
               column_config={c: st.column_config.DatetimeColumn(formats.label(c), format="YYYY-MM-DD HH:mm")
                              for c in ("created_at", "as_of")})
    pick = st.selectbox("Export", history["export_id"].tolist(), key="camp_history_pick",
                        format_func=lambda i: f"{i}: {history.set_index('export_id').loc[i, 'file_name']}")
    row = history.set_index("export_id").loc[pick]
    since = export_data_since(engine, int(pick))
    if since is not None:  # files were added to the dataset after this list was exported
        st.warning(md(since.note("build the list again")))
    left, right = st.columns(2)
    try:
        data = exports.export_file(engine, int(pick))
        left.download_button("Download this list again", data=data, file_name=row["file_name"],
                             mime=exports.MIME.get(row["format"], exports.CSV_MIME), key="camp_redownload",
                             on_click="ignore")
    except CartsightError as exc:
        left.error(str(exc))
    right.download_button(f"Download its holdout ({formats.count(int(row['holdout']))} shoppers)",
                          data=lambda: exports.holdout_csv(engine, int(pick)), file_name=f"holdout-{pick}.csv",
                          mime=exports.CSV_MIME, key="camp_holdout_download", on_click="ignore",
                          help="The shoppers kept back from this list: compare their purchases with the list's later.")
    # the holdout is read when clicked (Streamlit runs the callable then), not on every rerun of the page


def _past(engine, store_key: str, ds: dict) -> None:
    """Past exports (downloads) and their results against their holdouts."""
    _history(engine, ds["name"])
    show_results(engine, store_key, ds)


def _older_inputs(engine, opts: dict) -> None:
    """A note for the forecasts and the segments a list is built from when files were added to the dataset since."""
    for since, what, action in (
            (model_data_since(engine, opts["model_version"]) if opts["model_version"] else None, "forecasts",
             "retrain on the Forecasts page"),
            (segment_run_data_since(engine, opts["segment_run_id"]) if opts["segment_run_id"] else None, "segments",
             "re-run on the Segments page")):
        if since is not None:
            st.warning(md(f"The {what} this list uses: {since.note(action)}"))


def _destination() -> tuple | None:
    """The format, holdout, identity and suppression files and consent basis, as ``_build`` takes them after the
    filters; None when an uploaded file was refused (no export is offered then)."""
    st.subheader("Destination, identities and holdout")
    left, right = st.columns(2)
    fmt = left.selectbox("Format", list(exports.FORMATS), format_func=FORMAT_LABELS.get, key="camp_format")
    share = left.slider("Holdout share", 0.0, config.MAX_HOLDOUT_SHARE, config.DEFAULT_HOLDOUT_SHARE, step=0.01,
                        key="camp_holdout", help="Kept back at random (stratified by propensity decile), never "
                                                 "exported: compare them with the list to measure the campaign.")
    seed = int(left.number_input("Holdout seed", min_value=0, value=config.DEFAULT_HOLDOUT_SEED, step=1,
                                 key="camp_seed"))
    left.caption(CONSENT_HELP)
    with right:
        identity_bytes, identities, bad_identities = _upload(
            "Identity file (optional)", "camp_identities", read_identities,
            "A user id column and any of e-mail, phone, first/last name, country, postal code and the consent "
            "columns consent_email, consent_sms, consent_ads (yes/no). Exports of Shopify, Klaviyo and Mailchimp "
            "are read as they are (e.g. 'Customer ID', 'Email Address', 'Accepts Email Marketing'); any of the "
            "delimiters , ; tab |.")
        suppression_bytes, _, bad_suppression = _upload(
            "Suppression list (optional)", "camp_suppression", read_suppression,
            "A user id and/or e-mail column ('customer_id', 'Email Address', …), or one value per line: these "
            "shoppers are always removed. A file in which neither column can be found stops the export.")
    if bad_identities or bad_suppression:
        return None
    return identity_bytes, suppression_bytes, share, seed, fmt, _consent_basis(fmt, identities, identity_bytes)


def _list_key(key: tuple, args: tuple) -> str:
    """What the built list depends on, hashed: a recorded export's download is offered only for the same list."""
    digest = hashlib.sha256(repr(key[1:]).encode())
    for part in args:
        digest.update(part if isinstance(part, bytes) else repr(part).encode())
    return digest.hexdigest()


def main() -> None:
    st.title("Campaigns")
    ds = current_dataset()
    engine = get_engine()
    store_key = safe_url(resolve_url())
    try:
        opts = campaigns.filter_options(engine, ds["name"])
        filters = _filters(opts, ds["dataset_id"])
    except CartsightError as exc:
        show_error(exc)
        st.stop()
    key = (store_key, ds["name"], filters.to_json(), opts["model_version"], opts["segment_run_id"],
           opts["uplift_run_id"])
    _older_inputs(engine, opts)
    try:
        st.metric("Shoppers matching these filters", f"{formats.count(_count(engine, *key))}",
                  help="Before suppression, consent and holdout, which need the files below.")
    except CartsightError as exc:
        show_error(exc)
        st.stop()

    args = _destination()
    if args is None:
        _past(engine, store_key, ds)
        return
    try:
        built = _build(engine, *key, *args)
    except CartsightError as exc:
        show_error(exc)
        _past(engine, store_key, ds)
        return
    _outcome(built)
    _preview(built, opts)
    _export(engine, built, args[4], _list_key(key, args))
    _past(engine, store_key, ds)


main()
