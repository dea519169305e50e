"""Campaign target lists: filters over forecasts, segments and behaviour → a list, a holdout, an expected outcome.

Definitions (the Campaigns page shows them in its help texts):

- **shoppers**: every ``user_id`` with an event in the dataset. Their behaviour features are
  aggregated in the database: ``last_seen`` (latest event), ``last_purchase`` (latest purchase
  that is not a cancellation), ``spend`` (sum of ``price × coalesce(quantity, 1)`` over purchase
  events, cancellations subtracting), ``orders`` (distinct sessions with a purchase), and, when
  asked for, ``price_band``: the shopper's most frequent band among their priced events
  (:func:`core.analysis.band_table.price_band_sql`; ties go to the band named first alphabetically).
- **recency** is measured back from the dataset's last event, not from today: the data is a
  snapshot, and "not seen for 30 days" means 30 days before its end.
- **forecasts** come from the dataset's current model (the newest ``ready`` row of ``cs_models``);
  **segments** from its current segmentation (the newest ``cs_segment_runs`` row).
- **top-k / top-%** rank the shoppers that pass every other filter by their calibrated purchase
  propensity, or by what ``rank_by`` names: ``expected_revenue`` (revenue expected within the
  model's horizon) or ``p_inactive`` (chance of no activity at all within it: "likely to lapse"
  first); ties by user id; and keep the first k, or the first ceil(n × % / 100). Shoppers
  without that forecast (e.g. no expected revenue on a file without prices) are left out of a cut.
- the list then loses, in this order: **suppressed** shoppers (user id in the suppression list,
  or an identity e-mail matching one of its e-mails); for a destination that matches on contact
  details, shoppers **not in the identity file** at all; shoppers **without consent** for the
  destination (in the identity file, but its consent cell is not yes); shoppers **without an
  identifier** the destination matches on; of the rest a **holdout** share is drawn at random,
  stratified by propensity decile of that eligible list, seeded; the others are **exported**.
- **consent per destination** (:data:`DESTINATION_CONSENT`): Klaviyo and Mailchimp (e-mail
  lists) need ``consent_email``; Google Customer Match and Meta Custom Audiences need
  ``consent_ads``. Plain CSV and Parquet hold user ids and forecasts, no contact details, so no
  consent column applies to them (the tool that contacts the shoppers applies its own). An
  identity file without the destination's consent column exports nobody: the list is refused
  naming the column, unless the analyst states the legal basis for contacting them without it
  (``consent_basis``), which is recorded with the export. Fail closed throughout: a suppression
  list whose e-mails cannot be matched (no identity file with e-mails) refuses the list too.

The list's expected outcome (expected buyers, revenue, lift) and the cumulative-gain curve are defined and
computed in :mod:`core.campaigns.outcome`.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import config, store
from core.store import sql
from core.campaigns.holdout import assign_deciles, split_holdout
from core.campaigns.outcome import expected_outcome
from core.campaigns.current import current_state
from core.campaigns.uplift_estimates import join_uplift
from core.errors import NotFittedError, ParameterError, SchemaError
from core.campaigns.identities import (CONSENT_COLUMNS, IdentityTable, Suppression, accepted_names, email_match_key,
                             user_id_key)
from core.store.price_bands import PRICE_BANDS


_e = store.events.c
_p = store.predictions.c
_s = store.segments.c
#: The consent column each destination needs (csv and parquet carry no contact details and need none).
DESTINATION_CONSENT = {"google": "consent_ads", "meta": "consent_ads", "klaviyo": "consent_email",
                       "mailchimp": "consent_email"}
#: Identity columns a shopper needs at least one of to be matched by a destination.
DESTINATION_IDENTIFIERS = {"google": ("email", "phone"), "meta": ("email", "phone"), "klaviyo": ("email",),
                           "mailchimp": ("email",)}
DESTINATIONS = ("csv", "parquet", *DESTINATION_CONSENT)
#: How messages name each destination that needs consent.
DESTINATION_NAMES = {"google": "Google Ads Customer Match", "meta": "Meta Custom Audiences", "klaviyo": "Klaviyo",
                     "mailchimp": "Mailchimp"}
NEXT_EVENT_TYPES = ("view", "cart", "purchase", "remove_from_cart", "none")
LIST_COLUMNS = ("user_id", "segment", "segment_name", "propensity", "expected_revenue", "p_inactive", "uplift",
                "next_event_type", "next_category", "top_items", "reasons", "last_seen", "spend", "orders",
                "price_band")
COUNT_KEYS = ("matched", "suppressed", "not_in_identities", "no_consent", "no_identifier", "holdout", "exported")
MODEL_FILTERS = ("min_propensity", "max_propensity", "top_k", "top_percent", "next_categories", "next_event_types",
                 "min_expected_revenue", "min_p_inactive", "max_p_inactive", "rank_by")
#: What a top-k / top-% cut can rank by (highest first): the list's column of each forecast; "uplift" is the
#: dataset's newest uplift estimate (core.campaigns.uplift: "persuadables" first), which needs no forecast model.
RANK_KEYS = ("propensity", "expected_revenue", "p_inactive", "uplift")
#: The filters that need an uplift run (a model fitted on a measured campaign).
UPLIFT_FILTERS = ("min_uplift",)


@dataclass
class CampaignFilters:
    """The filters of a target list; every one left at None is not applied.

    ``segments``: segment numbers of the current segmentation; ``min_propensity`` /
    ``max_propensity``: calibrated purchase propensity range (0–1, inclusive); ``top_k`` or
    ``top_percent`` (not both): keep the highest-propensity shoppers of those left;
    ``next_categories`` / ``next_event_types``: the forecast next category / furthest next step;
    ``seen_within_days``: last event at most N days before the data's end; ``not_seen_days``:
    no event in the last N days; ``exclude_bought_days``: drop shoppers who bought in the last
    D days; ``min_spend``: spend at least this (currency of the file); ``price_bands``: the
    shopper's most frequent price band is one of these (``core.store.price_bands.PRICE_BANDS``);
    ``min_expected_revenue``: revenue expected within the horizon at least this;
    ``min_p_inactive`` / ``max_p_inactive``: chance of no activity within the horizon in this range
    (``min_p_inactive=config.LIKELY_TO_LAPSE`` keeps the shoppers likely to lapse); ``min_uplift``: estimated
    uplift (incremental chance to buy if contacted, −1..1) above this, from the dataset's newest uplift run;
    ``rank_by``: the forecast a top-k / top-% cut ranks by (:data:`RANK_KEYS`; None: propensity).
    Raises ``ParameterError`` naming the filter for an inconsistent value.
    """

    segments: list[int] | None = None
    min_propensity: float | None = None
    max_propensity: float | None = None
    top_k: int | None = None
    top_percent: float | None = None
    next_categories: list[str] | None = None
    next_event_types: list[str] | None = None
    seen_within_days: float | None = None
    not_seen_days: float | None = None
    exclude_bought_days: float | None = None
    min_spend: float | None = None
    price_bands: list[str] | None = None
    min_expected_revenue: float | None = None
    min_p_inactive: float | None = None
    max_p_inactive: float | None = None
    rank_by: str | None = None
    min_uplift: float | None = None

    def __post_init__(self) -> None:
        for name in ("segments", "next_categories", "next_event_types", "price_bands"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, list(value) or None)
        if self.segments is not None:
            self.segments = [int(s) for s in self.segments]
        for low, high in (("min_propensity", "max_propensity"), ("min_p_inactive", "max_p_inactive")):
            for name in (low, high):
                value = getattr(self, name)
                if value is not None and not 0.0 <= float(value) <= 1.0:
                    raise ParameterError(f"{name}={value!r} is outside 0–1 (a calibrated probability)", parameter=name)
            if getattr(self, low) is not None and getattr(self, high) is not None \
                    and getattr(self, low) > getattr(self, high):
                raise ParameterError(f"{low}={getattr(self, low)} is above {high}={getattr(self, high)}",
                                     parameter=low)
        if self.rank_by is not None and self.rank_by not in RANK_KEYS:
            raise ParameterError(f"rank_by={self.rank_by!r} is not a forecast to rank by; expected one of "
                                 f"{list(RANK_KEYS)}", parameter="rank_by", cases=[self.rank_by])
        if self.min_uplift is not None and not -1.0 <= float(self.min_uplift) <= 1.0:
            raise ParameterError(f"min_uplift={self.min_uplift!r} is outside -1–1 (a difference of two chances to "
                                 "buy)", parameter="min_uplift", cases=[self.min_uplift])
        if self.min_expected_revenue is not None and float(self.min_expected_revenue) < 0:
            raise ParameterError(f"min_expected_revenue={self.min_expected_revenue!r} is negative; expected an "
                                 "amount >= 0", parameter="min_expected_revenue")
        if self.top_k is not None and self.top_percent is not None:
            raise ParameterError(f"top_k={self.top_k} and top_percent={self.top_percent} are both set: choose one",
                                 parameter="top_k")
        if self.top_k is not None and int(self.top_k) < 1:
            raise ParameterError(f"top_k={self.top_k!r} must be a whole number of at least 1", parameter="top_k")
        if self.top_percent is not None and not 0.0 < float(self.top_percent) <= 100.0:
            raise ParameterError(f"top_percent={self.top_percent!r} must be in (0, 100]", parameter="top_percent")
        for name in ("seen_within_days", "not_seen_days", "exclude_bought_days"):
            value = getattr(self, name)
            if value is not None and float(value) < 0:
                raise ParameterError(f"{name}={value!r} is negative; expected a number of days >= 0", parameter=name)
        bad_types = sorted(set(self.next_event_types or []) - set(NEXT_EVENT_TYPES))
        if bad_types:
            raise ParameterError(f"next_event_types {bad_types} are not forecast steps; expected some of "
                                 f"{list(NEXT_EVENT_TYPES)}", parameter="next_event_types", cases=bad_types)
        bad_bands = sorted(set(self.price_bands or []) - set(PRICE_BANDS))
        if bad_bands:
            raise ParameterError(f"price_bands {bad_bands} are not price bands; expected some of {list(PRICE_BANDS)}",
                                 parameter="price_bands", cases=bad_bands)

    def needs_model(self) -> list[str]:
        """Names of the filters set here that need forecasts (a trained model); a cut ranked by uplift needs none."""
        by_uplift = ("rank_by", "top_k", "top_percent") if self.rank_by == "uplift" else ()
        return [n for n in MODEL_FILTERS if getattr(self, n) is not None and n not in by_uplift]

    def needs_uplift(self) -> list[str]:
        """Names of the filters set here that need an uplift run (ranking by uplift, the uplift floor)."""
        names = [n for n in UPLIFT_FILTERS if getattr(self, n) is not None]
        return ["rank_by", *names] if self.rank_by == "uplift" else names

    @property
    def ranking(self) -> str:
        """What orders the list and its top-k / top-% cut (:data:`RANK_KEYS`)."""
        return self.rank_by or "propensity"

    def to_json(self) -> str:
        """The filters as JSON (only the ones set), keys sorted: recorded with every export."""
        return json.dumps({k: v for k, v in dataclasses.asdict(self).items() if v is not None}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CampaignFilters:
        """Filters from :meth:`to_json`'s output; ``ParameterError`` for an unknown key."""
        data = json.loads(text or "{}")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ParameterError(f"unknown campaign filters {unknown}", parameter=unknown[0], cases=unknown)
        return cls(**data)


@dataclass
class TargetList:
    """A built list: ``targets`` (exported), ``holdout`` (kept back), counts, outcome and provenance.

    Both frames have the columns of :data:`LIST_COLUMNS` (``price_band`` is filled only when the
    price-band filter is used: it costs a second scan), ``last_purchase``, ``propensity_decile``
    (10 = highest; NA without a model) and, when an identity file was given, its normalised columns.
    ``counts`` has the keys of :data:`COUNT_KEYS`; ``outcome`` is :func:`expected_outcome`'s dict.
    ``consent_column``: the consent column the destination needs (None for csv/parquet);
    ``consent_basis``: the legal basis the analyst stated when the identity file lacks it, else None.
    ``as_of``: the data's last event when the list was built (its campaign's outcome window starts there).
    ``uplift_run_id``: the dataset's newest uplift run, whose estimates are the list's ``uplift`` column (None
    without one); ``ranking``: what ordered the list (:data:`RANK_KEYS`; None: no forecast to rank by).
    """

    dataset: str
    dataset_id: int
    filters: CampaignFilters
    targets: pd.DataFrame
    holdout: pd.DataFrame
    counts: dict
    outcome: dict
    model_version: str | None
    segment_run_id: int | None
    holdout_share: float
    seed: int
    destination: str | None
    notes: list[str] = field(default_factory=list)
    consent_column: str | None = None
    consent_basis: str | None = None
    as_of: dt.datetime | None = None
    uplift_run_id: int | None = None
    ranking: str | None = None


# --- what exists --------------------------------------------------------------------------------------


def _context(engine: Engine, dataset: str, filters: CampaignFilters) -> dict:
    ds = store.get_dataset(engine, dataset)
    did = int(ds["dataset_id"])
    now = current_state(engine, did)
    version, run_id, uplift_run = now["model_version"], now["run_id"], now["uplift_run_id"]
    need = filters.needs_model()
    if need and version is None:
        raise NotFittedError(f"The filters {need} use forecasts, but dataset {dataset!r} has no trained model: "
                             "train one on the Forecasts page, or build a list from segments and behaviour only.")
    if filters.needs_uplift() and uplift_run is None:
        raise NotFittedError(f"The filters {filters.needs_uplift()} use estimated uplift, but dataset {dataset!r} has "
                             "no uplift model: fit one on a measured campaign (Results on the Campaigns page, or "
                             "cartsight uplift) first.")
    if filters.segments is not None and run_id is None:
        raise NotFittedError(f"The segments filter {filters.segments} needs a segmentation, but dataset {dataset!r} "
                             "has none: run one on the Segments page first.")
    end = ds.get("last_event")
    if end is None:
        with engine.connect() as conn:
            end = conn.execute(sa.select(sa.func.max(_e.event_time)).where(_e.dataset_id == did)).scalar()
    return {"dataset_id": did, "model_version": version, "run_id": run_id, "end": end, "uplift_run_id": uplift_run}


# --- SQL ----------------------------------------------------------------------------------------------


def _per_user(dataset_id: int) -> sa.Subquery:
    """Per-shopper behaviour, read from ``cs_shoppers`` (one row per shopper written at load,
    :mod:`core.store.summaries`) rather than grouped from every event; orders count purchase sessions with an id."""
    sh = store.shoppers.c
    return (
        sa.select(
            sh.user_id.label("user_id"),
            sh.last_event.label("last_seen"),
            sh.last_purchase.label("last_purchase"),
            sa.func.coalesce(sh.revenue, 0.0).label("spend"),
            sh.n_named_orders.label("orders"),
        )
        .where(sh.dataset_id == dataset_id)
        .subquery("shoppers")
    )


def _band_preference(dataset_id: int) -> sa.Subquery:
    """Each shopper's most frequent price band (ties: band name first alphabetically)."""
    from core.analysis.band_table import price_band_sql

    from_clause, band = price_band_sql(dataset_id)
    counts = (sa.select(_e.user_id.label("user_id"), band.label("band"), sa.func.count().label("n"))
              .select_from(from_clause).where(_e.dataset_id == dataset_id, band.is_not(None))
              .group_by(_e.user_id, band).subquery("band_counts"))
    rank = sa.func.row_number().over(partition_by=counts.c.user_id, order_by=(counts.c.n.desc(), counts.c.band))
    ranked = sa.select(counts.c.user_id, counts.c.band, rank.label("rk")).subquery("band_ranked")
    return sa.select(ranked.c.user_id, ranked.c.band).where(ranked.c.rk == 1).subquery("band_pref")


def _filtered(ctx: dict, filters: CampaignFilters, with_band: bool, counting: bool = False):
    """(select of the matched shoppers before the top cut, the column the cut ranks by); ``counting``: only the joins
    the conditions read (one row per shopper each, so the count is the same; on Spark each join is jobs)."""
    did, version, run_id = ctx["dataset_id"], ctx["model_version"], ctx["run_id"]
    users = _per_user(did)
    from_clause = users
    cols = [users.c.user_id, users.c.last_seen, users.c.last_purchase, users.c.spend, users.c.orders]
    propensity = sa.cast(sa.null(), sa.Float)
    if version is not None:
        from_clause = from_clause.outerjoin(store.predictions, sa.and_(
            _p.dataset_id == did, _p.model_version == version, _p.user_id == users.c.user_id))
        propensity = _p.purchase_propensity
        cols += [propensity.label("propensity"), _p.expected_revenue, _p.p_inactive, _p.next_event_type,
                 _p.next_category, _p.top_items, _p.reasons]
    else:
        cols += [sa.cast(sa.null(), sa.Float).label(n) for n in RANK_KEYS if n != "uplift"] + [
            sa.cast(sa.null(), sa.String).label(n) for n in ("next_event_type", "next_category", "top_items", "reasons")]
    from_clause, uplift = join_uplift(from_clause, users, {**ctx, "uplift_run_id": None} if counting and not
                                      filters.needs_uplift() else ctx)
    cols.append(uplift.label("uplift"))
    rank = {"propensity": propensity, "expected_revenue": _p.expected_revenue,
            "p_inactive": _p.p_inactive, "uplift": uplift}[_rank_key(filters)]
    if run_id is not None and not (counting and filters.segments is None):
        from_clause = from_clause.outerjoin(store.segments, sa.and_(
            _s.dataset_id == did, _s.run_id == run_id, _s.user_id == users.c.user_id))
        cols += [_s.segment, _s.segment_name]
    else:
        cols += [sa.cast(sa.null(), sa.Integer).label("segment"), sa.cast(sa.null(), sa.String).label("segment_name")]
    band_col = sa.cast(sa.null(), sa.String)
    if with_band:
        pref = _band_preference(did)
        from_clause = from_clause.outerjoin(pref, pref.c.user_id == users.c.user_id)
        band_col = pref.c.band
    cols.append(band_col.label("price_band"))

    where = []
    end = ctx["end"]
    f = filters
    if f.segments is not None:
        where.append(_s.segment.in_(f.segments))
    if f.min_propensity is not None:
        where.append(propensity >= float(f.min_propensity) - config.PROPENSITY_TOLERANCE)
    if f.max_propensity is not None:
        where.append(propensity <= float(f.max_propensity) + config.PROPENSITY_TOLERANCE)
    if f.next_categories is not None:
        where.append(_p.next_category.in_(f.next_categories))
    if f.next_event_types is not None:
        where.append(_p.next_event_type.in_(f.next_event_types))
    where += _value_conditions(f)
    if f.min_uplift is not None:
        where.append(uplift > float(f.min_uplift))
    if (f.top_k is not None or f.top_percent is not None):
        where.append(rank.is_not(None))
    where += _recency_conditions(users, end, f)
    if f.min_spend is not None:
        where.append(users.c.spend >= float(f.min_spend))
    if f.price_bands is not None:
        where.append(band_col.in_(f.price_bands))
    return sa.select(*cols).select_from(from_clause).where(*where), rank


def _recency_conditions(users, end, f: CampaignFilters) -> list:
    """The seen-within, not-seen and bought-lately filters, measured back from the data's end."""
    where = []
    if end is not None:
        if f.seen_within_days is not None:
            where.append(users.c.last_seen >= end - dt.timedelta(days=float(f.seen_within_days)))
        if f.not_seen_days is not None:
            where.append(users.c.last_seen < end - dt.timedelta(days=float(f.not_seen_days)))
        if f.exclude_bought_days is not None:
            cut = end - dt.timedelta(days=float(f.exclude_bought_days))
            where.append(sa.or_(users.c.last_purchase.is_(None), users.c.last_purchase < cut))
    return where


def _value_conditions(f: CampaignFilters) -> list:
    """The expected-revenue and lapse-risk filters on the forecasts' columns."""
    where = []
    if f.min_expected_revenue is not None:
        where.append(_p.expected_revenue >= float(f.min_expected_revenue))
    if f.min_p_inactive is not None:
        where.append(_p.p_inactive >= float(f.min_p_inactive) - config.PROPENSITY_TOLERANCE)
    if f.max_p_inactive is not None:
        where.append(_p.p_inactive <= float(f.max_p_inactive) + config.PROPENSITY_TOLERANCE)
    return where


def _rank_key(filters: CampaignFilters) -> str:
    """The list's column that orders it and that a top-k / top-% cut ranks by."""
    return filters.rank_by or "propensity"


def _top_n(filters: CampaignFilters, n: int) -> int:
    if filters.top_k is not None:
        return min(n, int(filters.top_k))
    if filters.top_percent is not None:
        return min(n, math.ceil(n * float(filters.top_percent) / 100.0))
    return n


def count_matches(engine: Engine, dataset: str, filters: CampaignFilters) -> int:
    """How many shoppers pass ``filters`` (after the top-k / top-% cut), counted in the database.

    Suppression, consent and holdout are not applied here (they need the uploaded files; see
    :func:`build_target_list`). Errors: ``DatasetNotFoundError``; :class:`NotFittedError` when a
    filter needs forecasts or segments the dataset does not have.
    """
    stmt, _ = _filtered(_context(engine, dataset, filters), filters, filters.price_bands is not None, counting=True)
    with engine.connect() as conn:
        return _top_n(filters, int(conn.execute(sa.select(sa.func.count()).select_from(stmt.subquery())).scalar_one()))


def _matched_frame(engine: Engine, ctx: dict, filters: CampaignFilters) -> pd.DataFrame:
    stmt, _ = _filtered(ctx, filters, with_band=filters.price_bands is not None)
    if filters.top_k is not None or filters.top_percent is not None:
        with engine.connect() as conn:
            n = int(conn.execute(sa.select(sa.func.count()).select_from(stmt.subquery())).scalar_one())
        sub = stmt.subquery("matched")
        stmt = sa.select(sub).order_by(sub.c[_rank_key(filters)].desc(), sub.c.user_id).limit(_top_n(filters, n))
    with engine.connect() as conn:
        result = conn.execute(stmt)
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    frame["spend"] = frame["spend"].astype(float)
    frame["orders"] = frame["orders"].astype(int)
    for name in RANK_KEYS:
        frame[name] = pd.to_numeric(frame[name], errors="coerce")
    frame["segment"] = pd.to_numeric(frame["segment"], errors="coerce").astype("Int64")
    return frame.sort_values([_rank_key(filters), "user_id"], ascending=[False, True], na_position="last",
                             kind="mergesort").reset_index(drop=True)


# --- suppression, consent, holdout --------------------------------------------------------------------


def _suppress(frame: pd.DataFrame, suppression: Suppression | None, identities: IdentityTable | None) -> pd.Series:
    """Boolean mask of the rows the suppression list removes."""
    mask = pd.Series(False, index=frame.index)
    if suppression is None:
        return mask
    keys = frame["user_id"].map(user_id_key)  # 510791900.0 meets 510791900, whichever side a spreadsheet wrote
    mask |= keys.isin(suppression.user_ids)
    if suppression.emails and identities is not None and "email" in identities.columns:
        known = identities.frame.dropna(subset=["email"])
        blocked = set(known.loc[known["email"].map(email_match_key).isin(suppression.emails), "user_id"])
        # a shopper listed twice, with an old and a new address, is suppressed by either
        blocked |= {user for user, emails in identities.repeat_emails.items()
                    if any(email_match_key(e) in suppression.emails for e in emails)}
        mask |= keys.isin(blocked)
    return mask


# --- the list ------------------------------------------------------------------------------------------


def _consent_basis(destination: str | None, identities: IdentityTable | None, basis: str | None) -> str | None:
    """The stated legal basis when the identity file lacks the destination's consent column, else None.

    ``SchemaError`` naming the column when it is absent and no basis was stated.
    """
    column = DESTINATION_CONSENT.get(destination or "")
    if column is None or identities is None or column in identities.columns:
        return None
    text = (basis or "").strip()
    if not text:
        raise SchemaError(
            f"The identity file has no {column} column, which {DESTINATION_NAMES[destination]} needs: without it "
            f"nobody is exported. Add the column (yes/no per shopper; read under the names {accepted_names(column)}), "
            "or state the legal basis on which these shoppers may be contacted without it (the consent basis, "
            "recorded with the export).", column=column, cases=list(identities.source_names.values()),
                          reason="missing_column")
    return text


def _check_inputs(destination: str | None, identities: IdentityTable | None, suppression: Suppression | None,
                  holdout_share: float) -> None:
    """Refuse a list that would reach shoppers it should not, before any query runs."""
    if destination is not None and destination not in DESTINATIONS:
        raise ParameterError(f"destination {destination!r} is unknown; expected one of {list(DESTINATIONS)}",
                             parameter="destination")
    if destination in DESTINATION_IDENTIFIERS and identities is None:
        raise ParameterError(f"format {destination!r} needs an identity file (user_id with "
                             f"{' or '.join(DESTINATION_IDENTIFIERS[destination])}) to match shoppers",
                             parameter="identities")
    if not 0.0 <= holdout_share <= config.MAX_HOLDOUT_SHARE:
        raise ParameterError(f"holdout share {holdout_share!r} is outside 0–{config.MAX_HOLDOUT_SHARE}",
                             parameter="holdout")
    if suppression is not None and suppression.emails and (identities is None or "email" not in identities.columns):
        raise ParameterError(f"The suppression list holds {len(suppression.emails):,} e-mails, but no identity file "
                             "with an e-mail column was given, so they cannot be matched to shoppers and nobody would "
                             "be suppressed by them: add the identity file (user_id and email), or suppress by user "
                             "id.",
                             parameter="suppression")


def _apply_identities(frame: pd.DataFrame, identities: IdentityTable | None, destination: str | None,
                      basis: str | None, counts: dict) -> tuple[pd.DataFrame, list[str]]:
    """Join the identity file; drop (and count) shoppers not in it, without consent, without an identifier."""
    if identities is None:
        return frame, []
    notes = []
    keys = frame["user_id"].map(user_id_key)  # the identity file's ids are keys already
    if destination in DESTINATION_IDENTIFIERS:
        known = keys.isin(identities.frame["user_id"])
        counts["not_in_identities"] = int((~known).sum())
        frame, keys = frame[known], keys[known]
    frame = frame.assign(_key=keys).merge(identities.frame.rename(columns={"user_id": "_key"}), on="_key",
                                          how="left").drop(columns="_key")
    for col in identities.columns:
        if col in CONSENT_COLUMNS:
            frame[col] = frame[col].fillna(False).astype(bool)
    consent = DESTINATION_CONSENT.get(destination or "")
    if consent and consent in identities.columns:
        counts["no_consent"] = int((~frame[consent]).sum())
        frame = frame[frame[consent]]
    elif consent:
        notes.append(f"The identity file has no {consent} column: the list goes out on the legal basis stated, "
                     f"{basis!r}, which is recorded with the export.")
    needed = DESTINATION_IDENTIFIERS.get(destination or "")
    if needed:
        present = [c for c in needed if c in frame]
        has_id = frame[present].notna().any(axis=1) if present else pd.Series(False, index=frame.index)
        counts["no_identifier"] = int((~has_id).sum())
        frame = frame[has_id]
    return frame, notes


def build_target_list(engine: Engine, dataset: str, filters: CampaignFilters | None = None, *,
                      identities: IdentityTable | None = None, suppression: Suppression | None = None,
                      holdout_share: float = config.DEFAULT_HOLDOUT_SHARE, seed: int = config.DEFAULT_HOLDOUT_SEED,
                      destination: str | None = None, consent_basis: str | None = None) -> TargetList:
    """Build the target list of ``dataset`` for ``filters`` and split off the holdout.

    Inputs: the filters (None = everyone), an optional validated identity file and
    suppression list, the holdout share (0 = none) and seed, the destination format
    (one of :data:`DESTINATIONS`; it decides the consent column and the identifiers needed)
    and the legal basis the analyst states for a destination whose consent column the
    identity file lacks (ignored otherwise). Returns a :class:`TargetList`. Errors:
    ``DatasetNotFoundError``; :class:`NotFittedError` when a filter needs forecasts or
    segments that do not exist; ``ParameterError`` for an unknown destination, a bad holdout
    share, an ad/e-mail destination without an identity file, or suppression e-mails that
    cannot be matched (no identity file with e-mails); ``SchemaError`` for an identity file
    without the destination's consent column and no basis stated.
    """
    filters = filters or CampaignFilters()
    _check_inputs(destination, identities, suppression, holdout_share)
    basis = _consent_basis(destination, identities, consent_basis)
    ctx = _context(engine, dataset, filters)
    frame = _matched_frame(engine, ctx, filters)
    counts = dict.fromkeys(COUNT_KEYS, 0)
    counts["matched"] = len(frame)
    removed = _suppress(frame, suppression, identities)
    counts["suppressed"] = int(removed.sum())
    frame, notes = _apply_identities(frame[~removed], identities, destination, basis, counts)

    frame = frame.reset_index(drop=True)
    frame["propensity_decile"] = assign_deciles(frame["propensity"])
    hold = split_holdout(frame, holdout_share, seed)
    holdout, targets = frame[hold].reset_index(drop=True), frame[~hold].reset_index(drop=True)
    counts["holdout"], counts["exported"] = len(holdout), len(targets)
    outcome = expected_outcome(engine, ctx["dataset_id"], targets, ctx["model_version"])
    return TargetList(dataset=dataset, dataset_id=ctx["dataset_id"], filters=filters, targets=targets,
                      holdout=holdout, counts=counts, outcome=outcome, model_version=ctx["model_version"],
                      segment_run_id=ctx["run_id"], holdout_share=holdout_share, seed=seed,
                      destination=destination, notes=notes + outcome["notes"],
                      consent_column=DESTINATION_CONSENT.get(destination or ""), consent_basis=basis,
                      as_of=ctx["end"], uplift_run_id=ctx["uplift_run_id"], ranking=_ranking(ctx, filters))


def _ranking(ctx: dict, filters: CampaignFilters) -> str | None:
    """What ordered the list: its rank key, None when there is no forecast to rank by."""
    key = _rank_key(filters)
    return key if key == "uplift" or ctx["model_version"] is not None else None


def filter_options(engine: Engine, dataset: str) -> dict:
    """What the filter builder can offer: ``model_version`` (and its ``horizon_days``), ``segment_run_id``,
    ``uplift_run_id`` (the newest uplift run, whose estimates a list can rank and filter by; None without one),
    ``segments`` (number → name), ``next_categories`` (forecast next categories, most frequent first) and ``end``
    (the data's last event)."""
    ds = store.get_dataset(engine, dataset)
    did = int(ds["dataset_id"])
    now = current_state(engine, did, profiles=True)
    version = now["model_version"]
    out = {"model_version": version, "segment_run_id": now["run_id"], "segments": now["segments"],
           "next_categories": [], "end": ds.get("last_event"), "horizon_days": now["horizon_days"],
           "uplift_run_id": now["uplift_run_id"]}
    if version is not None:
        n = sa.func.count().label("n")
        rows = sql.fetch(engine, sa.select(_p.next_category, n).where(
            _p.dataset_id == did, _p.model_version == version, _p.next_category.is_not(None))
            .group_by(_p.next_category).order_by(n.desc(), _p.next_category))
        out["next_categories"] = [r[0] for r in rows]
    return out
