"""Identity and suppression files: normalisation and hashing against known vectors, row-level validation."""
from __future__ import annotations

import hashlib

import pytest

from core import identities as ids
from core.errors import SchemaError
from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "campaigns"
TEST_EMAIL_SHA256 = "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"


def test_sha256_known_vector():
    assert hashlib.sha256(b"test@example.com").hexdigest() == TEST_EMAIL_SHA256
    assert ids.sha256_hex("test@example.com") == TEST_EMAIL_SHA256


def test_email_with_spaces_and_capitals_hashes_like_the_clean_one():
    assert ids.normalise_email("  Test@Example.COM \t") == "test@example.com"
    assert ids.sha256_hex(ids.normalise_email(" TEST@example.com ")) == TEST_EMAIL_SHA256


@pytest.mark.parametrize("raw, google", [
    ("jane.doe@gmail.com", "janedoe@gmail.com"),
    ("j.a.n.e@googlemail.com", "jane@googlemail.com"),
    ("jane.doe+news@gmail.com", "janedoe+news@gmail.com"),  # Google's rule drops periods only
    ("jane.doe@example.com", "jane.doe@example.com"),     # other domains keep their periods
])
def test_google_email_rule(raw, google):
    assert ids.google_email(raw) == google


@pytest.mark.parametrize("raw, key", [
    (" Jane.Doe+promo@GoogleMail.com", "janedoe@gmail.com"),
    ("jane.doe+promo@example.com", "jane.doe+promo@example.com"),
])
def test_email_match_key(raw, key):
    assert ids.email_match_key(raw) == key


@pytest.mark.parametrize("raw, country, e164", [
    ("020 7946 0958", "GB", "+442079460958"),
    ("(020) 7946-0958", "gb", "+442079460958"),
    ("+1 650-253-0000", None, "+16502530000"),
    ("+44 20 7946 0958", "US", "+442079460958"),  # an international number ignores the row's country
    ("030 1234567", "DE", "+49301234567"),
])
def test_phone_to_e164(raw, country, e164):
    assert ids.normalise_phone(raw, country.upper() if country else None) == e164


def test_phone_hash_vector():
    assert ids.sha256_hex(ids.normalise_phone("020 7946 0958", "GB")) == hashlib.sha256(b"+442079460958").hexdigest()


@pytest.mark.parametrize("raw, country, message", [
    ("020 7946 0958", None, "needs the row's country"),
    ("12", "FR", "not a valid number for region FR"),
    ("call me", "GB", "cannot be read"),
])
def test_bad_phone_is_explained(raw, country, message):
    with pytest.raises(SchemaError, match=message) as err:
        ids.normalise_phone(raw, country)
    assert err.value.column == "phone"


@pytest.mark.parametrize("raw, value", [("yes", True), ("Y", True), ("TRUE", True), ("1", True), (" t ", True),
                                        ("no", False), ("n", False), ("False", False), ("0", False)])
def test_consent_values(raw, value):
    assert ids.parse_consent(raw) is value


def test_names_and_country():
    assert ids.normalise_name("  Mary   Ann ") == "mary ann"
    assert ids.normalise_country(" gb") == "GB"
    with pytest.raises(SchemaError, match="'XX' is not an ISO 3166-1 alpha-2"):
        ids.normalise_country("XX")


def test_identity_file_is_validated_row_by_row():
    table = ids.read_identities(FIXTURES / "identities.csv")
    assert table.n_rows == 12
    assert table.frame["user_id"].tolist() == ["u00", "u01", "u02", "u03", "u04", "u09"]
    alice = table.frame.iloc[0]
    assert alice["email"] == "alice.smith@example.com"
    assert alice["phone"] == "+442079460958"
    assert (alice["first_name"], alice["country"], alice["postal_code"]) == ("alice", "GB", "SW1A 1AA")
    assert (alice["consent_email"], alice["consent_sms"], alice["consent_ads"]) == (True, False, True)
    assert table.frame.set_index("user_id").loc["u03", "phone"] == "+447911123456"
    report = table.report()
    assert report[["line", "column"]].values.tolist() == [
        [7, "email"], [8, "phone"], [9, "country"], [10, "consent_email"], [11, "user_id"], [12, "user_id"]]
    assert "not-an-email" in report.loc[0, "reason"]
    assert report.loc[5, "reason"] == "user_id repeated (first row kept)"
    assert table.n_valid + len(table.problems) == table.n_rows


def test_identity_file_with_a_subset_of_columns():
    table = ids.read_identities(b"USER_ID,Email\nu1,A@B.COM\nu2,\n")
    assert table.columns == ("user_id", "email")
    assert table.frame["email"].iloc[0] == "a@b.com"
    assert table.frame["email"].isna().iloc[1]  # a blank cell is "no e-mail", not a bad row
    assert table.problems == []


@pytest.mark.parametrize("data, message", [
    (b"id,email\n1,a@b.com\n", "no 'user_id' column. Columns in the file: ['id', 'email']"),
    (b"user_id,mobile\n1,123\n", "unknown columns ['mobile']"),
    (b"user_id,email\n", "no data rows"),
])
def test_bad_identity_file(data, message):
    with pytest.raises(SchemaError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ids.read_identities(data)


def test_suppression_one_per_line():
    s = ids.read_suppression(FIXTURES / "suppress.txt")
    assert s.user_ids == {"u03"}
    assert s.emails == {"persontwo@gmail.com"}
    assert [(p.line, p.column) for p in s.problems] == [(4, "email")]
    assert s.n_rows == 3


def test_suppression_csv_with_columns():
    s = ids.read_suppression(FIXTURES / "suppress.csv")
    assert s.user_ids == {"u03"} and s.emails == {"bob@example.com"}
    assert s.problems == []


def test_empty_suppression_file():
    with pytest.raises(SchemaError, match="suppression file is empty"):
        ids.read_suppression(b"\n\n")
