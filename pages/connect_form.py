"""The Data page's "Connect a table" form: a team's events table in the store's database made a dataset, read in place.

Not a page of its own: ``pages/data.py`` draws it below the upload. The table's columns are read and mapped the
way a file's are (the same names recognised), shown with a sample of its rows; the analyst corrects the mapping,
names the dataset and connects it. The work runs as the Data page's load job (progress, Cancel, the same report).
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core import config, jobs, store
from core.present import formats
from core.errors import CartsightError
from core.ingest.connect import REQUIRED, TableProposal, propose_mapping
from core.ingest.sniff import CANONICAL_FIELDS
from core.store import dataset_names
from pages.common import md, show_error, show_table

PROPOSAL_KEY = "data_connect_proposal"  # {"table": the name asked, "proposal": TableProposal or None, "error"}
NOT_IN_TABLE = "— not in the table —"


def _read_columns(engine, table: str) -> None:
    try:
        st.session_state[PROPOSAL_KEY] = {"table": table, "proposal": propose_mapping(engine, table), "error": None}
    except CartsightError as exc:
        st.session_state[PROPOSAL_KEY] = {"table": table, "proposal": None, "error": exc}


def _mapping(proposal: TableProposal, labels: dict[str, str]) -> dict[str, str | None]:
    """Field -> column as the analyst leaves it: the proposal first, each field a choice of the table's columns."""
    options = [NOT_IN_TABLE, *proposal.source_columns]
    chosen: dict[str, str | None] = {}
    grid = st.columns(3)
    for i, fld in enumerate(CANONICAL_FIELDS):
        current = proposal.columns.get(fld)
        pick = grid[i % 3].selectbox(
            labels.get(fld, fld) + (" *" if fld in REQUIRED and not labels.get(fld, "").endswith("*") else ""),
            options, index=options.index(current) if current in options else 0,
            key=f"data_connect_{proposal.table}_{fld}")
        chosen[fld] = None if pick == NOT_IN_TABLE else pick
    return chosen


def _show_proposal(proposal: TableProposal) -> None:
    kinds = ", ".join(f"{c} ({proposal.kinds[c]})" for c in proposal.source_columns)
    st.caption(md(f"Columns of {proposal.table}: {kinds}. The first rows:"))
    show_table(pd.DataFrame(proposal.sample, columns=proposal.source_columns).head(5), width="stretch")
    for note in proposal.notes:
        st.caption(f"• {md(note)}")


def connect_section(engine, datasets: list[dict], running: bool, labels: dict[str, str], start) -> None:
    """The form, and a refresh of a connected dataset; ``start(dataset, job)`` runs a job as the page's load."""
    names = [d["name"] for d in datasets]
    with st.expander("Connect a table (read in place, no copy)",
                     expanded=st.session_state.get(PROPOSAL_KEY) is not None):
        _refresh(engine, [d for d in datasets if d["layout"] == store.CONNECTED_LAYOUT], running, start)
        st.caption("A table of your team's events in this store's database (your PostgreSQL or Spark): cartsight "
                   "reads it where it is, counts the rows it cannot use per reason, and copies nothing.")
        table = st.text_input("Table (SCHEMA.TABLE)", key="data_connect_table", disabled=running).strip()
        if st.button("Read its columns", key="data_connect_read", disabled=running or not table):
            _read_columns(engine, table)
        asked = st.session_state.get(PROPOSAL_KEY)
        if not asked or asked["table"] != table:
            return
        if asked["error"] is not None:
            show_error(asked["error"])
            return
        proposal: TableProposal = asked["proposal"]
        _show_proposal(proposal)
        mapping = _mapping(proposal, labels)
        missing = [labels.get(f, f).rstrip(" *") for f in REQUIRED if not mapping[f]]
        if missing:
            st.warning(f"Choose the column for {md(' and '.join(missing))}.")
        name = st.text_input("Dataset name", value=table.rsplit(".", 1)[-1][:config.DATASET_NAME_MAX_CHARS],
                             key=f"data_connect_name_{table}", max_chars=config.DATASET_NAME_MAX_CHARS,
                             disabled=running).strip()
        refused = dataset_names.refusal(name)
        if refused:
            st.warning(md(refused))
        elif name in names:
            st.warning(f"A dataset named {md(name)} exists already: choose another name.")
        if st.button("Connect", type="primary", key="data_connect_go",
                     disabled=running or bool(missing) or bool(refused) or name in names):
            st.session_state.pop(PROPOSAL_KEY, None)
            start(name, jobs.connect_job(engine, name, table, mapping))


def _refresh(engine, connected: list[dict], running: bool, start) -> None:
    """Count a connected dataset's table again (it has grown) and rewrite its summaries."""
    if not connected:
        return
    pick, go = st.columns([3, 1], vertical_alignment="bottom")
    chosen = pick.selectbox("Connected dataset", [d["name"] for d in connected], key="data_connect_refresh_pick",
                            help="Its table is read in place; its counts and the summaries the pages read were "
                                 "written when it was connected or last refreshed.")
    source = next(d for d in connected if d["name"] == chosen)
    pick.caption(md(f"Reads {source['source']}; counted {formats.count(source['rows_read'])} rows, "
                    f"{formats.count(source['rows_loaded'])} events up to {source['last_event']}."))
    if go.button("Refresh", key="data_connect_refresh", disabled=running):
        start(chosen, jobs.connect_job(engine, chosen, None))
