"""Vectorized standardizers: raw text columns in, one spelling per value plus flags out.

Pure functions on pandas Series (no I/O, no clock). Each returns Series aligned to the
input index. Conventions shared by all of them:

- Missing or blank input stays missing, and its flag says "nothing wrong" (True for
  `valid`/`known`/`parsed`, missing for reason flags): whether a value is required is
  the contract's business, not the standardizer's.
- A value that cannot be standardized is flagged, never guessed. Codes and free text
  (country, currency, email, postal code) keep the raw or cleaned value; values that
  change type or form (phone E.164, timestamps, amounts) become missing and the caller
  keeps the raw column.
- Text outputs use pandas' `str` dtype (Arrow-backed, NaN for missing).
"""

from .country import standardize_country
from .email import standardize_email
from .money import flag_negative, parse_decimal, standardize_currency
from .names import standardize_address_line, standardize_city, standardize_name, standardize_postal_code
from .phone import standardize_phone
from .text import clean_text, flag_suspicious_text
from .timestamps import flag_out_of_range, parse_dates, parse_timestamps

__all__ = [
    "clean_text",
    "flag_negative",
    "flag_out_of_range",
    "flag_suspicious_text",
    "parse_dates",
    "parse_decimal",
    "parse_timestamps",
    "standardize_address_line",
    "standardize_city",
    "standardize_country",
    "standardize_currency",
    "standardize_email",
    "standardize_name",
    "standardize_phone",
    "standardize_postal_code",
]
