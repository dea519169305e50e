"""The analyst's whole journey through core/, for tests/test_no_network.py to run under the network guard.

``python -m tests.netguard.journey FOLDER`` writes a simulated REES46-layout file, ingests it
into a DuckDB store in FOLDER, trains a tiny forecast model (which scores every shopper),
scores again, segments the shoppers, builds a top-10 % target list and exports it, then
prints one JSON line of what each step produced, for the test to check. Models and export
files go to ``$CARTSIGHT_HOME``. Nothing here sets ``HF_HUB_OFFLINE``: the journey must
stay on the machine without it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import sys
from pathlib import Path

#: Small enough for CI (a few seconds of training on one thread), large enough for every step.
N_USERS, WEEKS, SEED = 150, 5, 3
DATASET = "offline shop"
N_SEGMENTS = 3
TOP_PERCENT = 10.0
EXPORT_NAME = "top 10 % offline"


def tiny_config():
    """The tiny model configuration of tests/model/test_forecast.py."""
    from core.model.config import ModelConfig

    return ModelConfig(max_len=20, hidden_size=16, n_layers=1, n_heads=2, epochs=2, min_train_steps=30,
                       batch_size=64, max_train_examples=3000, n_train_cutoffs=2, item_vocab_cap=500)


def tiny_settings():
    """Its run settings: small query chunks, one torch thread."""
    from core.model.config import PipelineSettings

    return PipelineSettings(chunk_users=150, torch_threads=1)


def run(folder: Path) -> dict:
    """Run every step against ``folder``'s store; returns what each step produced."""
    import pandas as pd
    import sqlalchemy as sa
    import torch

    from core import simulate, store
    from core.analysis import segments
    from core.campaigns import targets as campaigns, exports
    from core.model import forecast
    from core.ingest.load import ingest_file

    torch.set_num_threads(1)
    sim = simulate.simulate(N_USERS, weeks=WEEKS, seed=SEED)
    events_csv = folder / "offline-shop.csv.gz"
    lines = simulate.write_csv(sim, events_csv)
    engine = store.make_engine(f"duckdb:///{folder / 'store.duckdb'}")
    try:
        report = ingest_file(engine, events_csv, DATASET)
        card = forecast.train(engine, DATASET, config=tiny_config(), seed=1, settings=tiny_settings())
        rescored = forecast.score(engine, DATASET)
        did = store.get_dataset(engine, DATASET)["dataset_id"]
        with engine.connect() as conn:
            predictions = conn.execute(sa.select(sa.func.count()).select_from(store.predictions)
                                       .where(store.predictions.c.dataset_id == did)).scalar_one()
        seg = segments.run_segmentation(engine, DATASET, n_segments=N_SEGMENTS, seed=0)
        target_list = campaigns.build_target_list(engine, DATASET, campaigns.CampaignFilters(top_percent=TOP_PERCENT))
        record = exports.save_export(engine, target_list, "csv", name=EXPORT_NAME)
        stored = exports.export_file(engine, record["export_id"])
        exported_rows = pd.read_csv(io.BytesIO(stored), dtype=str)
    finally:
        engine.dispose()
    return {
        "lines_written": lines, "rows_read": report.rows_read, "rows_loaded": report.rows_loaded,
        "rows_quarantined": report.rows_quarantined, "users": report.users,
        "sim_users": int(sim.events["user_id"].nunique()),
        "model_version": card.model_version, "n_users_scored": card.n_users, "rescored": rescored,
        "predictions": predictions, "n_segments": seg.n_segments, "segment_rows": len(seg.assignments),
        "segmented_users": int(seg.assignments["user_id"].nunique()),
        "counts": {k: int(v) for k, v in target_list.counts.items()},
        "export_id": record["export_id"], "file_sha256": record["file_sha256"],
        "stored_sha256": hashlib.sha256(stored).hexdigest(), "exported_rows": len(exported_rows),
        "exported_users": sorted(exported_rows["user_id"]),
        "top_users": sorted(target_list.targets["user_id"].astype(str)),
    }


if __name__ == "__main__":
    print(json.dumps(run(Path(sys.argv[1]))), flush=True)
    sys.stderr.flush()
    # leave without interpreter finalisation, where duckdb's bindings print "leaked instance" lines
    # (see pytest_sessionfinish in tests/conftest.py)
    os._exit(0)
