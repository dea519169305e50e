"""Identity and suppression files: normalisation and hashing against known vectors, row-level validation."""
from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from core.campaigns import identities
from core.campaigns import contact_fields
from core.errors import SchemaError
from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "campaigns"
TEST_EMAIL_SHA256 = "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"


def test_sha256_known_vector():
    assert hashlib.sha256(b"test@example.com").hexdigest() == TEST_EMAIL_SHA256
    assert contact_fields.sha256_hex("test@example.com") == TEST_EMAIL_SHA256


def test_email_with_spaces_and_capitals_hashes_like_the_clean_one():
    assert identities.normalise_email("  Test@Example.COM \t") == "test@example.com"
    assert contact_fields.sha256_hex(identities.normalise_email(" TEST@example.com ")) == TEST_EMAIL_SHA256


@pytest.mark.parametrize("raw, google", [
    ("jane.doe@gmail.com", "janedoe@gmail.com"),
    ("j.a.n.e@googlemail.com", "jane@googlemail.com"),
    ("jane.doe+news@gmail.com", "janedoe+news@gmail.com"),  # Google's rule drops periods only
    ("jane.doe@example.com", "jane.doe@example.com"),     # other domains keep their periods
])
def test_google_email_rule(raw, google):
    assert contact_fields.google_email(raw) == google


@pytest.mark.parametrize("raw, key", [
    (" Jane.Doe+promo@GoogleMail.com", "janedoe@gmail.com"),
    ("jane.doe+promo@example.com", "jane.doe+promo@example.com"),
])
def test_email_match_key(raw, key):
    assert identities.email_match_key(raw) == key


@pytest.mark.parametrize("raw, country, e164", [
    ("020 7946 0958", "GB", "+442079460958"),
    ("(020) 7946-0958", "gb", "+442079460958"),
    ("+1 650-253-0000", None, "+16502530000"),
    ("+44 20 7946 0958", "US", "+442079460958"),  # an international number ignores the row's country
    ("030 1234567", "DE", "+49301234567"),
])
def test_phone_to_e164(raw, country, e164):
    assert identities.normalise_phone(raw, country.upper() if country else None) == e164


def test_phone_hash_vector():
    assert contact_fields.sha256_hex(identities.normalise_phone("020 7946 0958", "GB")) == hashlib.sha256(b"+442079460958").hexdigest()


@pytest.mark.parametrize("raw, country, message", [
    ("020 7946 0958", None, "needs the row's country"),
    ("12", "FR", "not a valid number for region FR"),
    ("call me", "GB", "cannot be read"),
])
def test_bad_phone_is_explained(raw, country, message):
    with pytest.raises(SchemaError, match=message) as err:
        identities.normalise_phone(raw, country)
    assert err.value.column == "phone"


def test_names_and_country():
    assert identities.normalise_name("  Mary   Ann ") == "mary ann"
    assert identities.normalise_country(" gb") == "GB"
    with pytest.raises(SchemaError, match="'XX' is not an ISO 3166-1 alpha-2"):
        identities.normalise_country("XX")


def test_identity_file_is_validated_row_by_row():
    table = identities.read_identities(FIXTURES / "identities.csv")
    assert table.n_rows == 12
    # a bad field costs the row only that field: u05-u08 are kept
    assert table.frame["user_id"].tolist() == [f"u0{i}" for i in range(10)]
    frame = table.frame.set_index("user_id")
    alice = frame.loc["u00"]
    assert alice["email"] == "alice.smith@example.com"
    assert alice["phone"] == "+442079460958"
    assert (alice["first_name"], alice["country"], alice["postal_code"]) == ("alice", "GB", "SW1A 1AA")
    assert (alice["consent_email"], alice["consent_sms"], alice["consent_ads"]) == (True, False, True)
    assert frame.loc["u03", "phone"] == "+447911123456"
    assert pd.isna(frame.loc["u05", "email"]) and frame.loc["u05", "consent_ads"]  # bad e-mail blanked, rest kept
    assert pd.isna(frame.loc["u06", "phone"]) and frame.loc["u06", "email"] == "gina@example.com"
    assert pd.isna(frame.loc["u07", "country"]) and frame.loc["u07", "postal_code"] == "00000"
    assert not frame.loc["u08", "consent_email"] and frame.loc["u08", "consent_ads"]  # "maybe" is no consent
    report = table.report()
    assert report[["line", "column", "outcome"]].values.tolist() == [
        [7, "email", identities.FIELD_BLANKED], [8, "phone", identities.FIELD_BLANKED], [9, "country", identities.FIELD_BLANKED],
        [10, "consent_email", identities.NO_CONSENT_ASSUMED], [11, "user_id", identities.ROW_LEFT_OUT],
        [12, "user_id", identities.ROW_LEFT_OUT]]
    assert "not-an-email" in report.loc[0, "reason"]
    assert report.loc[5, "reason"] == "user_id repeated (first row kept)"
    assert (table.n_left_out, table.n_fields_blanked) == (2, 4)
    assert table.n_valid + table.n_left_out == table.n_rows


def test_bad_phone_keeps_the_rows_email_and_consent():
    rows = ["user_id,email,phone,consent_email"] + [f"u{i},p{i}@example.com,+44 7911 {100000 + i},yes" for i in range(399)]
    rows.append("u399,last@example.com,+49 151 2345678,yes")
    table = identities.read_identities("\n".join(rows).encode())
    assert (table.n_rows, table.n_valid, table.n_left_out, table.n_fields_blanked) == (400, 400, 0, 1)
    last = table.frame.set_index("user_id").loc["u399"]
    assert last["email"] == "last@example.com" and last["consent_email"] and pd.isna(last["phone"])
    [problem] = table.problems
    assert (problem.line, problem.column, problem.value) == (401, "phone", "+49 151 2345678")
    assert problem.reason == ("phone '+49 151 2345678' is not a valid number for region DE (+49): its length fits, "
                              "but no numbers are issued in that range")


def test_identity_file_with_excels_delimiter_line():
    table = identities.read_identities(b"sep=;\nCustomer ID;Email\nu1;A@example.com\n")
    assert table.frame.to_dict("records") == [{"user_id": "u1", "email": "a@example.com"}]


def test_identity_file_with_a_subset_of_columns():
    table = identities.read_identities(b"USER_ID,Email\nu1,A@B.COM\nu2,\n")
    assert table.columns == ("user_id", "email")
    assert table.frame["email"].iloc[0] == "a@b.com"
    assert table.frame["email"].isna().iloc[1]  # a blank cell is "no e-mail", not a bad row
    assert table.problems == []


SHOPIFY = ("Customer ID,First Name,Last Name,Email,Accepts Email Marketing,Default Address Company,"
           "Default Address Address1,Default Address City,Default Address Province Code,Default Address Country Code,"
           "Default Address Zip,Default Address Phone,Phone,Accepts SMS Marketing,Total Spent,Total Orders,Tags\n"
           "'5792498270270,Ann,Lee,Ann@Example.com,yes,,1 High St,London,,GB,SW1A 1AA,,'+447911123456,no,10.00,1,vip\n"
           "'5792498270271,Bo,Ng,bo@example.com,no,,2 Low St,Leeds,,GB,LS1 1AA,,,yes,0.00,0,\n")
KLAVIYO = ("Email,Phone Number,First Name,Last Name,Country,Zip Code,Email Marketing Consent,SMS Consent,External ID\n"
           "ann@example.com,+447911123456,Ann,Lee,GB,SW1A 1AA,SUBSCRIBED,NEVER_SUBSCRIBED,5792498270270\n"
           "bo@example.com,,Bo,Ng,GB,LS1 1AA,UNSUBSCRIBED,SUBSCRIBED,5792498270271\n")
MAILCHIMP = ("Email Address,First Name,Last Name,Phone Number,userid,email_consent,MEMBER_RATING,OPTIN_TIME\n"
             "ann@example.com,Ann,Lee,+447911123456,5792498270270,subscribed,2,2024-01-01 10:00:00\n"
             "bo@example.com,Bo,Ng,,5792498270271,pending,1,\n")


@pytest.mark.parametrize("text, ignored", [
    (SHOPIFY, ("Default Address Company", "Default Address Address1", "Default Address City",
               "Default Address Province Code", "Default Address Phone", "Total Spent", "Total Orders", "Tags")),
    (KLAVIYO, ()), (MAILCHIMP, ("MEMBER_RATING", "OPTIN_TIME"))])
@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_identity_exports_of_real_tools_are_read(text, ignored, delimiter, encoding):
    data = text.replace(",", delimiter).encode(encoding)
    table = identities.read_identities(data)
    frame = table.frame.set_index("user_id")
    assert list(frame.index) == ["5792498270270", "5792498270271"]
    assert frame.loc["5792498270270", "email"] == "ann@example.com"
    assert frame.loc["5792498270270", "phone"] == "+447911123456"
    assert frame["consent_email"].tolist() == [True, False]
    assert frame.loc["5792498270270", "first_name"] == "ann"
    assert table.problems == [] and table.ignored == ignored
    if "consent_sms" in frame:
        assert frame["consent_sms"].tolist() == [False, True]


@pytest.mark.parametrize("raw, value", [("yes", True), ("Y", True), ("TRUE", True), ("1", True), (" t ", True),
                                        ("Subscribed", True), ("opted_in", True), ("Opt-In", True), ("granted", True),
                                        ("no", False), ("n", False), ("False", False), ("0", False),
                                        ("unsubscribed", False), ("NEVER_SUBSCRIBED", False), ("pending", False),
                                        ("cleaned", False), ("opted out", False), ("denied", False)])
def test_consent_values(raw, value):
    assert identities.parse_consent(raw) is value


@pytest.mark.parametrize("raw", ["maybe", "-1", "2", "yes please"])
def test_unknown_consent_value_is_refused(raw):
    with pytest.raises(SchemaError, match="is not a consent value"):
        identities.parse_consent(raw, "consent_ads")


def test_unknown_columns_are_ignored_and_listed():
    table = identities.read_identities(b"user_id,mobile,newsletter_optin\nu1,+44 7911 123456,yes\n")
    assert table.columns == ("user_id", "phone")
    assert table.ignored == ("newsletter_optin",)
    assert table.source_names == {"user_id": "user_id", "phone": "mobile"}


@pytest.mark.parametrize("data, message", [
    (b"id,email\n1,a@b.com\n", "no 'user_id' column. Columns in the file: ['id', 'email']"),
    (b"user_id,Email,Email Address\n1,a@b.com,c@d.com\n", "columns 'Email' and 'Email Address' both read as email"),
    (b"user_id,email\n", "no data rows"),
])
def test_bad_identity_file(data, message):
    with pytest.raises(SchemaError, match=message.replace("[", r"\[").replace("]", r"\]")):
        identities.read_identities(data)


def test_suppression_one_per_line():
    s = identities.read_suppression(FIXTURES / "suppress.txt")
    assert s.user_ids == {"u03"}
    assert s.emails == {"persontwo@gmail.com"}
    assert [(p.line, p.column) for p in s.problems] == [(4, "email")]
    assert s.n_rows == 3


def test_a_repeated_shopper_keeps_consent_only_where_every_row_says_yes():
    table = identities.read_identities(b"user_id,email,consent_email,consent_ads\nu1,a@example.com,yes,yes\n"
                                b"u1,a@example.com,unsubscribed,yes\nu1,,,maybe\nu2,b@example.com,yes,no\n"
                                b"u2,b@example.com,yes,yes\n")
    frame = table.frame.set_index("user_id")
    assert frame.loc["u1", ["consent_email", "consent_ads"]].tolist() == [False, False]
    assert frame.loc["u2", ["consent_email", "consent_ads"]].tolist() == [True, False]  # a later yes adds nothing
    assert [p.reason for p in table.problems] == [
        "user_id repeated (first row kept; its consent_email withdrawn: every row of a shopper must say yes)",
        "user_id repeated (first row kept; its consent_ads withdrawn: every row of a shopper must say yes)",
        "user_id repeated (first row kept)"]


def test_plain_suppression_list_with_quoted_values():
    s = identities.read_suppression(b'"u03"\n"Jane.Doe@Example.com"\n')
    assert s.user_ids == {"u03"} and s.emails == {"jane.doe@example.com"}


def test_suppression_csv_with_columns():
    s = identities.read_suppression(FIXTURES / "suppress.csv")
    assert s.user_ids == {"u03"} and s.emails == {"bob@example.com"}
    assert s.problems == []


@pytest.mark.parametrize("data, user_ids, emails", [
    # a header with a reason column: the ids, not "0,unsubscribed" as one value
    (b"customer_id,reason\n0,unsubscribed\n7,complaint\n", {"0", "7"}, set()),
    (b"Email Address\nAnn@Example.com\nbo@example.com\n", set(), {"ann@example.com", "bo@example.com"}),  # Mailchimp
    (b"customer_id;email;reason\nu1;x@example.com;bounced\nu2;;unsubscribed\n", {"u1", "u2"}, {"x@example.com"}),
    (b"\xef\xbb\xbfCustomer ID\tE-mail\n'42\tZ@example.com\n", {"42"}, {"z@example.com"}),
    (b"USERID|Email\nq1|w@example.com\n", {"q1"}, {"w@example.com"}),
    ("Email,Unsubscribe reason\nann@example.com,no longer interested\n".encode("utf-16"), set(), {"ann@example.com"}),
    (b"sep=;\r\ncustomer_id;reason\r\nu9;bounced\r\n", {"u9"}, set()),  # Excel's delimiter hint line
])
def test_suppression_headers_and_delimiters_of_real_tools(data, user_ids, emails):
    s = identities.read_suppression(data)
    assert s.user_ids == user_ids and s.emails == emails
    assert s.problems == []


@pytest.mark.parametrize("data, message", [
    (b"\n\n", "suppression file is empty"),
    (b"contact,reason\nu01,complaint\n", "has no user id or e-mail column. Columns in the file: ['contact', 'reason']"),
    (b"phone\n+447911123456\n", "has no user id or e-mail column. Columns in the file: ['phone']"),
    (b"user_id;email\n", "has a header"),
    (b"email\nnot-an-address\n", "not one usable user id or e-mail"),
    (b"Email;Email Address\na@b.com;c@d.com\n", "both read as email"),
    # a title line above the table: read as a plain list, "0,unsubscribed" would suppress no one
    (b"Unsubscribed customers\ncustomer_id,reason\n0,unsubscribed\n", "line 2 holds several cells"),
])
def test_unreadable_suppression_file_is_refused(data, message):
    with pytest.raises(SchemaError, match=message.replace("[", r"\[").replace("]", r"\]")):
        identities.read_suppression(data)


@pytest.mark.parametrize("data, user_ids, emails, scanned", [
    # a display name, a mailto: link, Excel's ="…" text formula around an id
    (b"Email\nAnn Lee <Ann@Example.com>\nmailto:bo@example.com\n", set(), {"ann@example.com", "bo@example.com"}, 0),
    (b'user_id,reason\n="00042",bounced\n', {"00042"}, set(), 0),
    # a name with an unquoted comma shifts the e-mail one cell right: it is still found, and the row reported
    (b"Name,Email\nDoe, John,john@example.com\nAnn,ann@example.com\n", set(),
     {"john@example.com", "ann@example.com"}, 1),
    # a UTF-8 byte-order mark before Windows-1252 text
    (b"\xef\xbb\xbfEmail;Reason\nann@example.com;caf\xe9 closed\n", set(), {"ann@example.com"}, 0),
])
def test_suppression_errs_toward_suppressing(data, user_ids, emails, scanned):
    s = identities.read_suppression(data)
    assert (s.user_ids, s.emails) == (user_ids, emails)
    assert sum(p.outcome == identities.ROW_SCANNED for p in s.problems) == scanned


def test_repeated_shopper_keeps_the_other_rows_emails_for_suppression():
    t = identities.read_identities(b"user_id,email\nu1,Old@example.com\nu1,new@example.com\nu1,old@example.com\nu2,x@y.com\n")
    assert t.frame["email"].tolist() == ["old@example.com", "x@y.com"]
    assert t.repeat_emails == {"u1": frozenset({"new@example.com"})}


def test_identity_rows_without_the_trailing_empty_columns_are_kept():
    t = identities.read_identities(b'"User_ID","Email",,\nu1,a@example.com,,\nu2,b@example.com\nu3,c@example.com,,,\n'
                            b'u4,d@example.com,,,x\n="007",e@example.com,,\n')
    assert t.frame["user_id"].tolist() == ["u1", "u2", "u3", "007"]
    # a cell past the header that holds something may be a shifted row: left out, with the reason
    assert [(p.line, p.reason) for p in t.problems] == [(5, "5 cells, the header has 4")]


def test_an_id_a_spreadsheet_wrote_as_a_float_matches_its_shopper_and_is_noted():
    s = identities.read_suppression(b"customer_id,reason\n510791900.0,unsubscribed\nu7.0,bounced\n0042.00,complaint\n")
    assert s.user_ids == {"510791900", "u7.0", "0042"}
    assert [(p.line, p.value, p.outcome) for p in s.problems] == [
        (2, "510791900.0", identities.ID_READ_AS_WHOLE), (4, "0042.00", identities.ID_READ_AS_WHOLE)]
    assert s.problems[0].reason == ("user_id '510791900.0' is a whole number written as a float by a spreadsheet: "
                                    "matched as '510791900'")
    assert s.n_left_out == 0
    assert identities.read_suppression(b"510791900.0\n").user_ids == {"510791900"}
    t = identities.read_identities(b"user_id,email\n510791900.0,a@example.com\n510791900,b@example.com\n")
    assert t.frame["user_id"].tolist() == ["510791900"]  # one shopper: the second row is a repeat of it
    assert [(p.line, p.outcome) for p in t.problems] == [(2, identities.ID_READ_AS_WHOLE), (3, identities.ROW_LEFT_OUT)]
    assert (t.n_left_out, t.n_fields_blanked) == (1, 0)


@pytest.mark.parametrize("data, line", [
    (b"customer_id,reason\n510791900,unsubscribed\n5.11251202E+08,bounced\n", 3),
    (b"u1\n5.11251E+08\n", 2), (b"Email;External ID\na@example.com;5E+08\n", 2)])
def test_a_suppression_id_in_scientific_notation_refuses_the_list(data, line):
    """Its last digits are lost: the shopper it meant cannot be known, and the export must not go out without them."""
    with pytest.raises(SchemaError, match=rf"suppression file line {line}: user_id '[0-9.E+]+' is in scientific "
                       r"notation: .* format the column as text in the spreadsheet and save again") as err:
        identities.read_suppression(data)
    assert err.value.column == "user_id"


def test_an_identity_row_whose_id_is_in_scientific_notation_is_left_out():
    t = identities.read_identities(b"user_id,email,consent_email\n5.11251202E+08,a@example.com,yes\n"
                            b"511251202,b@example.com,yes\n")
    assert t.frame["user_id"].tolist() == ["511251202"]  # never matched to a shopper, the right one or another
    assert [(p.line, p.column, p.value, p.outcome) for p in t.problems] == [
        (2, "user_id", "5.11251202E+08", identities.ROW_LEFT_OUT)]
    assert "format the column as text in the spreadsheet and save again" in t.problems[0].reason
