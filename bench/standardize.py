"""Throughput of the quality standardizers on a million rows of messy, realistic values.

Usage: PYTHONPATH=. python bench/standardize.py [--rows 1000000] [--seed 7]

Prints per standardizer: wall seconds, CPU seconds, rows/s (wall) and rows/s per core
(rows / CPU seconds), then the total and the peak memory. Arrow is pinned to one
thread, so CPU time is one core's work. The target is >= 500,000 rows/s per core.
"""

from __future__ import annotations

import argparse
import re
import resource
import time
import unicodedata
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crm_pipeline.quality.standardize import (
    flag_negative,
    flag_out_of_range,
    flag_suspicious_text,
    parse_dates,
    parse_decimal,
    parse_timestamps,
    standardize_address_line,
    standardize_city,
    standardize_country,
    standardize_currency,
    standardize_email,
    standardize_name,
    standardize_phone,
    standardize_postal_code,
)

# Where the synthetic customers live, with the spellings people type for each country.
COUNTRIES = {
    "US": (0.86, ["US", "USA", "United States", "United States of America", "u.s.", "U.S.A.", "america", "us"]),
    "CA": (0.05, ["CA", "Canada", "CAN", "canada"]),
    "GB": (0.04, ["UK", "GB", "United Kingdom", "Great Britain", "England", "u.k."]),
    "DE": (0.02, ["DE", "Germany", "Deutschland", "DEU"]),
    "FR": (0.01, ["FR", "France", "FRA"]),
    "??": (0.02, ["", None, "Atlantis", "N/A", "-"]),
}
FIRST = np.array(["james", "mary", "robert", "patricia", "john", "jennifer", "michael", "linda", "david", "elizabeth",
                  "william", "barbara", "maría", "josé", "siobhan", "o'neil", "anne-marie", "chloé", "zoë", "li"])
LAST = np.array(["smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "rodriguez", "martinez",
                 "o'brien", "mcdonald", "smith-jones", "müller", "nguyen", "kim", "van der berg", "dupont", "schmidt", "lee"])
DOMAINS = np.array(["gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "aol.com", "comcast.net",
                    "googlemail.com", "example.co.uk", "web.de"])
STREETS = np.array(["main street", "oak avenue", "PINE RD", "Maple Ave.", "cedar lane", "elm st.", "washington blvd",
                    "park place", "lake drive", "hill court", "5th avenue", "1st street", "sunset boulevard"])


def _mailbox(names: np.ndarray) -> np.ndarray:
    """`maría` -> `maria`, `o'neil` -> `oneil`: how a name becomes an email local part (on the small pool)."""
    return np.array([re.sub(r"[^a-z]", "", unicodedata.normalize("NFKD", n).encode("ascii", "ignore").decode()) for n in names])


def generate(rows: int, seed: int) -> pd.DataFrame:
    """Messy raw columns, as text, built with numpy (no per-row Python)."""
    rng = np.random.default_rng(seed)
    codes = np.array(list(COUNTRIES))
    home = codes[rng.choice(len(codes), rows, p=[w for w, _ in COUNTRIES.values()])]

    country = np.empty(rows, dtype=object)
    for code, (_, spellings) in COUNTRIES.items():
        at = np.flatnonzero(home == code)
        country[at] = np.array(spellings, dtype=object)[rng.integers(0, len(spellings), at.size)]
    country = pd.Series(country, dtype="str")
    noise = rng.random(rows)
    country = country.where(noise > 0.1, " " + country + " ").where((noise < 0.1) | (noise > 0.2), country.str.upper())

    def digits(low: int, high: int) -> pd.Series:
        return pd.Series(rng.integers(low, high, rows)).astype("str")

    area, exchange, line = digits(201, 990), digits(200, 1000), digits(1000, 10000)
    style = rng.integers(0, 3, rows)
    nanp = ("(" + area + ") " + exchange + "-" + line).where(style == 0, ("+1 " + area + " " + exchange + " " + line).where(
        style == 1, area + exchange + line))
    gb = "020 7" + digits(100, 1000) + " " + line
    de = "030 " + digits(1000000, 9999999)
    fr = "01 " + digits(10, 100) + " " + digits(10, 100) + " " + digits(10, 100) + " " + digits(10, 100)
    phone = nanp.where(~np.isin(home, ["GB", "DE", "FR"]), gb.where(home == "GB", de.where(home == "DE", fr)))
    junk = rng.random(rows)
    phone = phone.where(junk > 0.03, pd.Series(rng.choice(["0000000000", "555-1234", "n/a", "1111111111"], rows)))
    phone = phone.mask((junk > 0.03) & (junk < 0.05))

    pick_first, pick_last = rng.integers(0, len(FIRST), rows), rng.integers(0, len(LAST), rows)
    first, last = pd.Series(FIRST[pick_first], dtype="str"), pd.Series(LAST[pick_last], dtype="str")
    # Mailbox names are ASCII in practice: `maría o'neil` signs up as `maria.oneil`.
    mailbox_first, mailbox_last = (pd.Series(_mailbox(pool)[pick], dtype="str") for pool, pick in ((FIRST, pick_first), (LAST, pick_last)))
    local = mailbox_first + "." + mailbox_last + digits(1, 100000)
    tag = rng.random(rows)
    local = local.where(tag > 0.05, local + "+shop")
    email = local + "@" + pd.Series(DOMAINS[rng.integers(0, len(DOMAINS), rows)], dtype="str")
    case = rng.random(rows)
    email = email.where(case > 0.2, email.str.upper()).where((case < 0.2) | (case > 0.3), "  " + email.str.title() + " ")
    email = email.mask((case > 0.3) & (case < 0.32), email.str.replace("@", "@@"))
    email = email.mask((case > 0.32) & (case < 0.34))

    # Formatted by slicing Arrow's `YYYY-MM-DD HH:MM:SS` cast: strftime (pandas' or Arrow's)
    # would dominate the set-up time.
    instant = pd.Series(pd.Timestamp("2019-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 6 * 365 * 86400, rows), unit="s"))
    berlin = instant.dt.tz_convert("Europe/Berlin").dt.tz_localize(None)
    offset = ((berlin - instant.dt.tz_localize(None)).dt.total_seconds() // 3600).astype(int)

    def text(ts: pd.Series) -> pd.Series:
        return pd.Series(pc.cast(pa.array(ts.dt.tz_localize(None) if ts.dt.tz else ts, pa.timestamp("s")), pa.string())
                         .to_pandas().array)

    utc, local = text(instant), text(berlin)
    us_date = utc.str.slice(5, 7) + "/" + utc.str.slice(8, 10) + "/" + utc.str.slice(0, 4)
    fmt = rng.random(rows)
    stamps = utc.str.replace(" ", "T") + "Z"
    stamps = stamps.where(fmt < 0.40, local.str.replace(" ", "T") + "+0" + offset.astype("str") + "00")
    stamps = stamps.where(fmt < 0.55, utc)
    stamps = stamps.where(fmt < 0.70, us_date + " " + utc.str.slice(11, 16))
    stamps = stamps.where(fmt < 0.85, us_date)
    stamps = stamps.where(fmt < 0.90, instant.astype("datetime64[s, UTC]").astype("int64").astype("str"))
    stamps = stamps.where(fmt < 0.97, pd.Series(rng.choice(["31/31/2023", "not a date", "", "2099-12-31"], rows)))

    born = pc.strftime(pa.array(rng.integers(-30 * 365, 30 * 365, rows).astype("int32"), pa.date32()), format="%Y-%m-%d")
    birth = pd.Series(born.to_pandas().array)
    birth = birth.where(rng.random(rows) < 0.7, birth.str.slice(5, 7) + "/" + birth.str.slice(8, 10) + "/" + birth.str.slice(0, 4))

    name = first.where(case > 0.5, first.str.upper()) + pd.Series(np.where(tag > 0.2, " ", "  ")) + last
    address = digits(1, 9999) + " " + pd.Series(STREETS[rng.integers(0, len(STREETS), rows)], dtype="str")
    address = address.where(tag > 0.2, address + ", apt. " + digits(1, 40))
    zip5 = pd.Series(rng.integers(1000, 99999, rows)).astype("str")  # 4 digits where a spreadsheet ate a zero
    postal = zip5.where(home != "GB", "sw1a 1aa").where(home != "CA", "k1a0b1")
    iso2 = pd.Series(home).where(home != "??")

    cents = pd.Series(rng.integers(-500, 500000, rows))
    amount = (cents // 100).astype("str") + "." + (cents % 100).astype("str").str.zfill(2)
    amount = amount.where(fmt > 0.2, "$" + amount).where(fmt < 0.9, amount + " USD")
    currency = pd.Series(rng.choice(["USD", "usd", "$", "US$", "EUR", "€", "GBP", "£", None], rows), dtype="str")

    return pd.DataFrame({
        "country": country, "phone": phone, "email": email, "stamps": stamps, "birth": birth, "name": name,
        "address": address, "postal": postal, "iso2": iso2, "amount": amount, "currency": currency,
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)

    started = time.perf_counter()
    df = generate(args.rows, args.seed)
    print(f"generated {args.rows:,} rows in {time.perf_counter() - started:.1f} s")

    iso2, known = standardize_country(df["country"])
    region = iso2.where(known)
    stamps, _ = parse_timestamps(df["stamps"])
    amounts, _ = parse_decimal(df["amount"])
    as_of = pd.Timestamp("2025-01-01").date()
    steps: list[tuple[str, Callable[[], object]]] = [
        ("standardize_country", lambda: standardize_country(df["country"])),
        ("standardize_phone", lambda: standardize_phone(df["phone"], region)),
        ("standardize_email", lambda: standardize_email(df["email"])),
        ("parse_timestamps", lambda: parse_timestamps(df["stamps"])),
        ("flag_out_of_range", lambda: flag_out_of_range(stamps, as_of)),
        ("parse_dates", lambda: parse_dates(df["birth"])),
        ("standardize_name", lambda: standardize_name(df["name"])),
        ("flag_suspicious_text", lambda: flag_suspicious_text(df["name"])),
        ("standardize_city", lambda: standardize_city(df["name"])),
        ("standardize_address_line", lambda: standardize_address_line(df["address"])),
        ("standardize_postal_code", lambda: standardize_postal_code(df["postal"], df["iso2"])),
        ("parse_decimal", lambda: parse_decimal(df["amount"])),
        ("standardize_currency", lambda: standardize_currency(df["currency"])),
        ("flag_negative", lambda: flag_negative(amounts)),
    ]

    rows = args.rows
    print(f"{'standardizer':<26}{'wall s':>8}{'cpu s':>8}{'rows/s':>14}{'rows/s/core':>14}")
    total_wall = total_cpu = 0.0
    core = {"standardize_country", "standardize_phone", "standardize_email", "parse_timestamps"}
    core_wall = core_cpu = 0.0
    for name, step in steps:
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        total_wall, total_cpu = total_wall + wall, total_cpu + cpu
        if name in core:
            core_wall, core_cpu = core_wall + wall, core_cpu + cpu
        print(f"{name:<26}{wall:>8.3f}{cpu:>8.3f}{rows / wall:>14,.0f}{rows / cpu:>14,.0f}")
    print(f"{'core four (sequential)':<26}{core_wall:>8.3f}{core_cpu:>8.3f}{rows / core_wall:>14,.0f}{rows / core_cpu:>14,.0f}")
    print(f"{'all (sequential)':<26}{total_wall:>8.3f}{total_cpu:>8.3f}{rows / total_wall:>14,.0f}{rows / total_cpu:>14,.0f}")
    print("rows/s for a set = rows / the set's total seconds: each row passes through every standardizer of the set")
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: {peak_rss:,.0f} MiB process RSS (data included); Arrow pool peak {pa.default_memory_pool().max_memory() / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
