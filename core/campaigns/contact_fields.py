"""Contact fields of identity and suppression files: their columns and header names, normalisation and
SHA-256 hashing, as the ad platforms match on them (:mod:`core.campaigns.identities` reads the files).

Normalisation follows the platforms' documentation:

- e-mail: trimmed and lower-cased (Google Ads "Format your customer data file",
  support.google.com/google-ads/answer/7659867, and Meta's Custom Audience hashing rules);
  for Google only, the periods before ``@`` are removed for ``gmail.com`` and ``googlemail.com``
  addresses (Google's normalisation rule for hashed e-mails, e.g. Campaign Manager 360
  enhanced conversions, developers.google.com/doubleclick-advertisers/guides/conversions_ec:
  "remove all periods (.) that precede the domain name in gmail.com and googlemail.com
  e-mail addresses"). Google's documents do not say to drop a ``+suffix``, so it is kept.
- phone: E.164 (``+`` and digits) with Google's libphonenumber (``phonenumbers``), the row's
  country as the default region for numbers written locally.
- names: trimmed, lower-cased, inner runs of spaces collapsed; country: ISO 3166-1 alpha-2;
  postal code: trimmed.
"""
from __future__ import annotations

import hashlib
import re

from core.errors import SchemaError

IDENTITY_COLUMNS = ("user_id", "email", "phone", "first_name", "last_name", "country", "postal_code",
                    "consent_email", "consent_sms", "consent_ads")
CONSENT_COLUMNS = ("consent_email", "consent_sms", "consent_ads")
#: Header names (as :func:`header_key` reduces them) read as each identity column, besides its own name.
COLUMN_SYNONYMS = {
    "user_id": ("userid", "user", "customerid", "customer", "customernumber", "customerno", "clientid",
                "shopperid", "memberid", "visitorid", "externalid"),
    "email": ("email", "emailaddress", "mail", "mailaddress", "emailadresse"),
    "phone": ("phone", "phonenumber", "mobile", "mobilephone", "mobilenumber", "cell", "cellphone", "telephone",
              "tel", "smsnumber"),
    "first_name": ("firstname", "givenname", "forename", "fname", "fn"),
    "last_name": ("lastname", "surname", "familyname", "lname", "ln"),
    "country": ("country", "countrycode", "defaultaddresscountrycode"),
    "postal_code": ("postalcode", "postcode", "zip", "zipcode", "plz", "defaultaddresszip"),
    "consent_email": ("emailconsent", "acceptsemailmarketing", "acceptsmarketing", "emailmarketingconsent",
                      "emailoptin", "emailsubscribed", "emailmarketing"),
    "consent_sms": ("smsconsent", "acceptssmsmarketing", "smsmarketingconsent", "smsoptin", "smssubscribed",
                    "smsmarketing"),
    "consent_ads": ("adsconsent", "adconsent", "consentad", "advertisingconsent", "consentadvertising", "adsoptin",
                    "acceptsadvertising"),
}
#: Consent cells (as :func:`consent_key` reduces them) that mean yes and no.
TRUE_VALUES = frozenset({"yes", "y", "true", "t", "1", "on", "subscribed", "optedin", "optin", "granted",
                         "consented", "accepted"})
FALSE_VALUES = frozenset({"no", "n", "false", "f", "0", "off", "unsubscribed", "neversubscribed", "notsubscribed",
                          "nonsubscribed", "optedout", "optout", "denied", "declined", "withdrawn", "revoked",
                          "pending", "cleaned", "transactional", "archived"})
GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
#: a whole number as a spreadsheet saves a number column: 510791900.0
_FLOAT_WHOLE = re.compile(r"(\d+)\.0+")
_SPACES = re.compile(r"\s+")
_NOT_WORD = re.compile(r"[\W_]+")
_SYNONYM_INDEX = {key: column for column, keys in COLUMN_SYNONYMS.items()
                  for key in (*keys, column.replace("_", ""))}


def user_id_key(value: str) -> str:
    """What a user id is matched on: itself, or a whole number a spreadsheet wrote as a float (``510791900.0``)
    without its ``.0``, so that it meets the shopper ``510791900`` whichever side the spreadsheet touched."""
    whole = _FLOAT_WHOLE.fullmatch(value)
    return whole.group(1) if whole else value


def sha256_hex(value: str) -> str:
    """Lower-case hex SHA-256 of the UTF-8 bytes of ``value`` (no salt), as the ad platforms expect."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def normalise_email(value: str) -> str:
    """Trimmed and lower-cased e-mail; raises ``SchemaError`` (column ``email``) when it is not an address."""
    from email_validator import EmailNotValidError, validate_email

    text = str(value).strip().lower()
    try:
        validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise SchemaError(f"email {value!r} is not an e-mail address: {exc}", column="email", cases=[value],
                          reason="bad_value") from exc
    return text


def google_email(normalised: str) -> str:
    """Google's form of a normalised e-mail: periods before ``@`` removed for gmail.com / googlemail.com only."""
    local, _, domain = normalised.rpartition("@")
    if domain in GMAIL_DOMAINS:
        local = local.replace(".", "")
    return f"{local}@{domain}"


def email_match_key(value: str) -> str:
    """Key used to match a suppression e-mail to a shopper's e-mail.

    Trimmed and lower-cased; for gmail.com / googlemail.com also without periods and
    ``+suffix`` in the local part and with the domain unified, because those all reach the
    same inbox: suppression errs toward removing, never toward contacting.
    """
    text = str(value).strip().lower()
    local, _, domain = text.rpartition("@")
    if domain in GMAIL_DOMAINS:
        local = local.split("+", 1)[0].replace(".", "")
        domain = "gmail.com"
    return f"{local}@{domain}"


def normalise_country(value: str) -> str:
    """ISO 3166-1 alpha-2 code, upper-case; raises ``SchemaError`` (column ``country``) for an unknown code."""
    import phonenumbers

    code = str(value).strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise SchemaError(f"country {value!r} is not an ISO 3166-1 alpha-2 code (expected e.g. GB, US, DE)",
                          column="country", cases=[value], reason="bad_value")
    return code


def normalise_phone(value: str, country: str | None = None) -> str:
    """E.164 form (``+442079460958``) of a phone number; a local number needs ``country`` (ISO-2).

    Raises ``SchemaError`` (column ``phone``) when the number cannot be parsed or is not a
    valid number for its region.
    """
    import phonenumbers

    text = str(value).strip()
    try:
        number = phonenumbers.parse(text, country or None)
    except phonenumbers.NumberParseException as exc:
        hint = "" if country or text.startswith("+") else " (a local number needs the row's country)"
        raise SchemaError(f"phone {value!r} cannot be read as a phone number{hint}: {exc}",
                          column="phone", cases=[value], reason="bad_value") from exc
    if not phonenumbers.is_valid_number(number):
        region = phonenumbers.region_code_for_country_code(number.country_code)
        result = phonenumbers.ValidationResult
        why = {result.INVALID_COUNTRY_CODE: "its country code is unknown", result.TOO_SHORT: "too few digits",
               result.TOO_LONG: "too many digits", result.INVALID_LENGTH: "no number there has that many digits",
               result.IS_POSSIBLE_LOCAL_ONLY: "it has the length of a local number only",
               }.get(phonenumbers.is_possible_number_with_reason(number),
                     "its length fits, but no numbers are issued in that range")
        raise SchemaError(f"phone {value!r} is not a valid number for region {region} (+{number.country_code}): "
                          f"{why}", column="phone", cases=[value], reason="bad_value")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_name(value: str) -> str:
    """Name trimmed, lower-cased, inner runs of white space made one space."""
    return _SPACES.sub(" ", str(value).strip().lower())


def header_key(name: str) -> str:
    """A header name lower-cased with everything but letters and digits dropped (``E-mail`` → ``email``)."""
    return _NOT_WORD.sub("", str(name).lstrip("\ufeff").lower())


def consent_key(value: str) -> str:
    """A consent cell lower-cased and trimmed; a word also without inner spaces, ``_`` and ``-`` (``opted_in``)."""
    text = str(value).strip().lower()
    return _NOT_WORD.sub("", text) if any(ch.isalpha() for ch in text) else text


def parse_consent(value: str, column: str = "consent") -> bool:
    """True/False from a consent cell (:data:`TRUE_VALUES`, :data:`FALSE_VALUES`, any case); ``SchemaError`` otherwise."""
    key = consent_key(value)
    if key in TRUE_VALUES:
        return True
    if key in FALSE_VALUES:
        return False
    raise SchemaError(f"{column} {value!r} is not a consent value (expected yes/no, true/false, 1/0, y/n, "
                      "subscribed/unsubscribed, opted in/out, granted/denied)", column=column, cases=[value],
                      reason="bad_value")


def match_columns(header: list[str]) -> tuple[dict[str, int], tuple[str, ...]]:
    """The identity columns a header names (:data:`COLUMN_SYNONYMS`): {column: position}, and the names not used.

    Raises ``SchemaError`` when two header cells read as the same column (both are named).
    """
    found: dict[str, int] = {}
    ignored = []
    for position, name in enumerate(header):
        column = _SYNONYM_INDEX.get(header_key(name))
        if column is None:
            if name.strip():
                ignored.append(name.strip())
        elif column in found:
            first = header[found[column]]
            raise SchemaError(f"columns {first!r} and {name!r} both read as {column}: keep one of them or rename "
                              "the other", column=column, cases=[first, name], reason="ambiguous_column")
        else:
            found[column] = position
    return found, tuple(ignored)


def accepted_names(column: str) -> str:
    """The header names read as ``column`` (compared without case, spaces or punctuation), for messages."""
    return ", ".join(dict.fromkeys([column, *COLUMN_SYNONYMS.get(column, ())]))
