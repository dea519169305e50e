"""The store's table layout: every ``cs_*`` table and sequence, and which backend a connection is.

Only SQLAlchemy and nothing of cartsight, so that the store's bookkeeping (:mod:`core.store`), the
tables derived at load (:mod:`core.store.derived`) and the shared SQL ideas (:mod:`core.store.sql`) can all
build on it without importing one another in a circle. :mod:`core.store` re-exports every name.
Every table carries ``dataset_id`` so that one store holds many datasets; the same tables work on
DuckDB and PostgreSQL.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

metadata = sa.MetaData()

schema_info = sa.Table(
    "cs_schema_info",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

dataset_id_seq = sa.Sequence("cs_dataset_id_seq", metadata=metadata)

datasets = sa.Table(
    "cs_datasets",
    metadata,
    sa.Column("dataset_id", sa.Integer, dataset_id_seq, primary_key=True),
    sa.Column("name", sa.String, nullable=False, unique=True),
    sa.Column("layout", sa.String, nullable=False),
    sa.Column("source", sa.String),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("rows_read", sa.BigInteger, nullable=False),
    sa.Column("rows_loaded", sa.BigInteger, nullable=False),
    sa.Column("rows_quarantined", sa.BigInteger, nullable=False),
    sa.Column("n_users", sa.BigInteger),
    sa.Column("first_event", sa.DateTime),
    sa.Column("last_event", sa.DateTime),
    # the column mapping used and the ingest report (event counts, unknown types, notes)
    sa.Column("mapping_json", sa.Text),
    sa.Column("report_json", sa.Text),
)

# The events stored by loads and appends (files). Readers use ``events`` below, never this table: writers
# (loads, appends, a dataset's removal, the price bands' update) are the only users of ``stored_events``.
stored_events = sa.Table(
    "cs_events",
    metadata,
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("user_id", sa.String, nullable=False),
    sa.Column("event_time", sa.DateTime, nullable=False),  # naive, always UTC
    sa.Column("event_type", sa.String, nullable=False),
    sa.Column("item_id", sa.String),
    sa.Column("category", sa.String),
    sa.Column("brand", sa.String),
    sa.Column("price", sa.Double),  # 8-byte: sa.Float is a 4-byte REAL on DuckDB
    sa.Column("quantity", sa.Integer),
    sa.Column("session_id", sa.String),
    # budget | mid | premium | luxury within the event's category over the whole dataset (edges in
    # cs_price_edges), NULL without a positive price; written once by core.store.derived.derive_dataset
    sa.Column("price_band", sa.String),
    # where the event came from: the dataset's file (cs_dataset_files) and its physical line there; NULL for
    # events stored before files were numbered (file 1, line unknown) and for events inserted by code
    sa.Column("file_no", sa.Integer),
    sa.Column("line_no", sa.BigInteger),
)

#: Views: not made by ``metadata.create_all``; :mod:`core.store.event_views` writes their definitions.
views = sa.MetaData()


def _event_columns() -> list[sa.Column]:
    return [sa.Column(c.name, c.type) for c in stored_events.columns]


# Every dataset's events as the readers see them: the stored events and, beside them, each connected dataset's
# view over a team's own table (``cs_connected_<id>``, the same columns). A view, so that one query text reads a
# file's dataset and a connected one alike; each reader filters on ``dataset_id``, which the databases push into
# both sides of the union (a connected side is a constant ``dataset_id`` and drops out for another dataset).
events = sa.Table("cs_all_events", views, *_event_columns())

# The files a dataset was built from, in the order they were loaded: the first load is file 1, each append
# the next. Rows read = loaded + quarantined holds per file; its events and quarantined rows carry its number.
dataset_files = sa.Table(
    "cs_dataset_files",
    metadata,
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("file_no", sa.Integer, nullable=False),
    sa.Column("name", sa.String),
    sa.Column("loaded_at", sa.DateTime, nullable=False),
    sa.Column("rows_read", sa.BigInteger, nullable=False),
    sa.Column("rows_loaded", sa.BigInteger, nullable=False),
    sa.Column("rows_quarantined", sa.BigInteger, nullable=False),
    sa.Column("rows_repeated", sa.BigInteger, nullable=False),  # of the quarantined: events already in the dataset
    sa.Column("first_event", sa.DateTime),
    sa.Column("last_event", sa.DateTime),
    sa.Column("report_json", sa.Text),
    sa.PrimaryKeyConstraint("dataset_id", "file_no"),
)

# Small tables derived from a dataset's events when it is loaded (core.store.derived), so that the pages
# read thousands of rows instead of scanning every event: a page's query stays quick at tens of millions.
price_edges = sa.Table(
    "cs_price_edges",
    metadata,
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("category", sa.String),  # NULL: the edges over every priced event (events without a category)
    sa.Column("n_priced", sa.BigInteger, nullable=False),  # priced events of the category
    sa.Column("n_items", sa.BigInteger),  # its distinct priced items
    sa.Column("edges_from", sa.String),  # the category path whose items gave the edges; NULL: the whole catalogue
    sa.Column("p25", sa.Double),  # NULL edges from the top: fewer bands (too few distinct prices)
    sa.Column("p50", sa.Double),
    sa.Column("p75", sa.Double),
)

session_days = sa.Table(
    "cs_session_days",
    metadata,
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("user_id", sa.String, nullable=False),
    sa.Column("session_id", sa.String),
    sa.Column("day", sa.Date, nullable=False),  # UTC day of the events (a visit over midnight has two rows)
    sa.Column("n_events", sa.BigInteger, nullable=False),
    sa.Column("n_views", sa.BigInteger, nullable=False),
    sa.Column("n_carts", sa.BigInteger, nullable=False),
    sa.Column("n_purchases", sa.BigInteger, nullable=False),  # purchases with a quantity not negative
    sa.Column("n_cancels", sa.BigInteger, nullable=False),  # purchases with a negative quantity
    sa.Column("revenue", sa.Double),  # NULL when no purchase of the row has a price
    sa.Column("n_amounts", sa.BigInteger, nullable=False),  # purchases (cancellations too) with a price
    sa.Column("first_event", sa.DateTime, nullable=False),
    sa.Column("last_event", sa.DateTime, nullable=False),
    sa.Column("last_purchase", sa.DateTime),  # of the purchases with a quantity not negative
)

# One row per shopper of a dataset (core.store.summaries): counts by event type, sessions (and those that
# reached each funnel step), orders, revenue and first/last event and purchase time; the RFM lens, the Overview's
# headline numbers and shopper funnel read it for the whole dataset instead of grouping every event.
shoppers = sa.Table(
    "cs_shoppers",
    metadata,
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("user_id", sa.String, nullable=False),
    sa.Column("n_events", sa.BigInteger, nullable=False),
    sa.Column("n_views", sa.BigInteger, nullable=False),
    sa.Column("n_carts", sa.BigInteger, nullable=False),
    sa.Column("n_purchases", sa.BigInteger, nullable=False),  # purchases with a quantity not negative
    sa.Column("n_cancels", sa.BigInteger, nullable=False),  # purchases with a negative quantity
    sa.Column("revenue", sa.Double),  # NULL when none of the shopper's purchases has a price
    sa.Column("n_amounts", sa.BigInteger, nullable=False),
    sa.Column("n_sessions", sa.BigInteger, nullable=False),
    sa.Column("n_orders", sa.BigInteger, nullable=False),  # sessions with a purchase
    sa.Column("n_named_orders", sa.BigInteger, nullable=False),  # of those, the sessions with an id
    sa.Column("n_view_sessions", sa.BigInteger, nullable=False),  # sessions with a view
    sa.Column("n_cart_sessions", sa.BigInteger, nullable=False),  # sessions with a cart
    sa.Column("n_view_cart_sessions", sa.BigInteger, nullable=False),  # with a view and a cart
    sa.Column("n_view_cart_order_sessions", sa.BigInteger, nullable=False),  # with a view, a cart and a purchase
    sa.Column("first_event", sa.DateTime, nullable=False),
    sa.Column("last_event", sa.DateTime, nullable=False),
    sa.Column("last_purchase", sa.DateTime),
)


def _shopper_values(name: str, *extra: sa.Column) -> sa.Table:
    """One row per shopper and value of a dimension (core.store.summaries): counts by event type and revenue."""
    return sa.Table(
        name,
        metadata,
        sa.Column("dataset_id", sa.Integer, nullable=False),
        sa.Column("value", sa.String, nullable=False),
        *extra,
        sa.Column("user_id", sa.String, nullable=False),
        sa.Column("n_all", sa.BigInteger, nullable=False),  # every event, cancellations included
        sa.Column("n_counted", sa.BigInteger, nullable=False),  # every event but cancellations
        sa.Column("n_views", sa.BigInteger, nullable=False),
        sa.Column("n_carts", sa.BigInteger, nullable=False),
        sa.Column("n_removes", sa.BigInteger, nullable=False),
        sa.Column("n_wishlists", sa.BigInteger, nullable=False),
        sa.Column("n_purchases", sa.BigInteger, nullable=False),  # purchases with a quantity not negative
        sa.Column("revenue", sa.Double),  # NULL when no purchase of the row has a price
    )


# Per shopper and category, brand, price band, event type, and brand within a category: what the Overview's
# rankings and the Preferences and Shopper pages' shares read for the whole dataset. A table per dimension,
# so a page reads only its dimension's rows.
shopper_values = {
    "category": _shopper_values("cs_shopper_categories"),
    "brand": _shopper_values("cs_shopper_brands"),
    "price_band": _shopper_values("cs_shopper_price_bands"),
    "event_type": _shopper_values("cs_shopper_event_types"),
    "category_brand": _shopper_values("cs_shopper_category_brands", sa.Column("category", sa.String)),
}

# Per value of a category, brand or price band over every shopper (core.store.summaries), summed from the
# per-shopper rows: the Overview's rankings and everyone's preferences over the whole dataset read a few rows here
# rather than grouping a row per shopper and value on every view (on Spark two or three jobs, 0.3-1.0 s at 5 M
# events; here one).
value_totals = sa.Table(
    "cs_value_totals",
    metadata,
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("dimension", sa.String, nullable=False),  # "category", "brand" or "price_band"
    sa.Column("value", sa.String, nullable=False),
    sa.Column("n_counted", sa.BigInteger, nullable=False),  # every event but cancellations
    sa.Column("shoppers", sa.BigInteger, nullable=False),  # shoppers with such an event
    sa.Column("n_views", sa.BigInteger, nullable=False),
    sa.Column("viewers", sa.BigInteger, nullable=False),  # shoppers with a view of it
    sa.Column("n_purchases", sa.BigInteger, nullable=False),
    sa.Column("buyers", sa.BigInteger, nullable=False),  # shoppers with a purchase of it
    sa.Column("revenue", sa.Double),  # NULL when no purchase of it has a price
)

# Events per UTC day and event type, with how many carry each optional field (core.store.summaries): the
# Overview's activity chart and column coverage for the whole dataset or any whole-day window.
type_days = sa.Table(
    "cs_type_days",
    metadata,
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("event_type", sa.String, nullable=False),
    sa.Column("n_events", sa.BigInteger, nullable=False),
    sa.Column("with_price", sa.BigInteger, nullable=False),
    sa.Column("with_category", sa.BigInteger, nullable=False),
    sa.Column("with_brand", sa.BigInteger, nullable=False),
    sa.Column("with_item", sa.BigInteger, nullable=False),
    sa.Column("with_quantity", sa.BigInteger, nullable=False),
    sa.Column("with_session", sa.BigInteger, nullable=False),
)

# Events per event type and unit price (NULL: no price) of a dataset (core.store.summaries): the Overview's
# price distribution for the whole dataset (a shop has a few thousand prices).
price_counts = sa.Table(
    "cs_price_counts",
    metadata,
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("event_type", sa.String, nullable=False),
    sa.Column("price", sa.Double),
    sa.Column("n_events", sa.BigInteger, nullable=False),
)

# Each brand's spellings in a dataset's files and how many of its events gave each (events keep the brand
# lower-cased and trimmed, the form that matches): the pages show the spelling marked ``shown``, the most
# frequent one (core.store.brand_names). A few rows per brand, so a page maps its top brands in a look-up.
brand_spellings = sa.Table(
    "cs_brand_spellings",
    metadata,
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("brand", sa.String, nullable=False),  # as cs_events.brand holds it: lower-cased, trimmed
    sa.Column("spelling", sa.String, nullable=False),  # as the files gave it, trimmed
    sa.Column("n_events", sa.BigInteger, nullable=False),  # loaded events that spelled it so
    sa.Column("shown", sa.Boolean, nullable=False),  # the one spelling of the brand the pages show
    sa.PrimaryKeyConstraint("dataset_id", "brand", "spelling"),
)

quarantine = sa.Table(
    "cs_quarantine",
    metadata,
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("line_no", sa.BigInteger),  # 1-based line of the input file, header included
    sa.Column("file_no", sa.Integer),  # the dataset's file the line is in (cs_dataset_files); NULL: file 1
    sa.Column("raw_line", sa.Text),
    sa.Column("reason", sa.String, nullable=False),  # short code, e.g. "truncated_row"
    sa.Column("detail", sa.Text),  # the message: column, value found, what was expected
)

mappings = sa.Table(
    "cs_mappings",
    metadata,
    sa.Column("signature", sa.String, primary_key=True),  # hash of the normalised header
    sa.Column("mapping_json", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

models = sa.Table(
    "cs_models",
    metadata,
    sa.Column("model_version", sa.String, primary_key=True),
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("horizon_days", sa.Integer, nullable=False),
    sa.Column("path", sa.String, nullable=False),  # folder with weights, config, vocabularies
    sa.Column("config_json", sa.Text),
    sa.Column("metrics_json", sa.Text),
    sa.Column("status", sa.String, nullable=False),  # "ready" once weights and predictions are in
)

predictions = sa.Table(
    "cs_predictions",
    metadata,
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("model_version", sa.String, nullable=False),
    sa.Column("user_id", sa.String, nullable=False),
    sa.Column("purchase_propensity", sa.Double),
    sa.Column("next_event_type", sa.String),
    sa.Column("p_view", sa.Double),
    sa.Column("p_cart", sa.Double),
    sa.Column("p_purchase", sa.Double),
    sa.Column("p_remove", sa.Double),
    sa.Column("p_none", sa.Double),
    sa.Column("next_category", sa.String),
    sa.Column("next_category_p", sa.Double),
    sa.Column("top_items", sa.Text),  # space-separated item ids, best first
    sa.Column("reasons", sa.Text),  # "; "-separated sentences
    # revenue expected within the horizon (NULL: no prices, or a version trained before value forecasts)
    sa.Column("expected_revenue", sa.Double),
    sa.Column("p_inactive", sa.Double),  # chance of no event at all within the horizon
)

scoring_id_seq = sa.Sequence("cs_scoring_id_seq", metadata=metadata)

# Every scoring of a model version: the one at its training and each rescore after an append. ``cs_predictions``
# holds the rows of each version's latest scoring; a rescore moves the rows it replaces to ``cs_past_predictions``
# under their scoring's id, so a shopper's forecasts then and now can be read side by side.
scorings = sa.Table(
    "cs_scorings",
    metadata,
    sa.Column("scoring_id", sa.Integer, scoring_id_seq, primary_key=True),
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("model_version", sa.String, nullable=False),
    sa.Column("scored_at", sa.DateTime, nullable=False),  # when the forecasts were written (UTC)
    sa.Column("as_of", sa.DateTime),  # the data's end (last event) the forecasts were made at
    sa.Column("kind", sa.String, nullable=False),  # "training" (published with the version) or "rescore"
    sa.Column("n_users", sa.BigInteger),
)

past_predictions = sa.Table(
    "cs_past_predictions",
    metadata,
    sa.Column("scoring_id", sa.Integer, nullable=False),
    *(sa.Column(c.name, c.type, nullable=c.nullable) for c in predictions.columns),
)

segment_run_id_seq = sa.Sequence("cs_segment_run_id_seq", metadata=metadata)

segment_runs = sa.Table(
    "cs_segment_runs",
    metadata,
    sa.Column("run_id", sa.Integer, segment_run_id_seq, primary_key=True),
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("n_segments", sa.Integer, nullable=False),
    sa.Column("model_version", sa.String),  # the forecasts whose propensity/embedding were features
    sa.Column("features_json", sa.Text),  # feature names used, scaling
    sa.Column("profiles_json", sa.Text),  # one profile card per segment
)

segments = sa.Table(
    "cs_segments",
    metadata,
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("run_id", sa.Integer, nullable=False),
    sa.Column("user_id", sa.String, nullable=False),
    sa.Column("segment", sa.Integer, nullable=False),
    sa.Column("segment_name", sa.String, nullable=False),
)

# Per segment of a dataset's newest segmentation run and per category, brand, price band and brand within a
# category (core.store.segment_totals), summed from the per-shopper rows joined to the run's assignments: the
# Preferences page by segment, its heat map and drill-down read a few rows here rather than joining every
# shopper's rows to the assignments on every view (on Spark 0.6-1.3 s at 5 M events). Rewritten with each run
# and each appended file; ``segment`` NULL holds the shoppers the run did not assign (appended since).
segment_value_totals = sa.Table(
    "cs_segment_value_totals",
    metadata,
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("run_id", sa.Integer, nullable=False),
    sa.Column("segment", sa.Integer),
    sa.Column("dimension", sa.String, nullable=False),  # "category", "brand", "price_band" or "category_brand"
    sa.Column("category", sa.String),  # the category of a "category_brand" row's brand, else NULL
    sa.Column("value", sa.String, nullable=False),
    sa.Column("n_counted", sa.BigInteger, nullable=False),  # every event but cancellations
    sa.Column("shoppers", sa.BigInteger, nullable=False),  # shoppers with such an event
    sa.Column("n_purchases", sa.BigInteger, nullable=False),
    sa.Column("buyers", sa.BigInteger, nullable=False),  # shoppers with a purchase of it
    sa.Column("revenue", sa.Double),  # NULL when no purchase of it has a price
)

export_id_seq = sa.Sequence("cs_export_id_seq", metadata=metadata)

#: ``cs_exports.as_of_basis``: the as-of time recorded when the list was built, or, for an export made before
#: it was recorded, the end of the data its model was trained on, or the dataset's last event at the upgrade
AS_OF_RECORDED, AS_OF_MODEL, AS_OF_DATASET = "recorded", "model", "dataset"

exports = sa.Table(
    "cs_exports",
    metadata,
    sa.Column("export_id", sa.Integer, export_id_seq, primary_key=True),
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("model_version", sa.String),
    sa.Column("segment_run_id", sa.Integer),
    sa.Column("name", sa.String),  # the analyst's label for the list
    sa.Column("format", sa.String, nullable=False),  # csv | parquet | google | meta | klaviyo | mailchimp
    sa.Column("filters_json", sa.Text, nullable=False),
    sa.Column("counts_json", sa.Text, nullable=False),  # core.campaigns.targets.COUNT_KEYS and holdout_share
    sa.Column("file_sha256", sa.String, nullable=False),
    sa.Column("file_name", sa.String),
    sa.Column("holdout_seed", sa.Integer),
    sa.Column("consent_column", sa.String),  # the consent column the destination needed (None: csv/parquet)
    sa.Column("consent_basis", sa.Text),  # the legal basis stated when the identity file lacked that column
    # the data's end when the list was built: its campaign's outcome window starts here, not at the wall clock
    sa.Column("as_of", sa.DateTime),
    # where as_of comes from: "recorded" at export; for exports made before it was recorded "model" (the end of
    # the data its model was trained on) or "dataset" (the dataset's last event when the store was upgraded)
    sa.Column("as_of_basis", sa.String),
    # what ordered the list (and a top-k / top-% cut): "propensity", "expected_revenue", "p_inactive" or "uplift";
    # NULL: no forecast to rank by. uplift_run_id: the uplift fit whose estimates ranked or filtered it
    sa.Column("ranking", sa.String),
    sa.Column("uplift_run_id", sa.Integer),
)

export_members = sa.Table(
    "cs_export_members",
    metadata,
    sa.Column("export_id", sa.Integer, nullable=False),
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("user_id", sa.String, nullable=False),
    sa.Column("group_name", sa.String, nullable=False),  # "target" (exported) or "holdout"
    sa.Column("propensity_decile", sa.Integer),
)


uplift_run_id_seq = sa.Sequence("cs_uplift_run_id_seq", metadata=metadata)

# An uplift model fitted on one measured export's treated and holdout shoppers (core.campaigns.uplift): its
# quality on the shoppers it did not see (Qini numbers and curves, verdict) and the shoppers' estimates below
uplift_runs = sa.Table(
    "cs_uplift_runs",
    metadata,
    sa.Column("run_id", sa.Integer, uplift_run_id_seq, primary_key=True),
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("export_id", sa.Integer, nullable=False),  # the campaign it learned from
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("window_days", sa.Integer, nullable=False),  # the estimate is a chance to buy within this window
    sa.Column("scored_at", sa.DateTime),  # the data's end the shoppers' features were read at
    sa.Column("model_version", sa.String),  # the forecasts whose propensity was a feature when scoring
    sa.Column("verdict", sa.String, nullable=False),
    sa.Column("report_json", sa.Text, nullable=False),  # sizes, Qini numbers and curves, learner, notes
)

uplift = sa.Table(
    "cs_uplift",
    metadata,
    sa.Column("dataset_id", sa.Integer, nullable=False),
    sa.Column("run_id", sa.Integer, nullable=False),
    sa.Column("user_id", sa.String, nullable=False),
    sa.Column("uplift", sa.Double, nullable=False),  # estimated chance to buy if contacted − if not (−1..1)
)


def is_duckdb(engine_or_conn: Engine | Connection) -> bool:
    """True when the store is DuckDB (bulk paths differ from PostgreSQL's)."""
    return engine_or_conn.dialect.name == "duckdb"
