"""A store written before scorings were kept is upgraded: every model version gets the scoring of the forecasts it
holds, as of the end of the data it was trained on (else the dataset's last event), on both stores."""
import datetime as dt
import json

import sqlalchemy as sa

from core import store
from tests.conftest import NO_OLD_SPARK_STORES, make_dataset, skip_on_spark

T0 = dt.datetime(2024, 3, 1, 12, 0)


def test_older_versions_get_the_scoring_of_their_forecasts(engine):
    skip_on_spark(engine, NO_OLD_SPARK_STORES)
    did = make_dataset(engine, "shop", [{"user_id": "u1", "event_time": T0, "event_type": "view", "item_id": "i"}])
    with engine.begin() as conn:
        for version, card in (("v1", {"data_window": [str(T0 - dt.timedelta(days=9)), str(T0 - dt.timedelta(days=2))]}),
                              ("v2", {})):
            conn.execute(store.models.insert().values(
                model_version=version, dataset_id=did, created_at=T0, horizon_days=7, path="/x", status="ready",
                metrics_json=json.dumps(card)))
        conn.execute(store.predictions.insert(), [{"dataset_id": did, "model_version": "v1", "user_id": u,
                                                   "purchase_propensity": 0.1} for u in ("u1", "u2")])
        conn.exec_driver_sql("DROP TABLE cs_scorings")
        conn.exec_driver_sql("DROP TABLE cs_past_predictions")
        conn.execute(sa.update(store.schema_info).values(version=7))
    store.ensure_schema(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(store.scorings.c.model_version, store.scorings.c.as_of, store.scorings.c.kind,
                                      store.scorings.c.n_users).order_by(store.scorings.c.model_version)).all()
        assert conn.execute(sa.select(sa.func.count()).select_from(store.past_predictions)).scalar() == 0
    assert [tuple(r) for r in rows] == [("v1", T0 - dt.timedelta(days=2), "training", 2), ("v2", T0, "training", 0)]
