"""``cartsight outcome``: a past export measured against its holdout from the command line, on both stores."""
from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from core import cli, config
from core.campaigns import exports
from tests.campaigns.test_campaigns import END, make_shop
from tests.conftest import add_events

KEYS = ("export_id", "as_of", "window_days", "treated", "holdout", "converted_treated", "converted_holdout",
        "conversion_treated", "conversion_holdout", "lift_abs", "lift_ci_low", "lift_ci_high", "p_value",
        "revenue_per_treated", "revenue_per_holdout", "incremental_revenue", "status", "relative_lift",
        "revenue_ci_low", "revenue_ci_high", "by_segment", "by_decile", "min_detectable_lift")


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def shop_url(engine, tmp_path, monkeypatch):
    monkeypatch.setenv(config.HOME_ENV, str(tmp_path / "home"))
    make_shop(engine)
    return engine.url.render_as_string(hide_password=False)


def test_outcome_json_and_summary(capsys, engine, shop_url, tmp_path):
    code, out, err = run(capsys, "export", "--dataset", "shop", "--format", "csv", "--out", str(tmp_path / "l.csv"),
                         "--holdout", "0.5", "--seed", "2", "--db", shop_url, "--json")
    assert code == 0, err
    export_id = json.loads(out)["export_id"]
    targets = exports.export_members(engine, export_id, "target")["user_id"].tolist()
    add_events(engine, "shop", pd.DataFrame([
        {"user_id": targets[0], "event_time": END + dt.timedelta(days=2), "event_type": "purchase", "item_id": "x",
         "category": "c", "price": 50.0, "quantity": 1, "session_id": "later"},
        {"user_id": targets[1], "event_time": END + dt.timedelta(days=9), "event_type": "view", "item_id": "x",
         "category": "c", "price": 50.0, "quantity": None, "session_id": "later2"}]))

    code, out, err = run(capsys, "outcome", "--dataset", "shop", "--export", str(export_id), "--db", shop_url, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert set(KEYS) <= set(result)
    assert (result["export_id"], result["as_of"], result["window_days"]) == (export_id, "2024-01-31 12:00:00", 7)
    assert (result["treated"], result["holdout"], result["converted_treated"], result["converted_holdout"]) == (
        20, 20, 1, 0)
    assert result["lift_abs"] == pytest.approx(0.05) and result["incremental_revenue"] == pytest.approx(50.0)
    assert result["status"] == "groups too small"

    code, out, _ = run(capsys, "outcome", "--dataset", "shop", "--export", str(export_id), "--days", "3",
                       "--db", shop_url)
    assert code == 0
    assert "3-day window" in out and "The list converted at 5.0 % against 0.0 % in the holdout: +5.0 points" in out
    assert "status: groups too small" in out  # the data reaches 2024-02-09, past the window

    orders = tmp_path / "orders.csv"
    orders.write_text(f"email_or_id,paid_at,amount\n{targets[2]},2024-02-01T09:30:00Z,12.5\n"
                      f"{targets[3]},2024-02-08T09:30:00Z,99\n")
    code, out, err = run(capsys, "outcome", "--dataset", "shop", "--export", str(export_id), "--orders", str(orders),
                         "--db", shop_url, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["converted_treated"], result["revenue_per_treated"]) == (1, pytest.approx(12.5 / 20))
    assert result["orders"]["rows_read"] == 2 and result["source"] == "orders file orders.csv"

    code, _, err = run(capsys, "outcome", "--dataset", "shop", "--export", "999", "--db", shop_url)
    assert code == cli.EXIT_USER_ERROR and f"No export with id 999 in dataset 'shop'; its exports are [{export_id}]" in err
