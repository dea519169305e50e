"""Data: upload an event file, check how it was read, load it with every row accounted for, manage datasets."""
from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from core import config, jobs, store
from core.present import formats, safecsv, vocabulary
from core.ingest import tabular
from core.store import dataset_names
from core.errors import CartsightError
from core.ingest.append import sniff_for_dataset
from core.ingest.quarantine import quarantined_rows
from core.jobs import Job, JobBoard
from core.ingest.sniff import CANONICAL_FIELDS, PRICE_KINDS, TIME_FORMATS, Mapping, Sniffed, refit, sniff
from core.ingest.delimited import DELIMITER_NAMES
from pages.connect_form import connect_section
from pages.common import DATASET_KEY, get_engine, md, show_error, show_table

UPLOAD_KEY = "data_upload"  # {"file_id", "name", "dir", "path"} of the upload written to disk
SNIFF_KEY = "data_sniffed"  # {(file_id, sheet, lines skipped or None): {"sniffed" or "error"}}
JOB_KEY = "data_load_job"  # the core.jobs.Job while a file loads
OUTCOME_KEY = "data_load_outcome"  # what the last load gave: report, error or cancellation
DELETE_KEY = "data_pending_delete"  # dataset name awaiting confirmation
ROUND_KEY = "data_upload_round"  # bumped after each load so the upload box starts empty again
NEW_DATASET = "A new dataset"
ADD_TO_DATASET = "Add to an existing dataset"

UNMAPPED = "— not in the file —"
KEEP_AS_GIVEN = "(keep as given)"
FROM_COLUMN = "(from the event type column)"
FIELD_LABELS = {
    "user_id": "Shopper id *",
    "event_time": "Event time *",
    "event_type": "Event type",
    "item_id": "Item id",
    "category": "Category",
    "brand": "Brand",
    "price": "Price or amount",
    "quantity": "Quantity",
    "session_id": "Session id",
}
#: the most lines above a header the Data page lets an analyst skip
_MAX_SKIP_LINES = 1000
#: how the Data page names an encoding (a UTF-16 file is read as its UTF-8 copy: its note says so)
ENCODING_NAMES = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8 with BOM", "latin-1": "Latin-1", "cp1252": "Windows-1252"}
_SAFE_SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")


# --- the load job: ingest runs in a worker thread (core.jobs) so the page stays responsive and can cancel ------


@st.cache_resource
def _loads() -> JobBoard:
    """Loads running in any session of this server, by (store URL, dataset name).

    A Load claims its name until its job ends, so that a second analyst pressing Load on the
    same name is told at once rather than after a whole load of their file. Between servers
    (or the app and the CLI) the store's unique name decides, and core.ingest.load reports the
    loser as DatasetExistsError.
    """
    return JobBoard()


def _start_load(engine, dataset: str, path: Path, mapping: Mapping | None, remember_as: str | None,
                append: bool = False, source_name: str | None = None) -> None:
    job = jobs.load_job(engine, dataset, path, mapping=mapping, remember_as=remember_as, append=append,
                        source_name=source_name)
    if not _loads().start((store.resolve_url(), dataset), job):  # another session is loading this name
        st.session_state[OUTCOME_KEY] = {
            "dataset": dataset, "report": None, "cancelled": False,
            "error": f"A dataset named {dataset!r} is being loaded by another session right now: nothing of this "
                     f"file was loaded; choose another name.",
        }
        st.rerun()
    st.session_state.pop(OUTCOME_KEY, None)
    st.session_state[JOB_KEY] = job
    st.rerun()  # redraw with the upload controls disabled and the progress bar shown


def _start_job(dataset: str, job: Job) -> None:
    """Run ``job`` (a connect or a refresh of ``dataset``) as the page's load: its progress, Cancel and report."""
    if not _loads().start((store.resolve_url(), dataset), job):
        st.session_state[OUTCOME_KEY] = {"dataset": dataset, "report": None, "cancelled": False,
                                         "error": f"{dataset!r} is being loaded or connected by another session "
                                                  "right now: try again when it is done."}
        st.rerun()
    st.session_state.pop(OUTCOME_KEY, None)
    st.session_state[JOB_KEY] = job
    st.rerun()


def _finish_load(job: Job) -> None:
    """Turn a finished job into the outcome shown below the upload; select the new dataset."""
    dataset = job.inputs["dataset"]
    st.session_state.pop(JOB_KEY, None)
    st.session_state[OUTCOME_KEY] = {
        "dataset": dataset, "report": job.result, "error": job.error, "cancelled": job.cancelled,
        "append": job.inputs.get("append", False),
    }
    if job.result is not None:
        st.cache_data.clear()  # cached query results may describe an older dataset of the same name
        st.session_state[DATASET_KEY] = dataset
        if job.inputs["path"] != config.SAMPLE_FILE:
            _discard_upload()  # loaded: clear the upload box for the next file
            st.session_state[ROUND_KEY] = st.session_state.get(ROUND_KEY, 0) + 1
        st.rerun()  # so the sidebar's dataset picker shows the new dataset


@st.fragment(run_every=config.LOAD_REFRESH_SECONDS)
def _load_progress() -> None:
    job: Job | None = st.session_state.get(JOB_KEY)
    if job is None:
        return
    if not job.running:
        st.rerun()
    cancelling = job.stop_requested()
    st.progress(job.fraction, text="Cancelling…" if cancelling else job.message)
    st.button("Cancel", key="data_cancel", on_click=job.cancel, disabled=cancelling,
              help="Stop loading; nothing of this file is kept.")


# --- upload and mapping -------------------------------------------------------------------------------------


def _saved_upload(uploaded) -> dict:
    """The upload written to a temporary file in chunks (once per upload), so ingest can stream it."""
    saved = st.session_state.get(UPLOAD_KEY)
    if saved and saved["file_id"] == uploaded.file_id:
        return saved
    _discard_upload()
    folder = Path(tempfile.mkdtemp(prefix=store.temp_prefix("upload")))
    suffixes = [s.lower() for s in Path(uploaded.name).suffixes[-2:] if _SAFE_SUFFIX.match(s.lower())]
    path = folder / ("upload" + "".join(suffixes))
    uploaded.seek(0)
    try:
        with st.spinner(f"Saving {uploaded.name}…"), path.open("wb") as out:
            shutil.copyfileobj(uploaded, out, config.UPLOAD_CHUNK_BYTES)
    except OSError as exc:  # the temporary folder's disk is full or read-only
        shutil.rmtree(folder, ignore_errors=True)
        known = store.describe_failure(exc)
        st.error(f"{uploaded.name} could not be saved for loading: {known or exc}")
        st.stop()
    saved = {"file_id": uploaded.file_id, "name": uploaded.name, "dir": str(folder), "path": str(path)}
    st.session_state[UPLOAD_KEY] = saved
    st.session_state.pop(SNIFF_KEY, None)
    return saved


def _discard_upload() -> None:
    saved = st.session_state.pop(UPLOAD_KEY, None)
    st.session_state.pop(SNIFF_KEY, None)
    if saved:
        shutil.rmtree(saved["dir"], ignore_errors=True)


def _chosen_sheet(saved: dict) -> str | None:
    """The worksheet to read when the upload is a spreadsheet of several (a selectbox), else None."""
    if "sheets" not in saved:  # once per upload: telling an .xls from other Office files opens it
        path = Path(saved["path"])
        saved["sheets"] = tabular.worksheets(path) if tabular.kind_of(path) in tabular.SPREADSHEETS else []
    sheets = saved["sheets"]
    if len(sheets) < 2:
        return None
    return st.selectbox("Worksheet", sheets, key=f"data_sheet_{saved['file_id']}",
                        help="The workbook has several worksheets: the one holding the events is read. "
                             "Hidden worksheets are not offered.")


def _sniffed(engine, saved: dict, sheet: str | None, skip: int | None = None,
             append_to: str | None = None) -> Sniffed | None:
    """The sniff of the saved upload (cached per upload, worksheet, lines skipped and dataset added to; ``skip``
    None: found by the sniffer; ``append_to``: that dataset's mapping offered first); shows the reason and returns
    None when unreadable."""
    cache = st.session_state.setdefault(SNIFF_KEY, {})
    key = (saved["file_id"], sheet, skip, append_to)
    if key not in cache:
        try:
            cache[key] = {"sniffed": sniff_for_dataset(saved["path"], engine, append_to, sheet=sheet, skip_lines=skip)
                          if append_to else sniff(saved["path"], engine=engine, sheet=sheet, skip_lines=skip)}
        except CartsightError as exc:
            cache[key] = {"error": str(exc)}
    cached = cache[key]
    if "error" in cached:
        st.error(cached["error"].replace(Path(saved["path"]).name, saved["name"]))
        return None
    return cached["sniffed"]


def _default_name(file_name: str) -> str:
    name = Path(file_name).name
    for suffix in (".gz", ".csv", ".tsv", ".txt", ".xlsx", ".xls", ".ods", ".parquet", ".json", ".jsonl", ".ndjson"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return dataset_names.usable_dataset_name(name)  # a long file name is cut to a name the store takes


def _show_detection(sniffed: Sniffed) -> None:
    m = sniffed.mapping
    facts = {
        "Layout": vocabulary.layout_name(m.layout),
        "Delimiter": DELIMITER_NAMES.get(m.delimiter, repr(m.delimiter)),
        "Encoding": ENCODING_NAMES.get(m.encoding, m.encoding) + (", gzip" if m.compression else ""),
        "Header row": ("no" if not m.has_header else f"yes (line {m.skip_lines + 1}, below a title)" if m.skip_lines
                       else "yes"),
    }
    st.markdown(" · ".join(f"{label}: **{md(value)}**" for label, value in facts.items()))
    for note in m.notes:
        st.caption(f"• {md(note)}")
    st.caption("First rows of the file, as read:")
    st.dataframe(sniffed.preview, hide_index=True, width="stretch")


def _event_values(sniffed: Sniffed, column: str | None) -> list[str]:
    if column is None or column not in sniffed.preview.columns:
        return []
    return sorted({str(v).strip() for v in sniffed.preview[column] if str(v).strip()})


def _mapping_editor(sniffed: Sniffed, key: str) -> tuple[Mapping, bool]:
    """Selectboxes prefilled with the sniffed guess; returns the mapping to load with and whether it was edited."""
    m = sniffed.mapping
    options = [UNMAPPED, *m.source_columns]
    with st.expander("Column mapping", expanded=not m.confident):
        if not m.confident:
            st.warning("cartsight is not sure how to read this file: check the columns and the time format, "
                       "then load. The mapping is remembered for files with the same header.")
        grid = st.columns(3)
        columns: dict[str, str | None] = {}
        for i, fld in enumerate(CANONICAL_FIELDS):
            current = m.columns.get(fld)
            choice = grid[i % 3].selectbox(
                FIELD_LABELS[fld], options, index=options.index(current) if current in options else 0,
                key=f"{key}_col_{fld}",
            )
            columns[fld] = None if choice == UNMAPPED else choice
        formats = list(TIME_FORMATS)
        time_format = grid[0].selectbox(
            "Time format", formats, index=formats.index(m.time_format) if m.time_format in formats else 0,
            format_func=TIME_FORMATS.get, key=f"{key}_time_format",
        )
        clock = grid[1].selectbox(
            "Time of day, if in its own column", options,
            index=options.index(m.time_of_day) if m.time_of_day in options else 0, key=f"{key}_time_of_day",
            help="For files that write the date in one column (Date) and the time in another (Time): the two "
                 "are read together, date first, in the time format chosen here.",
        )
        constant_options = [FROM_COLUMN, *config.EVENT_TYPES]
        constant = grid[2].selectbox(
            "Event type of every row", constant_options,
            index=constant_options.index(m.constant_event_type) if m.constant_event_type in constant_options else 0,
            key=f"{key}_constant", help="For files without an event type column, such as transactions or clicks.",
        )
        money = _money_editor(m, grid, key)
        values = _event_values(sniffed, columns["event_type"]) if constant == FROM_COLUMN else []
        event_map = _event_map_editor(values, m.event_type_map, key)
    mapping = Mapping.from_dict({
        **m.to_dict(), "columns": columns, "time_format": time_format, "event_type_map": event_map,
        "constant_event_type": None if constant == FROM_COLUMN else constant,
        "time_of_day": None if clock == UNMAPPED else clock, **money,
    })
    refit(mapping, m, sniffed.preview, time_format_set=time_format != m.time_format)  # another price or time column
    return mapping, mapping.to_dict() != m.to_dict()


def _money_editor(m: Mapping, grid: list, key: str) -> dict:
    """Selectboxes of what the price column holds, the order status column and the amount refunded column; the
    mapping fields they set."""
    kinds, options = list(PRICE_KINDS), [UNMAPPED, *m.source_columns]
    price_is = grid[0].selectbox(
        "The price column holds", kinds, index=kinds.index(m.price_is) if m.price_is in kinds else 0,
        format_func=PRICE_KINDS.get, key=f"{key}_price_is",
        help="A total (an order export's Order Total, a line's amount) is stored as the unit price that gives it "
             "(total / quantity), so that revenue is the total.",
    )
    status = grid[1].selectbox(
        "Order status, if any", options,
        index=options.index(m.status_column) if m.status_column in options else 0, key=f"{key}_status",
        help="An order export's Financial Status or Status: purchases refunded, voided, cancelled, failed or declined "
             "are quarantined as not_a_purchase; paid, pending and authorized ones are loaded.",
    )
    refund = grid[2].selectbox(
        "Amount refunded, if any", options,
        index=options.index(m.refund_column) if m.refund_column in options else 0, key=f"{key}_refund",
        help="A payment export's Amount Refunded: a payment refunded in full is quarantined as not_a_purchase (read "
             "where the price column holds order totals); a partial refund stays a purchase.",
    )
    return {"price_is": price_is, "status_column": None if status == UNMAPPED else status,
            "refund_column": None if refund == UNMAPPED else refund}


def _event_map_editor(values: list[str], event_type_map: dict[str, str], key: str) -> dict[str, str]:
    """A table of the event values in the first rows and how each is read, editable; the map to load with."""
    event_map = dict(event_type_map)
    if not values:
        return event_map
    st.caption("Event values in the first rows and how they are read (values not listed here use the "
               "built-in names; unknown ones are kept as given and reported):")
    table = pd.DataFrame({"value in file": values,
                          "read as": [event_map.get(v.lower(), KEEP_AS_GIVEN) for v in values]})
    edited = st.data_editor(
        table, hide_index=True, disabled=["value in file"], key=f"{key}_event_map",
        column_config={"read as": st.column_config.SelectboxColumn(
            "read as", options=[*config.EVENT_TYPES, KEEP_AS_GIVEN], required=True)},
    )
    for value, read_as in zip(edited["value in file"], edited["read as"]):
        if read_as == KEEP_AS_GIVEN:
            event_map.pop(value.lower(), None)
        else:
            event_map[value.lower()] = read_as
    return event_map


def _unmapped_required(mapping: Mapping) -> list[str]:
    """Labels of what a load needs and the mapping lacks: a shopper, a time, and an event type or a constant."""
    missing = [FIELD_LABELS[f].rstrip(" *") for f in ("user_id", "event_time") if not mapping.columns.get(f)]
    if not mapping.columns.get("event_type") and not mapping.constant_event_type:
        missing.append("Event type (or one event type for every row)")
    return missing


def _append_choice(names: list[str], running: bool) -> str | None:
    """The dataset the file is to be added to (radio and picker), or None for a new dataset."""
    if not names:
        return None
    mode = st.radio("Load the file as", [NEW_DATASET, ADD_TO_DATASET], horizontal=True, key="data_mode",
                    disabled=running,
                    help="Add this week's events to a dataset: its mapping is offered first, and lines that repeat "
                         "events already in it are quarantined as duplicates.")
    if mode == NEW_DATASET:
        return None
    current = st.session_state.get(DATASET_KEY)
    return st.selectbox("Dataset to add to", names, index=names.index(current) if current in names else 0,
                        key="data_append_to", disabled=running)


def _upload_section(engine, names: list[str], running: bool) -> None:
    append_to = _append_choice(names, running)
    uploaded = st.file_uploader(
        "Behaviour-event file (CSV, TSV or TXT, optionally .gz; a spreadsheet: .xlsx, .xls, .ods; Parquet; JSON or "
        "JSON lines)",
        type=list(config.UPLOAD_TYPES),
        key=f"data_file_{st.session_state.get(ROUND_KEY, 0)}", disabled=running,
        help="REES46, Taobao UserBehavior, UCI Online Retail and YooChoose files are recognised; any other file "
             "with a shopper, a time and an event column can be mapped by hand.",
    )
    if uploaded is None:
        if not running:
            _discard_upload()
        if config.SAMPLE_DATASET not in names and config.SAMPLE_FILE.is_file() and not running:
            if st.button("Load the bundled sample data", key="data_load_sample"):
                _start_load(engine, config.SAMPLE_DATASET, config.SAMPLE_FILE, None, None)
        return
    saved = _saved_upload(uploaded)
    sheet = _chosen_sheet(saved)
    sniffed = _sniffed(engine, saved, sheet, append_to=append_to)
    if sniffed is None:
        return
    sheet_key = f"_{saved['sheets'].index(sheet)}" if sheet else ""  # another sheet: its own widgets
    found = sniffed.mapping.skip_lines
    skip = st.number_input(
        "Lines above the header", min_value=0, max_value=_MAX_SKIP_LINES, value=found, step=1,
        key=f"data_skip_{saved['file_id']}{sheet_key}",
        help="Lines at the top of the file that are no part of the table, such as a report's title and date: "
             f"they are skipped. {'Found' if found else 'None found'} in this file; change it if the header "
             "was not found where it is.")
    if skip != found:
        sniffed = _sniffed(engine, saved, sheet, int(skip), append_to=append_to)
        if sniffed is None:
            return
    st.subheader("How the file was read")
    _show_detection(sniffed)
    target = f"_to_{names.index(append_to)}" if append_to else ""  # another dataset's mapping: its own widgets
    mapping, edited = _mapping_editor(sniffed, key=f"data_map_{saved['file_id']}{sheet_key}_{skip}{target}")
    unmapped = _unmapped_required(mapping)
    if unmapped:
        st.warning(f"Choose the column for {md(' and '.join(unmapped))} in the column mapping above. "
                   f"Columns in the file: {md(', '.join(mapping.source_columns))}.")
    remember_as = sniffed.signature if (edited or not sniffed.mapping.confident) else None
    if append_to:
        if st.button(f"Add to {append_to}", type="primary", key="data_append", disabled=running or bool(unmapped)):
            _start_load(engine, append_to, Path(saved["path"]), mapping, remember_as, append=True,
                        source_name=saved["name"])
        return
    _name_and_load(engine, saved, names, running, bool(unmapped), mapping, remember_as)


def _name_and_load(engine, saved: dict, names: list[str], running: bool, unmapped: bool, mapping: Mapping,
                   remember_as: str | None) -> None:
    """The new dataset's name (checked as the store checks it) and the Load button."""
    name = st.text_input("Dataset name", value=_default_name(saved["name"]), key=f"data_name_{saved['file_id']}",
                         max_chars=config.DATASET_NAME_MAX_CHARS, disabled=running).strip()
    refused = dataset_names.refusal(name)  # the store's own check, shown before Load
    taken = name in names
    if refused:
        st.warning(md(refused))
    elif taken:
        st.warning(f"A dataset named {md(name)} exists already: choose another name, or delete it below first.")
    if st.button("Load", type="primary", key="data_load", disabled=running or bool(refused) or taken or unmapped):
        _start_load(engine, name, Path(saved["path"]), mapping, remember_as, source_name=saved["name"])


# --- what a load gave -------------------------------------------------------------------------------------


def _show_outcome(engine, outcome: dict) -> None:
    if outcome["cancelled"] and outcome.get("append"):
        st.info(f"Adding the file to {md(outcome['dataset'])} was cancelled: the dataset is as it was.")
    elif outcome["cancelled"]:
        st.info(f"Loading {md(outcome['dataset'])} was cancelled: nothing of it was kept.")
    elif outcome["error"]:
        st.error(outcome["error"])
    elif outcome["report"]:
        _show_report(engine, outcome["report"])


def _show_report(engine, report: dict) -> None:
    read, loaded, quarantined = report["rows_read"], report["rows_loaded"], report["rows_quarantined"]
    if report.get("appended"):
        st.subheader(f"Added {md(report['source'])} to {md(report['dataset'])} (its file {report['file_no']})")
    elif report.get("layout") == store.CONNECTED_LAYOUT:
        st.subheader(f"Connected {md(report['dataset'])} to {md(report['source'])}")
    else:
        st.subheader(f"Loaded {md(report['dataset'])}")
    balance = f"rows read = rows loaded + rows quarantined: {formats.count(read)} = {formats.count(loaded)} + {formats.count(quarantined)}"
    if read == loaded + quarantined:
        st.success(f"Every row is accounted for — {balance}")
    else:
        st.error(f"The counts do not reconcile — {balance}")
    tiles = st.columns(3)
    tiles[0].metric("Rows read", f"{formats.count(read)}")
    tiles[1].metric("Rows loaded", f"{formats.count(loaded)}")
    tiles[2].metric("Rows quarantined", f"{formats.count(quarantined)}")
    facts = [f"{formats.count(report.get('users', 0))} shoppers", f"layout {vocabulary.layout_name(report.get('layout'))}"]
    if report.get("first_event") and report.get("last_event"):
        facts.append(f"events from {report['first_event']} to {report['last_event']}")
    if report.get("sessions_derived"):
        facts.append(f"sessions derived by a {config.SESSION_GAP_MINUTES}-minute inactivity gap")
    if report.get("seconds") is not None:
        facts.append(f"loaded in {formats.seconds(report['seconds'])}")
    st.caption(md(" · ".join(facts)))
    notes = report.get("notes") or []
    if report.get("repeated_events"):  # the note that says so, first: an analyst must not miss it
        st.info(md(notes[0]))
        notes = notes[1:]
    for note in notes:
        st.caption(f"• {md(note)}")

    left, right = st.columns(2)
    by_type = report.get("events_by_type") or {}
    left.markdown("**Events by type**")
    with left:
        show_table(pd.DataFrame({"Event type": [formats.event_type(t) for t in by_type],
                                 "Events": list(by_type.values())}), width="stretch")
    unknown = report.get("unknown_event_types") or {}
    if unknown:
        listed = (", ".join(f"{k} ({formats.count(v)})" for k, v in unknown.items()) if isinstance(unknown, dict)
                  else ", ".join(map(str, unknown)))
        left.warning(f"Unknown event types, kept as given: {md(listed)}")
    by_reason = report.get("quarantine_by_reason") or {}
    right.markdown("**Quarantine by reason**")
    if by_reason:
        with right:
            show_table(pd.DataFrame({"Reason": list(by_reason), "Rows": list(by_reason.values())}), width="stretch")
    else:
        right.caption("No row was quarantined.")
    if quarantined and report.get("layout") == store.CONNECTED_LAYOUT:
        st.caption("The rows left out stay in the team's table, unchanged: counted above by reason, not copied.")
    elif quarantined:
        file_no = report.get("file_no") if report.get("appended") else None
        _show_quarantine(engine, report["dataset"], quarantined, file_no)


def _quarantine_csv(rows: pd.DataFrame) -> bytes:
    """The quarantined rows as CSV, text cells escaped: a raw line may hold a formula (``=HYPERLINK(...)``)
    that a spreadsheet would run on opening the download."""
    return safecsv.csv_bytes(rows)


def _show_quarantine(engine, dataset: str, n_rows: int, file_no: int | None = None) -> None:
    """The quarantined rows of the load (``file_no``: of that file of the dataset only), with their download."""
    try:
        rows = quarantined_rows(engine, dataset, limit=config.QUARANTINE_SHOW_ROWS, file_no=file_no)
    except CartsightError as exc:  # deleted since it was loaded
        show_error(exc)
        return
    shown = f"first {formats.count(len(rows))} of {formats.count(n_rows)}" if n_rows > len(rows) else f"all {formats.count(n_rows)}"
    st.markdown(f"**Quarantined rows** ({shown}; the download holds all)")
    show_table(rows, width="stretch", key="data_quarantined_rows")
    # small quarantines are already in hand; large ones are written only when the analyst asks
    data = _quarantine_csv(rows) if n_rows <= len(rows) else (
        lambda: _quarantine_csv(quarantined_rows(engine, dataset, file_no=file_no)))
    st.download_button("Download quarantined rows (CSV)", data=data, mime="text/csv", on_click="ignore",
                       file_name=f"{re.sub(r'[^A-Za-z0-9_-]+', '_', dataset).strip('_') or 'dataset'}-quarantine.csv",
                       key="data_quarantine_download")


# --- stored datasets -------------------------------------------------------------------------------------------


def _datasets_section(engine, datasets: list[dict]) -> None:
    st.header("Datasets")
    if not datasets:
        st.caption("No dataset yet: upload a file above.")
        return
    table = pd.DataFrame([{
        "Name": d["name"], "Layout": vocabulary.layout_name(d["layout"]), "Events": d["rows_loaded"],
        "Quarantined": d["rows_quarantined"], "Shoppers": d["n_users"], "First event": d["first_event"],
        "Last event": d["last_event"], "Created": d["created_at"],
    } for d in datasets])
    times = {c: st.column_config.DatetimeColumn(c, format="YYYY-MM-DD HH:mm") for c in ("First event", "Last event",
                                                                                       "Created")}
    show_table(table, width="stretch",
               column_config={"Name": st.column_config.TextColumn("Name", width="medium"), **times})
    _file_history(engine, datasets)
    names = [d["name"] for d in datasets]
    pending = st.session_state.get(DELETE_KEY)
    if pending in names:
        st.warning(f"Delete {md(pending)} with its quarantine, models and forecasts? This cannot be undone.")
        yes, no, _ = st.columns([1, 1, 4])
        if yes.button("Yes, delete it", type="primary", key="data_delete_confirm"):
            _delete(engine, pending)
        if no.button("Keep it", key="data_delete_keep"):
            st.session_state.pop(DELETE_KEY, None)
            st.rerun()
        return
    pick, go = st.columns([3, 1], vertical_alignment="bottom")
    target = pick.selectbox("Dataset to delete", names, index=None, placeholder="Choose a dataset",
                            key="data_delete_pick")
    if go.button("Delete…", key="data_delete", disabled=target is None):
        st.session_state[DELETE_KEY] = target
        st.rerun()


def _file_history(engine, datasets: list[dict]) -> None:
    """Each dataset's files in the order they were loaded: what each read, loaded and quarantined."""
    rows = [{"Dataset": d["name"], "File": f["file_no"], "File name": f["name"], "Loaded": f["loaded_at"],
             "Rows read": f["rows_read"], "Rows loaded": f["rows_loaded"], "Quarantined": f["rows_quarantined"],
             "Repeats": f["rows_repeated"], "First event": f["first_event"], "Last event": f["last_event"]}
            for d in datasets for f in store.dataset_file_history(engine, d["dataset_id"])]
    several = any(r["File"] > 1 for r in rows)
    with st.expander("Files of each dataset", expanded=several):
        st.caption("A dataset's first file and each file added to it; repeats are lines of events the dataset "
                   "already held, quarantined as duplicates.")
        times = {c: st.column_config.DatetimeColumn(c, format="YYYY-MM-DD HH:mm")
                 for c in ("Loaded", "First event", "Last event")}
        show_table(pd.DataFrame(rows), width="stretch", key="data_file_history", column_config=times)


def _delete(engine, name: str) -> None:
    st.session_state.pop(DELETE_KEY, None)
    try:
        store.drop_dataset(engine, name)
    except CartsightError as exc:
        show_error(exc)
        return
    st.cache_data.clear()
    if st.session_state.get(DATASET_KEY) == name:
        st.session_state[DATASET_KEY] = None
    outcome = st.session_state.get(OUTCOME_KEY)
    if outcome and outcome["dataset"] == name:
        st.session_state.pop(OUTCOME_KEY, None)
    st.toast(f"Deleted {md(name)}.")
    st.rerun()


# --- the page -----------------------------------------------------------------------------------------------------

st.title("Data")
st.caption("Upload behaviour events (views, carts, purchases…). Every row ends up either in the dataset or in "
           "quarantine with its reason.")
engine = get_engine()
job: Job | None = st.session_state.get(JOB_KEY)
if job is not None and not job.running:
    _finish_load(job)
    job = None
datasets = store.list_datasets(engine)
_upload_section(engine, [d["name"] for d in datasets], running=job is not None)
connect_section(engine, datasets, job is not None, FIELD_LABELS, _start_job)
if st.session_state.get(JOB_KEY) is not None:
    _load_progress()
elif st.session_state.get(OUTCOME_KEY):
    _show_outcome(engine, st.session_state[OUTCOME_KEY])
_datasets_section(engine, datasets)
