"""Export files of a target list, one writer per destination, and the record of every export.

Formats (column names as each platform documents them):

- ``csv`` / ``parquet``: user_id, segment, segment_name, propensity, expected_revenue (within
  the model's horizon), p_inactive (chance of no activity within it), next_category,
  recommended_items (space-separated item ids, best first), reasons ("; "-separated).
- ``google`` (Google Ads Customer Match file upload): headers "Email", "Phone", "First Name",
  "Last Name", "Country", "Zip" (support.google.com/google-ads/answer/7659867). E-mail, phone and
  names are SHA-256 hashed after normalisation (e-mail trimmed, lower-cased, periods before
  ``@`` dropped for gmail.com/googlemail.com; phone E.164; names lower-cased, trimmed); country
  (ISO-2) and zip are left in clear, as Google asks ("do not hash country, zip").
- ``meta`` (Meta customer-list Custom Audience): keys email, phone, fn, ln, zip, country, all
  SHA-256 hashed after Meta's normalisation (developers.facebook.com/docs/marketing-api/audiences/
  guides/custom-audiences, "Hashing and normalizing data"): e-mail trimmed + lower-cased; phone
  digits only with the country code (E.164 without ``+``); fn/ln lower-case letters only; zip
  lower-case without spaces or dashes (US: first 5 digits); country lower-case ISO-2.
- ``klaviyo`` / ``mailchimp``: e-mail lists in clear, only shoppers with e-mail consent
  (enforced when the list is built for that destination), with a consent column (left blank
  when the list goes out on a stated legal basis instead of a consent column: the platform's
  own consent record then stands) and the forecast as custom properties. Klaviyo headers:
  "Email" first, "First Name", "Last Name", "Phone Number" (only with SMS consent), "Email
  Marketing Consent" (help.klaviyo.com/hc/en-us/articles/360043841811); Mailchimp: "Email
  Address", "First Name", "Last Name", "Status".

Every file is written by :mod:`core.present.safecsv`: a CSV's text cells are escaped against
spreadsheet formula injection (a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return gets a leading apostrophe, unless the whole cell is a negative number such as
``-1.5`` or an E.164 phone ``+4420…``); Parquet is written as it is (see that module for why).

Which consent each destination needs (``core.campaigns.targets.DESTINATION_CONSENT``): Klaviyo and
Mailchimp ``consent_email``, Google and Meta ``consent_ads``; csv and parquet hold no contact
details and need none. An empty list, or one under the platform's minimum size, is exported
only when the analyst confirms it (``allow_small``).

Each export is recorded in ``cs_exports`` (filters, counts, model version, segmentation,
holdout seed, the consent column applied or the legal basis stated instead, SHA-256 of the
file bytes) with its members in ``cs_export_members`` (targets
and holdout, with their propensity decile); the bytes are kept under
:func:`core.config.exports_dir` so that a past export downloads again byte for byte.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core import config, store
from core.present import safecsv
from core.store import executors
from core.campaigns.targets import (COUNT_KEYS, DESTINATION_CONSENT, DESTINATION_NAMES, CampaignFilters, TargetList,
                            build_target_list)
from core.errors import CartsightError, ParameterError
from core.campaigns.identities import read_identities, read_suppression
from core.campaigns.contact_fields import google_email, sha256_hex
# CSV_MIME, FORMULA_PREFIXES and escape_cell stay importable from here for the pages and tests that use them
from core.present.safecsv import CSV_MIME, PARQUET_MIME, parquet_bytes
from core.present.safecsv import csv_bytes as _csv_bytes  # every CSV this module writes

FORMATS = ("csv", "parquet", "google", "meta", "klaviyo", "mailchimp")
EXTENSIONS = {"parquet": "parquet"}
MIME = {"parquet": PARQUET_MIME}
PLAIN_COLUMNS = ("user_id", "segment", "segment_name", "propensity", "expected_revenue", "p_inactive", "next_category",
                 "recommended_items", "reasons")
GOOGLE_COLUMNS = ("Email", "Phone", "First Name", "Last Name", "Country", "Zip")
META_COLUMNS = ("email", "phone", "fn", "ln", "zip", "country")
KLAVIYO_COLUMNS = ("Email", "First Name", "Last Name", "Phone Number", "Email Marketing Consent", "External ID",
                   "Segment", "Purchase Propensity", "Next Category", "Recommended Items")
MAILCHIMP_COLUMNS = ("Email Address", "First Name", "Last Name", "Status", "External ID", "Segment",
                     "Purchase Propensity", "Next Category", "Recommended Items")
KLAVIYO_SUBSCRIBED = "Subscribed"
MAILCHIMP_SUBSCRIBED = "subscribed"
US_ZIP_DIGITS = 5
MEMBER_TARGET, MEMBER_HOLDOUT = "target", "holdout"
_NOT_LETTER = re.compile(r"[\W\d_]+", re.UNICODE)
_ZIP_DROP = re.compile(r"[\s-]+")
_SLUG = re.compile(r"[^A-Za-z0-9]+")


@dataclass
class ExportFile:
    """The bytes of one export file, its suggested name and MIME type, rows and warnings."""

    data: bytes
    fmt: str
    n_rows: int
    mime: str
    extension: str
    warnings: list[str] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


# --- cells ---------------------------------------------------------------------------------------------


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame else pd.Series(None, index=frame.index, dtype=object)


def _number(frame: pd.DataFrame, name: str) -> pd.Series:
    return pd.to_numeric(frame[name], errors="coerce").astype(float) if name in frame \
        else pd.Series(float("nan"), index=frame.index)


def _hash(series: pd.Series, normalise=None) -> pd.Series:
    def one(v):
        if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NA or v == "":
            return ""
        text = normalise(v) if normalise else str(v)
        return sha256_hex(text) if text else ""
    return series.map(one)


def _clear(series: pd.Series) -> pd.Series:
    return series.map(lambda v: "" if v is None or v is pd.NA or (isinstance(v, float) and pd.isna(v)) else str(v))


def meta_name(value: str) -> str:
    """Meta's first/last-name form: lower-case letters only (no spaces, punctuation or digits; accents kept)."""
    return _NOT_LETTER.sub("", str(value).lower())


def meta_zip(value: str, country: str | None) -> str:
    """Meta's zip form: lower-case, no spaces or dashes; a US zip keeps its first 5 digits."""
    text = _ZIP_DROP.sub("", str(value).lower())
    return text[:US_ZIP_DIGITS] if (country or "").upper() == "US" else text


# --- writers -------------------------------------------------------------------------------------------


def plain_frame(targets: pd.DataFrame) -> pd.DataFrame:
    """The csv/parquet columns (:data:`PLAIN_COLUMNS`) of a target frame."""
    return pd.DataFrame({
        "user_id": targets["user_id"].astype(str),
        "segment": targets["segment"].astype("Int64"),
        "segment_name": _col(targets, "segment_name"),
        "propensity": targets["propensity"].astype(float),
        "expected_revenue": _number(targets, "expected_revenue"),
        "p_inactive": _number(targets, "p_inactive"),
        "next_category": _col(targets, "next_category"),
        "recommended_items": _col(targets, "top_items"),
        "reasons": _col(targets, "reasons"),
    }, columns=list(PLAIN_COLUMNS))


def google_frame(targets: pd.DataFrame) -> pd.DataFrame:
    """Google Customer Match columns (:data:`GOOGLE_COLUMNS`), identifiers hashed where Google takes hashes."""
    return pd.DataFrame({
        "Email": _hash(_col(targets, "email"), google_email),
        "Phone": _hash(_col(targets, "phone")),
        "First Name": _hash(_col(targets, "first_name")),
        "Last Name": _hash(_col(targets, "last_name")),
        "Country": _clear(_col(targets, "country")),
        "Zip": _clear(_col(targets, "postal_code")),
    }, columns=list(GOOGLE_COLUMNS))


def meta_frame(targets: pd.DataFrame) -> pd.DataFrame:
    """Meta Custom Audience columns (:data:`META_COLUMNS`), every value normalised and SHA-256 hashed."""
    country = _col(targets, "country")
    zips = [meta_zip(z, c if isinstance(c, str) else None) if isinstance(z, str) and z else ""
            for z, c in zip(_col(targets, "postal_code"), country)]
    return pd.DataFrame({
        "email": _hash(_col(targets, "email")),
        "phone": _hash(_col(targets, "phone"), lambda v: str(v).lstrip("+")),
        "fn": _hash(_col(targets, "first_name"), meta_name),
        "ln": _hash(_col(targets, "last_name"), meta_name),
        "zip": _hash(pd.Series(zips, index=targets.index, dtype=object)),
        "country": _hash(country, lambda v: str(v).lower()),
    }, columns=list(META_COLUMNS))


def _forecast_properties(targets: pd.DataFrame) -> dict:
    return {
        "External ID": targets["user_id"].astype(str),
        "Segment": _clear(_col(targets, "segment_name")),
        "Purchase Propensity": targets["propensity"].astype(float),
        "Next Category": _clear(_col(targets, "next_category")),
        "Recommended Items": _clear(_col(targets, "top_items")),
    }


def klaviyo_frame(targets: pd.DataFrame) -> pd.DataFrame:
    """Klaviyo list import columns (:data:`KLAVIYO_COLUMNS`); the phone only for shoppers with SMS consent."""
    sms = _col(targets, "consent_sms").fillna(False).astype(bool)
    consent = KLAVIYO_SUBSCRIBED if "consent_email" in targets else ""
    return pd.DataFrame({
        "Email": _clear(_col(targets, "email")),
        "First Name": _clear(_col(targets, "first_name")),
        "Last Name": _clear(_col(targets, "last_name")),
        "Phone Number": _clear(_col(targets, "phone").where(sms)),
        "Email Marketing Consent": consent,
        **_forecast_properties(targets),
    }, columns=list(KLAVIYO_COLUMNS))


def mailchimp_frame(targets: pd.DataFrame) -> pd.DataFrame:
    """Mailchimp audience import columns (:data:`MAILCHIMP_COLUMNS`)."""
    status = MAILCHIMP_SUBSCRIBED if "consent_email" in targets else ""
    return pd.DataFrame({
        "Email Address": _clear(_col(targets, "email")),
        "First Name": _clear(_col(targets, "first_name")),
        "Last Name": _clear(_col(targets, "last_name")),
        "Status": status,
        **_forecast_properties(targets),
    }, columns=list(MAILCHIMP_COLUMNS))


_FRAMES = {"csv": plain_frame, "parquet": plain_frame, "google": google_frame, "meta": meta_frame,
           "klaviyo": klaviyo_frame, "mailchimp": mailchimp_frame}


def small_list_warning(fmt: str, n_rows: int) -> str | None:
    """The warning for a list below the platform's minimum size (``config.PLATFORM_MIN_LIST_SIZE``), else None."""
    minimum = config.PLATFORM_MIN_LIST_SIZE.get(fmt)
    if minimum is None or n_rows >= minimum:
        return None
    name = DESTINATION_NAMES[fmt]
    extra = " (1,000 for Search and YouTube)" if fmt == "google" else ""
    return (f"This list has {n_rows:,} shoppers: {name} needs at least {minimum:,} matched people{extra} before "
            "it serves ads, and the platform matches only part of any list.")


def confirmation_needed(fmt: str, n_rows: int) -> str | None:
    """Why an export of ``n_rows`` shoppers in ``fmt`` needs the analyst's confirmation (empty, or under the
    platform's minimum), else None."""
    if n_rows == 0:
        return "This list has no shoppers: the export would be an empty file."
    return small_list_warning(fmt, n_rows)


def render(target_list: TargetList, fmt: str) -> ExportFile:
    """The export file of ``target_list`` in ``fmt`` (one of :data:`FORMATS`); the holdout is never in it.

    Errors: ``ParameterError`` for an unknown format, or for an ad/e-mail format when the list
    was built for another destination (consent and identifiers are checked per destination).
    """
    if fmt not in FORMATS:
        raise ParameterError(f"format {fmt!r} is unknown; expected one of {list(FORMATS)}", parameter="format")
    if fmt in DESTINATION_CONSENT and target_list.destination != fmt:
        raise ParameterError(f"this list was built for destination {target_list.destination!r}; build it for {fmt!r} "
                             "so that its consent and identifiers are checked", parameter="format")
    frame = _FRAMES[fmt](target_list.targets)
    if fmt == "parquet":
        data = parquet_bytes(frame)
    else:
        data = _csv_bytes(frame)
    warnings = [w for w in [small_list_warning(fmt, len(frame))] if w]
    return ExportFile(data=data, fmt=fmt, n_rows=len(frame), mime=MIME.get(fmt, CSV_MIME),
                      extension=EXTENSIONS.get(fmt, "csv"), warnings=warnings)


# --- the record ----------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return _SLUG.sub("-", text).strip("-").lower() or "list"


def _members(target_list: TargetList, export_id: int) -> pd.DataFrame:
    parts = []
    for group, frame in ((MEMBER_TARGET, target_list.targets), (MEMBER_HOLDOUT, target_list.holdout)):
        parts.append(pd.DataFrame({"export_id": export_id, "dataset_id": target_list.dataset_id,
                                   "user_id": frame["user_id"].astype(str), "group_name": group,
                                   "propensity_decile": frame["propensity_decile"].astype("Int64")}))
    return pd.concat(parts, ignore_index=True)


def _insert_members(conn: Connection, frame: pd.DataFrame) -> None:
    """Bulk insert through the engine's native path (DuckDB registered frame, PostgreSQL COPY)."""
    store.bulk_insert(conn, store.export_members, frame)


def _stored_path(export_id: int, file_name: str) -> Path:
    return config.exports_dir() / f"{export_id}-{file_name}"


def file_name_for(dataset: str, file: ExportFile, at: dt.datetime | None = None) -> str:
    """The name an export file is downloaded and recorded under: the dataset, the destination and the time it was
    made (UTC, to the second; now by default), e.g. ``cartsight-shop-klaviyo-20261207-091502.csv``. It holds no
    export number, so the page can offer the file before the click that records it."""
    at = at or dt.datetime.now(dt.UTC)
    return f"cartsight-{_slug(dataset)}-{file.fmt}-{at:%Y%m%d-%H%M%S}.{file.extension}"


def _record(conn: Connection, target_list: TargetList, fmt: str, name: str | None, file: ExportFile,
            file_name: str | None = None) -> tuple[int, str]:
    """Insert the export's row and members; returns (export_id, file_name)."""
    export_id = int(conn.execute(sa.select(store.export_id_seq.next_value())).scalar_one())
    file_name = file_name or file_name_for(target_list.dataset, file)
    conn.execute(store.exports.insert().values(
        export_id=export_id, dataset_id=target_list.dataset_id, created_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
        model_version=target_list.model_version, segment_run_id=target_list.segment_run_id,
        name=name or None, format=fmt, filters_json=target_list.filters.to_json(),
        counts_json=json.dumps({**target_list.counts, "holdout_share": target_list.holdout_share}),
        file_sha256=file.sha256, file_name=file_name, holdout_seed=target_list.seed,
        consent_column=target_list.consent_column, consent_basis=target_list.consent_basis,
        as_of=target_list.as_of, as_of_basis=store.AS_OF_RECORDED, ranking=target_list.ranking,
        uplift_run_id=target_list.uplift_run_id if target_list.filters.needs_uplift() else None,
    ))
    _insert_members(conn, _members(target_list, export_id))
    return export_id, file_name


def save_export(engine: Engine, target_list: TargetList, fmt: str, name: str | None = None, *,
                allow_small: bool = False, out: str | Path | None = None, file: ExportFile | None = None,
                file_name: str | None = None) -> dict:
    """Render ``target_list`` in ``fmt``, keep the file, and record it with its members in one transaction.

    ``allow_small``: the analyst confirmed an empty list or one under the platform's minimum
    (:func:`confirmation_needed`); without it such an export is refused. ``out``: also write the
    file there (checked first, :func:`core.present.safecsv.check_out_path`). ``file`` and ``file_name``: the
    file already rendered (``render(target_list, fmt)``) and the name it was offered under, when the page
    hands the analyst the file in the same click that records it. Returns a dict: ``export_id``,
    ``file_name``, ``file_sha256``, ``data`` (the bytes), ``mime``, ``counts``, ``warnings``. The
    files are written last inside the transaction and removed again when the record cannot be
    committed, so only what was written is recorded. Errors: as :func:`render`;
    ``CartsightError`` for an unconfirmed small list, an unusable ``out``, or a file that cannot
    be written.
    """
    file = file or render(target_list, fmt)
    reason = confirmation_needed(fmt, file.n_rows)
    if reason and not allow_small:
        raise CartsightError(f"{reason} Confirm to export it anyway (--allow-small on the command line, the "
                             "confirmation box on the Campaigns page).")
    target = safecsv.check_out_path(out) if out is not None else None
    written: list[Path] = []
    export_id = None
    try:
        with engine.begin() as conn:
            export_id, file_name = _record(conn, target_list, fmt, name, file, file_name)
            path = _stored_path(export_id, file_name)
            path.parent.mkdir(parents=True, exist_ok=True)
            written.append(path)
            path.write_bytes(file.data)
            if target is not None:
                safecsv.write_bytes(file.data, target)
                written.append(target)
    except Exception as exc:
        for done in written:
            done.unlink(missing_ok=True)
        if export_id is not None:
            executors.undo_without_transactions(engine, lambda conn: _delete_export(conn, export_id))
        if isinstance(exc, OSError):
            raise CartsightError(f"Cannot write the export file {exc.filename or config.exports_dir()}: "
                                 f"{exc.strerror or exc}") from exc
        raise
    return {"export_id": export_id, "file_name": file_name, "file_sha256": file.sha256, "data": file.data,
            "mime": file.mime, "counts": dict(target_list.counts), "warnings": file.warnings}


def _delete_export(conn, export_id: int) -> None:
    for table in (store.export_members, store.exports):
        conn.execute(table.delete().where(table.c.export_id == export_id))


def list_exports(engine: Engine, dataset: str) -> pd.DataFrame:
    """Past exports of ``dataset``, newest first.

    Columns: export_id, created_at, name, format, model_version, segment_run_id, the counts
    (:data:`core.campaigns.targets.COUNT_KEYS`; None where an older export did not count it),
    holdout_share, holdout_seed, consent_column (the consent column the destination needed),
    consent_basis (the legal basis stated when the identity file lacked it), filters (JSON
    text), file_name, file_sha256, as_of (the data's end when the list was built: its campaign's
    outcome window starts there), as_of_basis (``store.AS_OF_RECORDED``, or how an older
    export's as-of time was estimated), ranking (what ordered the list: ``propensity``,
    ``expected_revenue``, ``p_inactive`` or ``uplift``; None without a forecast) and uplift_run_id (the
    uplift run whose estimates ranked or filtered it). ``DatasetNotFoundError`` for an unknown dataset.
    """
    did = store.get_dataset(engine, dataset)["dataset_id"]
    x = store.exports.c
    query = sa.select(store.exports).where(x.dataset_id == did).order_by(x.created_at.desc(), x.export_id.desc())
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    columns = ["export_id", "created_at", "name", "format", "model_version", "segment_run_id", *COUNT_KEYS,
               "holdout_share", "holdout_seed", "consent_column", "consent_basis", "filters", "file_name",
               "file_sha256", "as_of", "as_of_basis", "ranking", "uplift_run_id"]
    out = []
    for row in rows:
        counts = json.loads(row["counts_json"] or "{}")
        out.append({**{k: row[k] for k in ("export_id", "created_at", "name", "format", "model_version",
                                            "segment_run_id", "holdout_seed", "consent_column", "consent_basis",
                                            "file_name", "file_sha256", "as_of", "as_of_basis", "ranking",
                                            "uplift_run_id")},
                    **{k: counts.get(k) for k in (*COUNT_KEYS, "holdout_share")}, "filters": row["filters_json"]})
    return pd.DataFrame(out, columns=columns)


def _export_row(engine: Engine, export_id: int) -> dict:
    with engine.connect() as conn:
        row = conn.execute(sa.select(store.exports).where(store.exports.c.export_id == int(export_id))).mappings().first()
    if row is None:
        raise CartsightError(f"No export with id {export_id!r}.")
    return dict(row)


def export_file(engine: Engine, export_id: int) -> bytes:
    """The bytes of a past export, checked against the SHA-256 recorded when it was made.

    Errors: ``CartsightError`` when the export id is unknown, the kept file is gone, or its
    bytes no longer match the recorded SHA-256 (the message gives both hashes).
    """
    row = _export_row(engine, export_id)
    path = _stored_path(int(row["export_id"]), row["file_name"])
    if not path.is_file():
        raise CartsightError(f"The file of export {export_id} is no longer at {path}; it cannot be downloaded again.")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != row["file_sha256"]:
        raise CartsightError(f"The file of export {export_id} at {path} was changed: SHA-256 {digest}, "
                             f"recorded {row['file_sha256']}.")
    return data


def export_members(engine: Engine, export_id: int, group: str | None = None) -> pd.DataFrame:
    """Members of a past export (``group`` "target", "holdout" or None for both): user_id, group_name,
    propensity_decile, sorted by group then user_id."""
    _export_row(engine, export_id)
    m = store.export_members.c
    query = sa.select(m.user_id, m.group_name, m.propensity_decile).where(m.export_id == int(export_id))
    if group is not None:
        query = query.where(m.group_name == group)
    with engine.connect() as conn:
        result = conn.execute(query.order_by(m.group_name, m.user_id))
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    frame["propensity_decile"] = pd.to_numeric(frame["propensity_decile"], errors="coerce").astype("Int64")
    return frame


def holdout_list(engine: Engine, export_id: int) -> pd.DataFrame:
    """The holdout of a past export (user_id, propensity_decile), for measuring the campaign later."""
    return export_members(engine, export_id, MEMBER_HOLDOUT).drop(columns="group_name").reset_index(drop=True)


def problems_csv(report: pd.DataFrame) -> bytes:
    """The problems of an identity or suppression file (its ``report()``) as CSV bytes, escaped like every export
    cell: the values come from the uploaded file."""
    return _csv_bytes(report)


def holdout_csv(engine: Engine, export_id: int) -> bytes:
    """:func:`holdout_list` as CSV bytes (user ids escaped like every export cell)."""
    return _csv_bytes(holdout_list(engine, export_id))


# --- CLI ----------------------------------------------------------------------------------------------


def export_cli(engine: Engine, dataset: str, *, segments: list[int] | None = None, top_percent: float | None = None,
               min_propensity: float | None = None, exclude_bought_days: float | None = None,
               identities_path: str | Path | None = None, suppress_path: str | Path | None = None,
               holdout: float = config.DEFAULT_HOLDOUT_SHARE, fmt: str = "csv", out: str | Path,
               seed: int = config.DEFAULT_HOLDOUT_SEED, name: str | None = None, consent_basis: str | None = None,
               allow_small: bool = False, rank_by: str | None = None, likely_to_lapse: bool = False) -> dict:
    """Build, record and write one export for ``cartsight export``; returns the counts to print.

    Checks ``out`` first, reads the identity and suppression files when given, builds the list
    for ``fmt`` with the filters (``rank_by``: the forecast ``top_percent`` ranks by, see
    :class:`~core.campaigns.targets.CampaignFilters`; ``likely_to_lapse``: only shoppers whose chance of no
    activity within the horizon is at least ``config.LIKELY_TO_LAPSE``; ``consent_basis``: the legal basis stated when the identity
    file lacks the destination's consent column), then records the export and writes it to
    ``out`` in one step (:func:`save_export`; ``allow_small`` confirms an empty or small list).
    Returns a dict: the counts (:data:`core.campaigns.targets.COUNT_KEYS`), ``export_id``, ``ranking``,
    ``file_sha256``, ``out``, ``consent_column``, ``consent_basis``, ``expected_buyers`` (None
    without a model), ``warnings`` (small list, notes) and ``identity_problems`` /
    ``suppression_problems`` (rows left out and fields blanked in those files, with line
    numbers). Errors: the project errors of the functions it calls; nothing is recorded or
    written when one is raised.
    """
    safecsv.check_out_path(out)
    filters = CampaignFilters(segments=segments or None, top_percent=top_percent, min_propensity=min_propensity,
                              exclude_bought_days=exclude_bought_days, rank_by=rank_by,
                              min_p_inactive=config.LIKELY_TO_LAPSE if likely_to_lapse else None)
    identities = read_identities(identities_path) if identities_path else None
    suppression = read_suppression(suppress_path) if suppress_path else None
    target_list = build_target_list(engine, dataset, filters, identities=identities, suppression=suppression,
                                    holdout_share=holdout, seed=seed, destination=fmt, consent_basis=consent_basis)
    record = save_export(engine, target_list, fmt, name=name, allow_small=allow_small, out=out)
    problems = lambda table: [p.as_dict() for p in table.problems] if table is not None else []  # noqa: E731
    return {**target_list.counts, "export_id": record["export_id"], "ranking": target_list.ranking,
            "file_sha256": record["file_sha256"],
            "out": str(out), "consent_column": target_list.consent_column,
            "consent_basis": target_list.consent_basis, "expected_buyers": target_list.outcome["expected_buyers"],
            "warnings": record["warnings"] + target_list.notes,
            "identity_problems": problems(identities), "suppression_problems": problems(suppression)}
