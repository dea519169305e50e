"""Every tunable constant of cartsight in one place.

Pages and CLI read defaults from here; nothing else should hard-code these numbers.
"""
from __future__ import annotations

import os
from pathlib import Path

# --- storage -----------------------------------------------------------------
#: A DuckDB store refuses to open when its disk has less free space than this (bytes):
#: the file, its write-ahead log and a checkpoint need room before any load starts.
STORE_MIN_FREE_BYTES = 64 * 1024 * 1024
#: Seconds a PostgreSQL connection attempt may take before the store is reported unreachable.
PG_CONNECT_TIMEOUT_SECONDS = 10
#: Environment variable that names the SQLAlchemy URL of the store.
DB_URL_ENV = "CARTSIGHT_DB_URL"
#: Environment variable with the Spark Connect URL of a Spark store's cluster (secrets.toml's ``spark_connect`` wins).
SPARK_CONNECT_ENV = "CARTSIGHT_SPARK_CONNECT"
#: Environment variable that overrides the folder holding the default DuckDB file and models.
HOME_ENV = "CARTSIGHT_HOME"
#: Name of the Streamlit connection section in ``.streamlit/secrets.toml``.
SECRETS_SECTION = "cartsight"
#: Version of the table layout; bumped whenever ``core.store`` changes a table.
SCHEMA_VERSION = 14
#: Memory the embedded DuckDB store may use for one query before it spills to disk (DuckDB's own
#: default is 80 % of the machine): training and scoring share the process, and the app's whole
#: journey is to stay under 4 GB on a laptop (bench/scale.py measures its peak).
DUCKDB_MEMORY_LIMIT = "2GB"
#: PostgreSQL ``work_mem`` set on each connection: the Overview's per-session aggregates sort and hash
#: in memory rather than on disk (with the server's default, 4MB, they spill to disk at a few million events).
PG_WORK_MEM = "128MB"

# --- ingest --------------------------------------------------------------------
#: Inactivity gap that starts a new session when a file carries no session ids.
SESSION_GAP_MINUTES = 30
#: Bytes read from the start of a file to sniff its encoding, delimiter and layout.
SNIFF_BYTES = 256 * 1024
#: A line longer than this (in bytes, line break excluded) is not read: it is quarantined as
#: ``line_too_long`` with its first characters. An event takes a few hundred bytes; a line of megabytes is a
#: damaged file or an embedded blob. 2 MiB is also DuckDB's own default for one line.
MAX_LINE_BYTES = 2 * 1024 * 1024
#: Time-zone abbreviations a time may end in (2019-10-01 00:00:00 PST, 10/01/2019 1:05 PM EST), each with the
#: zone it is read as and that zone's offset from UTC in minutes. An abbreviation is a fixed offset: PST is
#: UTC-8 in summer too (summer times write PDT, UTC-7). Where one abbreviation names several zones, the one
#: listed is taken (North American and Indian exports write them most) and a note names the others
#: (TIME_ZONE_OTHER_MEANINGS). A time ending in an abbreviation not listed is quarantined, never read as UTC.
TIME_ZONE_ABBREVIATIONS: dict[str, tuple[int, str]] = {
    "UTC": (0, "Coordinated Universal Time"), "GMT": (0, "Greenwich Mean Time"), "UT": (0, "Universal Time"),
    "Z": (0, "UTC (Zulu time)"), "WET": (0, "Western European Time"), "WEST": (60, "Western European Summer Time"),
    "BST": (60, "British Summer Time"), "IST": (330, "India Standard Time"), "CET": (60, "Central European Time"),
    "CEST": (120, "Central European Summer Time"), "MET": (60, "Middle European Time"),
    "MEST": (120, "Middle European Summer Time"), "EET": (120, "Eastern European Time"),
    "EEST": (180, "Eastern European Summer Time"), "MSK": (180, "Moscow Time"), "SAST": (120, "South African Time"),
    "CAT": (120, "Central Africa Time"), "EAT": (180, "East Africa Time"), "WAT": (60, "West Africa Time"),
    "PKT": (300, "Pakistan Time"), "ICT": (420, "Indochina Time"), "WIB": (420, "Western Indonesia Time"),
    "SGT": (480, "Singapore Time"), "HKT": (480, "Hong Kong Time"), "AWST": (480, "Australian Western Time"),
    "JST": (540, "Japan Standard Time"), "KST": (540, "Korea Standard Time"),
    "ACST": (570, "Australian Central Standard Time"), "ACDT": (630, "Australian Central Daylight Time"),
    "AEST": (600, "Australian Eastern Standard Time"), "AEDT": (660, "Australian Eastern Daylight Time"),
    "NZST": (720, "New Zealand Standard Time"), "NZDT": (780, "New Zealand Daylight Time"),
    "HST": (-600, "Hawaii Standard Time"), "AKST": (-540, "Alaska Standard Time"),
    "AKDT": (-480, "Alaska Daylight Time"), "PST": (-480, "Pacific Standard Time"),
    "PDT": (-420, "Pacific Daylight Time"), "MST": (-420, "Mountain Standard Time"),
    "MDT": (-360, "Mountain Daylight Time"), "CST": (-360, "Central Standard Time (North America)"),
    "CDT": (-300, "Central Daylight Time (North America)"), "EST": (-300, "Eastern Standard Time"),
    "EDT": (-240, "Eastern Daylight Time"), "AST": (-240, "Atlantic Standard Time"),
    "ADT": (-180, "Atlantic Daylight Time"), "NST": (-210, "Newfoundland Standard Time"),
    "NDT": (-150, "Newfoundland Daylight Time"), "BRT": (-180, "Brasília Time"), "ART": (-180, "Argentina Time"),
}
#: The other zones an abbreviation of TIME_ZONE_ABBREVIATIONS also names (the listed one is taken).
TIME_ZONE_OTHER_MEANINGS: dict[str, str] = {
    "IST": "Irish Standard Time (UTC+01:00) and Israel Standard Time (UTC+02:00)",
    "CST": "China Standard Time (UTC+08:00) and Cuba Standard Time (UTC-05:00)",
    "CDT": "Cuba Daylight Time (UTC-04:00)",
    "BST": "Bangladesh Standard Time (UTC+06:00)",
    "AST": "Arabia Standard Time (UTC+03:00)",
    "MST": "Malaysia Standard Time (UTC+08:00)",
    "PST": "Philippine Standard Time (UTC+08:00)",
}
#: A price above this (in the file's currency) is taken as a data error and quarantined.
MAX_PRICE = 1_000_000.0
#: Canonical event types; anything else is kept as given and reported as unknown.
EVENT_TYPES = ("view", "cart", "remove_from_cart", "purchase", "wishlist")
#: Longest dataset name accepted (characters): names head tables, file names and CLI arguments.
DATASET_NAME_MAX_CHARS = 100
#: Name of the dataset the app loads from ``sample_data/`` on first start.
SAMPLE_DATASET = "sample"
SAMPLE_FILE = Path(__file__).resolve().parent.parent / "sample_data" / "sample_events.csv.gz"

# --- forecasting -----------------------------------------------------------------
#: Days after the cutoff in which a purchase counts for the propensity target.
DEFAULT_HORIZON_DAYS = 7
MIN_HORIZON_DAYS = 1
MAX_HORIZON_DAYS = 60
#: Held-out windows with fewer buyers than this are reported as "too few to measure".
MIN_BUYERS_TO_MEASURE = 20


def home_dir() -> Path:
    """Folder for the default database and saved models (``$CARTSIGHT_HOME`` or the user's data folder)."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cartsight"


def models_dir() -> Path:
    """Folder where trained model versions are written (weights, config, vocabularies)."""
    return home_dir() / "models"

# --- forecast evaluation: cutoffs, calibration, baselines (core/model/labels, evaluation, baselines) ---
#: Past cutoffs stacked for training examples when the history allows.
DEFAULT_N_TRAIN_CUTOFFS = 4
#: Least history (days between the first event and a cutoff) for a cutoff to give examples.
MIN_HISTORY_DAYS = 1
#: How the propensity is calibrated on the validation window (core.model.evaluation.fit_calibrator): "beta",
#: "platt" or "interpolated" isotonic. Each is strictly increasing, so every shopper keeps their own rank.
CALIBRATION_METHOD = "beta"
#: Inverse L2 strength of the calibration's logistic regressions (two or three parameters: barely regularised).
CALIBRATION_C = 100.0
#: Interpolated isotonic calibration needs at least this many validation examples and positives; else Platt scaling.
ISOTONIC_MIN_EXAMPLES = 200
ISOTONIC_MIN_POSITIVES = 20
#: Weight of the raw score added to every calibration (and of the runner-up score when a baseline's coarse
#: propensity is used), so that two different scores never share a calibrated value where a map is flat.
TIE_BREAK = 1e-6
#: Stacking the sequence model with gradient boosting needs this many buyers (and non-buyers) in validation.
STACK_MIN_POSITIVES = 20
#: Inverse L2 strength of the stacking logistic regression (two weights and a bias: light regularisation).
STACK_C = 1.0
#: The model card's verdict on the propensity in use, by how many times as often as average its top 10 % bought
#: in the held-out window: "strong" from VERDICT_STRONG_LIFT, "useful" from VERDICT_USEFUL_LIFT, else "weak".
VERDICT_STRONG_LIFT = 2.5
VERDICT_USEFUL_LIFT = 1.5
#: Bins of the calibration curve and groups of the lift table.
CALIBRATION_BINS = 10
LIFT_GROUPS = 10
#: Recency (days) the gradient-boosting baseline gives a shopper who never did the thing (never bought, never
#: carted): ten years, past any real recency, so that a tree splits them apart; real recencies are kept as they
#: are. Not the sequence model's cap on its days-since features (``core.model.config.DAYS_SINCE_CAP``, a year),
#: which also stands for "never" there but clips every longer recency.
RFM_NEVER_DAYS = 3650.0

# --- overview: aggregations and charts (core/queries, core/charts, pages/overview) ---
#: Bars in the top-categories and top-brands charts.
TOP_N = 10
#: Largest N the overview's top-N queries accept (the chart stays readable up to it).
MAX_TOP_N = 100
#: Lower bin edges within one decade of the price histogram (1-2-5 bins: 1–2, 2–5, 5–10, 10–20, ...).
PRICE_BIN_STEPS = (1, 2, 5)
#: A category needs this many distinct priced items for price bands of its own; with fewer it takes
#: the bands of its nearest parent path with enough (``apparel.shoes`` -> ``apparel``), else the
#: whole catalogue's (about five items per band: quartiles of fewer items move with every item).
PRICE_BAND_MIN_ITEMS = 20
#: Quantiles of the unit price reported beside the histogram.
PRICE_QUANTILES = (0.25, 0.5, 0.75, 0.9, 0.99)
#: Overview query results are cached this long (seconds) and this many at most.
OVERVIEW_CACHE_TTL_SECONDS = 600
OVERVIEW_CACHE_MAX_ENTRIES = 64
#: The activity chart counts per hour instead of per day when the data spans at most this many days.
HOURLY_ACTIVITY_MAX_DAYS = 3

# --- app shell and Data page (app.py, pages/data.py) ---
#: File kinds the upload box accepts (a gzip-compressed file ends in .gz).
UPLOAD_TYPES = ("csv", "tsv", "txt", "gz", "xlsx", "xls", "ods", "parquet", "json", "jsonl", "ndjson")
#: Bytes copied per chunk when an upload is written to a temporary file.
UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024
#: Seconds between refreshes of the progress bar while a file loads.
LOAD_REFRESH_SECONDS = 0.5
#: Quarantined rows listed on the Data page (the download holds all of them).
QUARANTINE_SHOW_ROWS = 200

# --- forecasts page (pages/forecasts) ---
#: Seconds between refreshes of the training progress bar and live loss curve.
TRAIN_REFRESH_SECONDS = 1.0
#: How often the Segments page redraws a running segmentation's progress (seconds).
SEGMENT_POLL_SECONDS = 0.25
#: What every page that shows forecasts says while a model for its dataset is being trained.
TRAINING_TEXT = "Training… forecasts will appear here when it ends."
#: Scorings kept per model version (its newest, the current one included): a rescore past this many drops the oldest
#: scoring's forecasts, so a version rescored weekly keeps a quarter of its forecast history.
SCORINGS_KEPT_PER_VERSION = 13
#: Forecast tables kept in the page cache, and for how long (seconds).
PREDICTIONS_CACHE_TTL_SECONDS = 600
PREDICTIONS_CACHE_MAX_ENTRIES = 8
#: Forecasts the Forecasts page's table shows (the first by chance to buy) and its download holds at most: the
#: filters run in the store, so a dataset of millions of shoppers never comes whole into the app.
FORECAST_TABLE_ROWS = 5_000
FORECAST_DOWNLOAD_ROWS = 250_000

# --- preferences (core/preferences, core/charts_preferences, pages/preferences) ---
#: Values (categories, brands) shown per preference chart and rows of the affinity heat map.
PREFERENCES_TOP_N = 15
#: A figure with fewer shoppers behind it than this is marked "few shoppers" (do not over-read it).
PREFERENCES_MIN_SHOPPERS = 30
#: The heat map's diverging colours run from 0 to this affinity, centred at 1.0 (higher saturates).
AFFINITY_COLOUR_MAX = 2.0
#: Preference query results are cached this long (seconds) and this many at most.
PREFERENCES_CACHE_TTL_SECONDS = 600
PREFERENCES_CACHE_MAX_ENTRIES = 64

# --- segments, RFM and the shopper page (core/segments, core/rfm, pages/segments, pages/shopper) ---
#: Number of segments the analyst may choose, and the range "auto" searches by silhouette.
SEGMENT_K_RANGE = (2, 10)
#: Each segment needs at least this many shoppers on average (k segments need k times this).
SEGMENT_MIN_SHOPPERS_PER_SEGMENT = 5
#: Category groups (top level of the category path) counted for segment profiles and names.
SEGMENT_TOP_CATEGORIES = 8
#: Categories (whole paths, the most visited first) whose shares of a shopper's events are features.
SEGMENT_TASTE_CATEGORIES = 50
#: A shopper's category shares count this many pseudo-events spread like everyone's: short histories
#: sit near the average mix instead of forming segments of their own (on 800 simulated shoppers over
#: 4 weeks, adjusted Rand index 0.83 with it, 0.77 without; a long history barely moves).
SEGMENT_SHARE_PRIOR_EVENTS = 2.0
#: Shoppers sampled (seeded) to choose k by silhouette; k-means for each candidate k runs on this sample.
SEGMENT_SILHOUETTE_SAMPLE = 5_000
#: Above this many shoppers the final fit uses mini-batch k-means.
SEGMENT_MINIBATCH_ABOVE = 100_000
#: k-means restarts (full and mini-batch) and the mini-batch size.
SEGMENT_N_INIT = 4
SEGMENT_MINIBATCH_N_INIT = 3
SEGMENT_MINIBATCH_SIZE = 4_096
#: Weight of each block of features. Standard-scaled blocks (activity, forecast): every feature is
#: multiplied by weight / sqrt(block size), so the block's total variance is weight². Taste blocks
#: (SEGMENT_UNSCALED_BLOCKS: square-rooted category shares and the price position, 0..1) keep their
#: own units, times the weight, so that shoppers differ by how their mix differs (a Hellinger
#: distance) and a rarely visited category does not weigh like a common one. Taste leads and activity
#: barely counts, so segments say who shoppers are before how busy they are. Chosen on simulated
#: shoppers (core.simulate; bench/segments.py measures the adjusted Rand index on several seeds).
SEGMENT_BLOCK_WEIGHTS = {"activity": 0.1, "categories": 1.0, "price_bands": 1.0, "forecast": 0.1}
SEGMENT_UNSCALED_BLOCKS = ("categories", "price_bands")
#: CPU threads k-means and the silhouette may use (OpenMP/BLAS). One thread: on a busy 2-core machine
#: OpenMP's spinning threads made a 1,500-shopper k-means 25x slower (2.5 s against 0.1 s).
SEGMENT_THREADS = 1
#: Principal components of the model's shopper embedding kept as features (when a model exists).
SEGMENT_EMBEDDING_COMPONENTS = 4
#: Shoppers scored for embeddings per chunk; above SEGMENT_EMBEDDING_MAX_USERS the embedding is left out.
SEGMENT_EMBEDDING_CHUNK_USERS = 5_000
SEGMENT_EMBEDDING_MAX_USERS = 200_000
#: Points drawn (seeded sample) on the segment map.
SEGMENT_MAP_POINTS = 5_000
#: On a Spark store whose cluster runs cartsight's executor work (Spark Connect), a segmentation of more shoppers
#: than this is fitted on a seeded sample of about this many, and every shopper is then assigned on the executors.
SEGMENT_FIT_MAX_SHOPPERS = 500_000
#: Naming: a category group names a segment when it holds at least this share of its events;
#: a price band or activity trait names it when its index vs all shoppers is at least SEGMENT_NAME_MIN_INDEX.
SEGMENT_NAME_MIN_SHARE = 0.10
SEGMENT_NAME_MIN_INDEX = 1.25
#: Categories, brands and price bands listed on a profile card.
SEGMENT_PROFILE_TOP = 3
#: Page caches (seconds, entries).
SEGMENTS_CACHE_TTL_SECONDS = 600
SEGMENTS_CACHE_MAX_ENTRIES = 32
#: RFM: quintile scores 1..5; shopper-page suggestions and timeline length.
RFM_SCORES = 5
SHOPPER_SUGGESTIONS = 10
SHOPPER_TIMELINE_MAX_EVENTS = 2_000

# --- campaigns and exports (core/campaigns, core/identities, core/exports, pages/campaigns) ---
#: Share of the eligible list kept back as a holdout (never exported) and the default seed of its draw.
DEFAULT_HOLDOUT_SHARE = 0.1
MAX_HOLDOUT_SHARE = 0.5
DEFAULT_HOLDOUT_SEED = 0
#: Propensity groups the holdout is stratified by (deciles of the eligible list, 10 = highest propensity).
HOLDOUT_STRATA = 10
#: Points kept on the cumulative-gain curve (evenly spaced over the ranked shoppers).
GAIN_CURVE_POINTS = 200
#: Propensity bounds are compared with this slack, the calibration's TIE_BREAK: to keep the raw order where a
#: fitted map is flat the calibration moves a forecast off the map's value by up to that much, so a shopper
#: the map puts at 0.6 can read 0.5999997, and "at least 0.6" must keep them. (The column is an 8-byte
#: double; float rounding alone moves a value far less.)
PROPENSITY_TOLERANCE = TIE_BREAK
#: Rows of the target list shown in the page's preview.
CAMPAIGN_PREVIEW_ROWS = 20
#: Problems of an uploaded identity or suppression file shown in full on the page (all are downloadable).
CAMPAIGN_PROBLEMS_SHOWN = 200
#: Smallest list each ad platform serves ads to (matched members). Google: 100 active users for
#: network/Display inventory, 1,000 for YouTube and Search (support.google.com/ads-data-hub/answer/9935747);
#: Meta: a customer-list Custom Audience needs about 100 matched people to deliver (Meta Business Help
#: Center, Custom Audiences). The warning fires below these sizes; the platform's own match rate only lowers it.
PLATFORM_MIN_LIST_SIZE = {"google": 100, "meta": 100}
#: Campaign results (core/campaigns/results): confidence of every interval, the power and two-sided α of the
#: smallest detectable lift, and the bootstrap of revenue per shopper (resamples, seed).
OUTCOME_CONFIDENCE = 0.95
OUTCOME_POWER = 0.80
OUTCOME_ALPHA = 0.05
OUTCOME_BOOTSTRAP_RESAMPLES = 2_000
OUTCOME_BOOTSTRAP_SEED = 0
#: A group (exported or holdout) with fewer shoppers than this is too small to measure a campaign on.
OUTCOME_MIN_GROUP_SHOPPERS = 30
#: The p-value is Fisher's exact test when an expected cell of the 2×2 table (shoppers who bought or not, per
#: group, under no effect) is below this, else the pooled two-proportion z-test (Cochran's rule).
OUTCOME_FISHER_BELOW_EXPECTED = 5
#: Uplift (core/campaigns/uplift): a campaign needs at least this many exported and held-out shoppers, and this
#: many buyers in each group within its window, before an uplift model is fitted on it (below them two fitted
#: chances to buy differ by noise alone).
UPLIFT_MIN_GROUP_SHOPPERS = 200
UPLIFT_MIN_GROUP_BUYERS = 10
#: Folds of the cross-fitting: each shopper's estimate, and the Qini numbers, come from a model fitted on the
#: other folds (stratified by group and outcome), so the quality is measured on shoppers the model did not see.
UPLIFT_FOLDS = 3
#: The cross-fitting is repeated with this many different splits and the Qini numbers averaged: on simulated
#: campaigns without any effect, one split's coefficient strayed up to 3.3 bootstrap standard errors from zero.
UPLIFT_REPEATS = 3
#: Re-randomisations of the campaign (its exported / held-out labels shuffled within its propensity deciles, the
#: models fitted again) behind the randomisation test that the uplift ranking beats random targeting: 19 gives a
#: p-value of 0.05 at best. The bootstrap interval alone was too narrow for a fitted ranking: on three simulated
#: campaigns without any effect, one came out "better than random" and one below.
UPLIFT_PERMUTATIONS = 19
UPLIFT_ALPHA = 0.05
#: The two gradient-boosting models (exported; held out): small, slow-learning trees with large leaves, since a
#: campaign's groups are hundreds to thousands of shoppers and their difference is what counts.
UPLIFT_TREES = 100
UPLIFT_LEARNING_RATE = 0.05
UPLIFT_TREE_LEAVES = 8
UPLIFT_MIN_LEAF_SHOPPERS = 30
UPLIFT_SEED = 0
#: Poisson-bootstrap resamples of the held-out shoppers behind the Qini numbers' 95 % intervals (seeded).
UPLIFT_BOOTSTRAP_RESAMPLES = 500
#: Points of each Qini curve kept for the chart (evenly spaced shares of the shoppers).
UPLIFT_CURVE_POINTS = 100
#: Shoppers whose features are read (and scored) per query.
UPLIFT_CHUNK_USERS = 20_000
#: Campaign count/list caches on the page (seconds, entries).
CAMPAIGNS_CACHE_TTL_SECONDS = 300
CAMPAIGNS_CACHE_MAX_ENTRIES = 32


def exports_dir() -> Path:
    """Folder where the bytes of every recorded export are kept (re-download checks their SHA-256)."""
    return home_dir() / "exports"
#: "Likely to lapse": a chance of no activity at all within the horizon of at least this (more likely than not).
LIKELY_TO_LAPSE = 0.5
#: Boosting rounds and leaves per tree of the value and churn forecasts' gradient boosting (core.model.value):
#: scoring walks up to three such ensembles per shopper beside the propensity's, so they are kept smaller
#: than the baselines' (100 rounds, 31 leaves).
VALUE_TREES = 50
VALUE_TREE_LEAVES = 15
