"""The store: where every dataset lives, through SQLAlchemy (a DuckDB file by default, PostgreSQL for a team).

This package's face: everything above it reads ``store.<name>`` (``store.make_engine``, ``store.events``…)
from the names below. Modules inside ``core/store/`` import each other directly, never this face, so
the package has no circle (``tests/test_layering.py`` reads the graph).
"""
from core.store.brand_names import add_spellings, show_brands
from core.store.datasets import (check_name_free, clear_dataset_rows, dataset_file_history, drop_dataset, get_dataset, list_datasets,
                                 new_dataset, next_dataset_id, record_first_files)
from core.store.engine import SUPPORTED_BACKENDS, analyze, bulk_insert, driver_connection, make_engine
from core.store.event_views import CONNECTED_LAYOUT, connected_view_name
from core.store.faults import check_data_folder, command_role, describe_failure, lock_conflict_message, process_role
from core.store.freshness import (DataSince, data_added_since, export_data_since, model_data_since,
                                  segment_run_data_since)
from core.store.housekeeping import (OWNER_SUFFIX, PARTIAL_MARK, TEMP_PREFIX, cleanup_stale_files, process_owner,
                                     store_tag, temp_prefix)
from core.store.migrate import ensure_schema
from core.store.schema import (AS_OF_DATASET, AS_OF_MODEL, AS_OF_RECORDED, brand_spellings, dataset_files, dataset_id_seq, datasets,
                               events, export_id_seq, export_members, exports, is_duckdb, mappings, metadata, models,
                               past_predictions, predictions, price_edges, quarantine, schema_info, scoring_id_seq,
                               scorings, segment_run_id_seq, segment_runs, segment_value_totals, segments, session_days, shopper_values,
                               shoppers, stored_events, type_days, price_counts, value_totals, uplift,
                               uplift_run_id_seq, uplift_runs)
from core.store.url import resolve_url, safe_url

__all__ = [
    "CONNECTED_LAYOUT", "connected_view_name", "SUPPORTED_BACKENDS", "OWNER_SUFFIX", "PARTIAL_MARK", "TEMP_PREFIX", "AS_OF_DATASET", "AS_OF_MODEL",
    "AS_OF_RECORDED", "DataSince",
    "add_spellings", "analyze", "brand_spellings", "bulk_insert", "check_data_folder", "check_name_free", "clear_dataset_rows", "cleanup_stale_files", "command_role",
    "data_added_since", "export_data_since", "model_data_since", "segment_run_data_since", "dataset_file_history",
    "dataset_files", "dataset_id_seq", "datasets", "describe_failure",
    "driver_connection", "drop_dataset", "ensure_schema",
    "events", "export_id_seq", "export_members", "exports", "get_dataset", "is_duckdb", "list_datasets",
    "lock_conflict_message", "make_engine", "mappings", "metadata", "models", "new_dataset", "next_dataset_id", "past_predictions",
    "predictions", "scoring_id_seq", "scorings",
    "price_edges", "process_owner", "process_role", "quarantine", "record_first_files", "resolve_url", "safe_url",
    "schema_info", "segment_run_id_seq", "segment_runs", "segment_value_totals", "segments", "session_days", "shopper_values", "shoppers", "show_brands", "stored_events", "type_days", "price_counts", "value_totals", "store_tag", "temp_prefix",
    "uplift", "uplift_run_id_seq", "uplift_runs",
]
