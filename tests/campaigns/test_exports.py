"""Export files (headers, hashing, formula escaping, small-list warning) and the exports record, on both stores."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json

import pandas as pd
import pytest
import sqlalchemy as sa

from core import config, store
from core.campaigns import exports
from core.present import safecsv
from core.campaigns.targets import CampaignFilters, build_target_list
from core.errors import CartsightError, ParameterError, SchemaError
from core.campaigns.identities import read_identities
from core.campaigns.contact_fields import sha256_hex
from tests.campaigns.test_campaigns import END, FIXTURES, make_shop


@pytest.fixture
def shop(engine, tmp_path, monkeypatch):
    monkeypatch.setenv(config.HOME_ENV, str(tmp_path / "home"))
    make_shop(engine)
    return engine


@pytest.fixture
def identities():
    return read_identities(FIXTURES / "identities.csv")


def _csv(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)


@pytest.mark.parametrize("value, escaped", [
    ("=1+2", "'=1+2"), ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"), ("-x", "'-x"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("plain", "plain"), ("a=b", "a=b"), ("", ""),
    ("-1.5", "-1.5"), ("+442079460958", "+442079460958"), ("1e-3", "1e-3"), (3.5, 3.5), (-2, -2), (None, None),
])
def test_escape_cell(value, escaped):
    assert safecsv.escape_cell(value) == escaped


def test_csv_export_is_recorded_and_downloads_again(shop):
    built = build_target_list(shop, "shop", CampaignFilters(top_k=20), holdout_share=0.1, seed=5)
    record = exports.save_export(shop, built, "csv", name="spring")
    frame = _csv(record["data"])
    assert list(frame.columns) == list(exports.PLAIN_COLUMNS)
    assert len(frame) == 18 and record["counts"]["exported"] == 18 and record["counts"]["holdout"] == 2
    assert not set(frame["user_id"]) & set(built.holdout["user_id"])
    assert frame.iloc[0].to_dict() == {"user_id": "u39", "segment": "1", "segment_name": "Premium fans",
                                       "propensity": frame.iloc[0]["propensity"], "expected_revenue": "165.0",
                                       "p_inactive": "0.975", "next_category": "shoes",
                                       "recommended_items": "it39 it40", "reasons": "viewed it39; came back"}
    assert float(frame.iloc[0]["propensity"]) == pytest.approx(0.8)
    assert record["file_sha256"] == hashlib.sha256(record["data"]).hexdigest()

    again = exports.export_file(shop, record["export_id"])
    assert again == record["data"]
    history = exports.list_exports(shop, "shop")
    assert len(history) == 1
    row = history.iloc[0]
    assert (row["export_id"], row["name"], row["format"], row["model_version"]) == (record["export_id"], "spring",
                                                                                     "csv", "m1")
    assert (row["matched"], row["exported"], row["holdout"], row["holdout_seed"]) == (20, 18, 2, 5)
    assert row["file_sha256"] == hashlib.sha256(again).hexdigest()
    assert CampaignFilters.from_json(row["filters"]) == CampaignFilters(top_k=20)

    hold = exports.holdout_list(shop, record["export_id"])
    assert sorted(hold["user_id"]) == sorted(built.holdout["user_id"])
    assert hold["propensity_decile"].notna().all()
    members = exports.export_members(shop, record["export_id"], "target")
    assert sorted(members["user_id"]) == sorted(frame["user_id"])


def test_tampered_file_is_refused(shop):
    built = build_target_list(shop, "shop", CampaignFilters(top_k=5), holdout_share=0.0)
    record = exports.save_export(shop, built, "csv")
    path = config.exports_dir() / f"{record['export_id']}-{record['file_name']}"
    path.write_bytes(record["data"] + b"u99,,,,,,\n")
    with pytest.raises(CartsightError, match="was changed: SHA-256"):
        exports.export_file(shop, record["export_id"])
    with pytest.raises(CartsightError, match="No export with id 999"):
        exports.export_file(shop, 999)


def test_parquet_export(shop):
    built = build_target_list(shop, "shop", CampaignFilters(segments=[0]), holdout_share=0.0)
    record = exports.save_export(shop, built, "parquet")
    frame = pd.read_parquet(io.BytesIO(record["data"]))
    assert list(frame.columns) == list(exports.PLAIN_COLUMNS)
    assert len(frame) == 20 and set(frame["segment"]) == {0}
    assert exports.export_file(shop, record["export_id"]) == record["data"]


def test_google_file(shop, identities):
    built = build_target_list(shop, "shop", CampaignFilters(seen_within_days=9), identities=identities,
                              holdout_share=0.0, destination="google")
    file = exports.render(built, "google")
    assert file.data.decode().splitlines()[0] == "Email,Phone,First Name,Last Name,Country,Zip"
    frame = _csv(file.data).set_index(built.targets["user_id"])
    alice = frame.loc["u00"]
    assert alice["Email"] == sha256_hex("alice.smith@example.com")
    assert alice["Phone"] == hashlib.sha256(b"+442079460958").hexdigest()
    assert alice["First Name"] == sha256_hex("alice") and alice["Last Name"] == sha256_hex("smith")
    assert (alice["Country"], alice["Zip"]) == ("GB", "SW1A 1AA")  # Google takes these in clear
    assert frame.loc["u04", "Email"] == sha256_hex("=1+2@example.com")
    # consent_ads yes and an e-mail or phone: u06-u08 lost only a bad phone, country or e-mail consent
    assert sorted(frame.index) == ["u00", "u01", "u04", "u06", "u07", "u08", "u09"]
    assert frame.loc["u06", "Phone"] == "" and frame.loc["u06", "Email"] == sha256_hex("gina@example.com")
    assert file.warnings and "at least 100 matched people (1,000 for Search and YouTube)" in file.warnings[0]


def test_google_gmail_rule_in_file():
    targets = pd.DataFrame({"email": ["jane.doe@gmail.com", "jane.doe@example.com"]})
    frame = exports.google_frame(targets)
    assert frame["Email"].tolist() == [sha256_hex("janedoe@gmail.com"), sha256_hex("jane.doe@example.com")]
    assert frame["Phone"].tolist() == ["", ""]


def test_meta_file(shop, identities):
    built = build_target_list(shop, "shop", CampaignFilters(seen_within_days=9), identities=identities,
                              holdout_share=0.0, destination="meta")
    file = exports.render(built, "meta")
    assert file.data.decode().splitlines()[0] == "email,phone,fn,ln,zip,country"
    frame = _csv(file.data).set_index(built.targets["user_id"])
    assert frame.loc["u00", "phone"] == sha256_hex("442079460958")  # Meta: digits with country code, no +
    assert frame.loc["u00", "zip"] == sha256_hex("sw1a1aa")
    assert frame.loc["u00", "country"] == sha256_hex("gb")
    assert frame.loc["u01", "zip"] == sha256_hex("94043")  # US zip: first five digits
    assert frame.loc["u04", "ln"] == sha256_hex("hyperlink")  # letters only
    assert frame.loc["u09", "fn"] == sha256_hex("jo")
    assert frame.loc["u07", "country"] == "" and frame.loc["u07", "zip"] == sha256_hex("00000")  # country XX blanked
    assert all(len(v) in (0, 64) for v in frame.to_numpy().ravel())


def test_klaviyo_file_is_consented_plain_and_escaped(shop, identities):
    built = build_target_list(shop, "shop", CampaignFilters(seen_within_days=9), identities=identities,
                              holdout_share=0.0, destination="klaviyo")
    file = exports.render(built, "klaviyo")
    lines = file.data.decode().splitlines()
    assert lines[0] == ("Email,First Name,Last Name,Phone Number,Email Marketing Consent,External ID,Segment,"
                        "Purchase Propensity,Next Category,Recommended Items")
    frame = _csv(file.data).set_index("External ID")
    # consent_email yes only (u08's "maybe" is no consent); u05 has consent but no valid e-mail
    assert sorted(frame.index) == ["u00", "u02", "u03", "u04", "u06", "u07", "u09"]
    assert (frame["Email Marketing Consent"] == "Subscribed").all()
    assert frame.loc["u04", "Email"] == "'=1+2@example.com"
    assert frame.loc["u04", "Last Name"] == "'=hyperlink(1)"
    assert frame.loc["u09", "First Name"] == "'-jo"
    assert frame.loc["u03", "Phone Number"] == "+447911123456"  # SMS consent; a number is not escaped
    assert frame.loc["u00", "Phone Number"] == ""  # no SMS consent
    assert file.warnings == []  # no platform minimum for e-mail lists


def test_mailchimp_file(shop, identities):
    built = build_target_list(shop, "shop", CampaignFilters(seen_within_days=9), identities=identities,
                              holdout_share=0.0, destination="mailchimp")
    frame = _csv(exports.render(built, "mailchimp").data)
    assert list(frame.columns) == list(exports.MAILCHIMP_COLUMNS)
    assert sorted(frame["Email Address"]) == sorted(["'=1+2@example.com", "alice.smith@example.com",
                                                     "carol.x@gmail.com", "dave@example.org", "jo@example.com",
                                                     "gina@example.com", "hank@example.com"])
    assert set(frame["Status"]) == {"subscribed"}


@pytest.mark.parametrize("fmt, n, warned", [("meta", 99, True), ("meta", 100, False), ("google", 5, True),
                                            ("csv", 1, False), ("klaviyo", 1, False)])
def test_small_list_warning(fmt, n, warned):
    assert (exports.small_list_warning(fmt, n) is not None) is warned


def test_format_must_match_the_list_destination(shop):
    built = build_target_list(shop, "shop", CampaignFilters(top_k=3), holdout_share=0.0)
    with pytest.raises(ParameterError, match="built for destination None"):
        exports.render(built, "google")
    with pytest.raises(ParameterError, match="format 'xls' is unknown"):
        exports.render(built, "xls")


def test_export_cli(shop, tmp_path):
    out = tmp_path / "list.csv"
    suppress = tmp_path / "suppress.txt"
    suppress.write_text("u39\n")
    result = exports.export_cli(shop, "shop", segments=[1], top_percent=50, suppress_path=suppress, holdout=0.2,
                                fmt="csv", out=out)
    # segment 1 has 20 shoppers; the top 10 are u21..u39 (odd); u39 suppressed; 9 left, 2 held out
    assert (result["matched"], result["suppressed"], result["holdout"], result["exported"]) == (10, 1, 2, 7)
    data = out.read_bytes()
    assert hashlib.sha256(data).hexdigest() == result["file_sha256"]
    assert len(_csv(data)) == 7
    assert result["expected_buyers"] > 0 and result["identity_problems"] == []
    assert exports.list_exports(shop, "shop")["export_id"].tolist() == [result["export_id"]]


# --- consent basis, small lists, the output path: recorded only what was written --------------------------


def _n_recorded(engine) -> int:
    import sqlalchemy as sa

    from core import store

    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(store.exports)).scalar_one())


def test_consent_column_and_stated_basis_are_recorded(shop):
    consented = read_identities(b"user_id,email,consent_email\nu00,a@example.com,yes\nu01,b@example.com,no\n")
    built = build_target_list(shop, "shop", CampaignFilters(seen_within_days=1), identities=consented,
                              holdout_share=0.0, destination="klaviyo")
    first = exports.save_export(shop, built, "klaviyo")
    basis = "Existing customers, soft opt-in (PECR reg. 22(3))"
    no_column = read_identities(b"user_id,email\nu00,a@example.com\nu01,b@example.com\n")
    built = build_target_list(shop, "shop", CampaignFilters(seen_within_days=1), identities=no_column,
                              holdout_share=0.0, destination="klaviyo", consent_basis=basis)
    second = exports.save_export(shop, built, "klaviyo")
    assert _csv(second["data"])["Email Marketing Consent"].tolist() == ["", ""]  # not "Subscribed": no consent known
    history = exports.list_exports(shop, "shop").set_index("export_id")
    assert history.loc[first["export_id"], "consent_column"] == "consent_email"
    assert pd.isna(history.loc[first["export_id"], "consent_basis"])
    assert (history.loc[first["export_id"], "no_consent"], history.loc[first["export_id"], "exported"]) == (1, 1)
    assert history.loc[second["export_id"], "consent_column"] == "consent_email"
    assert history.loc[second["export_id"], "consent_basis"] == basis
    assert history.loc[second["export_id"], "exported"] == 2


@pytest.mark.parametrize("fmt, filters, n", [("google", CampaignFilters(seen_within_days=9), 7),
                                             ("csv", CampaignFilters(min_spend=1e9), 0)])
def test_small_or_empty_list_needs_confirmation(shop, identities, fmt, filters, n):
    built = build_target_list(shop, "shop", filters, identities=identities, holdout_share=0.0, destination=fmt)
    assert exports.confirmation_needed(fmt, n) is not None
    with pytest.raises(CartsightError, match="Confirm to export it anyway"):
        exports.save_export(shop, built, fmt)
    assert _n_recorded(shop) == 0 and not list(config.exports_dir().glob("*"))
    record = exports.save_export(shop, built, fmt, allow_small=True)
    assert record["counts"]["exported"] == n and _n_recorded(shop) == 1


def test_no_confirmation_for_lists_at_the_platform_minimum():
    assert exports.confirmation_needed("meta", 100) is None
    assert exports.confirmation_needed("klaviyo", 1) is None
    assert "no shoppers" in exports.confirmation_needed("klaviyo", 0)


@pytest.mark.parametrize("out, message", [("missing/dir/x.csv", "does not exist"), (".", "is a folder")])
def test_export_cli_checks_the_output_path_before_recording(shop, tmp_path, out, message):
    target = tmp_path / out
    with pytest.raises(CartsightError, match=message):
        exports.export_cli(shop, "shop", top_percent=50, fmt="csv", out=target)
    assert _n_recorded(shop) == 0
    assert not config.exports_dir().exists() or not any(config.exports_dir().iterdir())


def test_a_failed_write_records_nothing_and_leaves_no_file(shop, tmp_path, monkeypatch):
    def full_disk(data, path):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(exports.safecsv, "write_bytes", full_disk)
    built = build_target_list(shop, "shop", CampaignFilters(top_k=5), holdout_share=0.0)
    with pytest.raises(CartsightError, match="No space left on device"):
        exports.save_export(shop, built, "csv", out=tmp_path / "list.csv")
    assert _n_recorded(shop) == 0
    assert not any(config.exports_dir().iterdir())
    assert not (tmp_path / "list.csv").exists()


def test_export_cli_refuses_before_writing(shop, tmp_path):
    out = tmp_path / "list.csv"
    bad = tmp_path / "suppress.csv"
    bad.write_text("contact,reason\nu39,complaint\n")
    with pytest.raises(SchemaError, match="no user id or e-mail column"):
        exports.export_cli(shop, "shop", top_percent=50, suppress_path=bad, fmt="csv", out=out)
    identities = tmp_path / "ids.csv"
    identities.write_text("user_id,email\nu39,a@example.com\n")
    with pytest.raises(SchemaError, match="no consent_ads column"):
        exports.export_cli(shop, "shop", top_percent=50, identities_path=identities, fmt="meta", out=out)
    assert not out.exists() and _n_recorded(shop) == 0
    result = exports.export_cli(shop, "shop", top_percent=50, identities_path=identities, fmt="meta", out=out,
                                consent_basis="customer contract, Art. 6(1)(b)", allow_small=True, holdout=0.0)
    assert (result["not_in_identities"], result["exported"]) == (19, 1)
    assert result["consent_basis"] == "customer contract, Art. 6(1)(b)" and result["consent_column"] == "consent_ads"
    assert len(_csv(out.read_bytes())) == 1 and _n_recorded(shop) == 1


def test_store_of_schema_2_gains_the_consent_columns(shop):
    import sqlalchemy as sa

    from tests.conftest import NO_OLD_SPARK_STORES, skip_on_spark

    skip_on_spark(shop, NO_OLD_SPARK_STORES)

    from core import store

    built = build_target_list(shop, "shop", CampaignFilters(top_k=3), holdout_share=0.0)
    old = exports.save_export(shop, built, "csv")
    with shop.begin() as conn:  # the export table as schema 2 left it
        conn.exec_driver_sql("ALTER TABLE cs_exports DROP COLUMN consent_basis")
        conn.exec_driver_sql("ALTER TABLE cs_exports DROP COLUMN consent_column")
        conn.execute(sa.update(store.schema_info).values(version=2))
    store.ensure_schema(shop)
    with shop.connect() as conn:
        assert conn.execute(sa.select(store.schema_info.c.version)).scalars().all() == [config.SCHEMA_VERSION]
    history = exports.list_exports(shop, "shop")
    assert history["export_id"].tolist() == [old["export_id"]] and history["consent_basis"].isna().all()
    identities = read_identities(b"user_id,email\nu39,a@example.com\n")
    built = build_target_list(shop, "shop", CampaignFilters(top_k=3), identities=identities, holdout_share=0.0,
                              destination="mailchimp", consent_basis="legitimate interest")
    new = exports.save_export(shop, built, "mailchimp")
    row = exports.list_exports(shop, "shop").set_index("export_id").loc[new["export_id"]]
    assert (row["consent_column"], row["consent_basis"]) == ("consent_email", "legitimate interest")


def test_export_records_the_data_end_as_its_as_of_time(shop):
    """The outcome window of a campaign starts at the data's end when its list was built, not at the wall clock."""
    built = build_target_list(shop, "shop", CampaignFilters(top_k=10), holdout_share=0.2, seed=1)
    assert built.as_of == END
    record = exports.save_export(shop, built, "csv")
    row = exports.list_exports(shop, "shop").set_index("export_id").loc[record["export_id"]]
    assert (row["as_of"], row["as_of_basis"]) == (END, "recorded")


def _as_schema_3(engine) -> None:
    """Turn the store back into what cartsight with schema 3 left: exports without an as-of time."""
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE cs_exports DROP COLUMN as_of")
        conn.exec_driver_sql("ALTER TABLE cs_exports DROP COLUMN as_of_basis")
        conn.execute(sa.update(store.schema_info).values(version=3))


def test_upgrade_gives_older_exports_their_models_or_datasets_end(shop):
    """An export with a model gets the end of the data the model was trained on; one without, the dataset's end."""
    from tests.conftest import NO_OLD_SPARK_STORES, skip_on_spark

    skip_on_spark(shop, NO_OLD_SPARK_STORES)
    with_model = exports.save_export(shop, build_target_list(shop, "shop", CampaignFilters(top_k=10)), "csv")
    trained_end = dt.datetime(2024, 1, 30, 8, 0)
    with shop.begin() as conn:
        conn.execute(sa.update(store.models).values(metrics_json=json.dumps(
            {"data_window": ["2023-12-01T00:00:00", trained_end.isoformat()]})))
    without = exports.save_export(shop, build_target_list(shop, "shop", CampaignFilters(min_spend=100)), "csv")
    with shop.begin() as conn:  # a list built from behaviour only
        conn.execute(sa.update(store.exports).where(store.exports.c.export_id == without["export_id"])
                     .values(model_version=None))
    _as_schema_3(shop)
    store.ensure_schema(shop)
    rows = exports.list_exports(shop, "shop").set_index("export_id")
    assert (rows.loc[with_model["export_id"], "as_of"], rows.loc[with_model["export_id"], "as_of_basis"]) == (
        trained_end, "model")
    assert (rows.loc[without["export_id"], "as_of"], rows.loc[without["export_id"], "as_of_basis"]) == (
        END, "dataset")
    with shop.connect() as conn:
        assert conn.execute(sa.select(store.schema_info.c.version)).scalar_one() == config.SCHEMA_VERSION
