"""FEBRL-style person files mapped onto the customers contract, with their ground truth.

FEBRL (the Freely Extensible Biomedical Record Linkage project) publishes person records
with planted typos and no email or phone: a benchmark for identity that we did not
generate. Each record's `rec_id` names its true person (`rec-123-org`, `rec-123-dup-0`).
This maps such a file onto a brand's customers file in the landing layout and writes the
truth in the generator's shape (`truth/records.csv`), so the real pipeline loads it and
`evaluate_identity` scores it like any generated data set.

The social security number has no column in the contract and is left out: the pipeline
must match on what retailers actually hold (names, address, birth date).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

FEBRL_COLUMNS = ("rec_id", "given_name", "surname", "street_number", "address_1", "address_2", "suburb",
                 "postcode", "state", "date_of_birth", "soc_sec_id")
CUSTOMER_COLUMNS = ("customer_id", "first_name", "last_name", "address_line1", "address_line2", "city", "region",
                    "postal_code", "country", "birth_date", "updated_at")
# Every FEBRL record is an Australian resident; the files carry no country.
COUNTRY = "AU"
UPDATED_AT = "2020-01-01T00:00:00Z"


def read_febrl(path: str | Path) -> pd.DataFrame:
    """A FEBRL CSV as strings ("" for a blank field), with `person_id` from its rec_id."""
    frame = pd.read_csv(path, dtype=str, skipinitialspace=True, keep_default_na=False, encoding="utf-8")
    frame.columns = [c.strip() for c in frame.columns]
    missing = [c for c in FEBRL_COLUMNS if c not in frame.columns and c != "soc_sec_id"]
    if missing:
        raise ValueError(f"{path}: not a FEBRL file, missing column(s) {', '.join(missing)}")
    frame = frame.apply(lambda col: col.str.strip())
    person = frame["rec_id"].str.extract(r"^rec-(\d+)-", expand=False)
    if person.isna().any():
        bad = frame.loc[person.isna(), "rec_id"].iloc[0]
        raise ValueError(f"{path}: rec_id {bad!r} does not read rec-<number>-org or rec-<number>-dup-<n>")
    return frame.assign(person_id="febrl-" + person)


def to_customers(frame: pd.DataFrame) -> pd.DataFrame:
    """FEBRL columns renamed and joined into the customers contract's columns.

    The street number goes in front of the street name, as an address line is written;
    an impossible birth date (19371233) is left blank rather than guessed.
    """
    birth = pd.to_datetime(frame["date_of_birth"], format="%Y%m%d", errors="coerce")
    street = (frame["street_number"] + " " + frame["address_1"]).str.strip()
    return pd.DataFrame({
        "customer_id": frame["rec_id"],
        "first_name": frame["given_name"],
        "last_name": frame["surname"],
        "address_line1": street,
        "address_line2": frame["address_2"],
        "city": frame["suburb"],
        "region": frame["state"].str.upper(),
        "postal_code": frame["postcode"],
        "country": COUNTRY,
        "birth_date": birth.dt.strftime("%Y-%m-%d").fillna(""),
        "updated_at": UPDATED_AT,
    }, columns=list(CUSTOMER_COLUMNS))


def febrl_to_landing(files: Mapping[str, str | Path], out: str | Path) -> Path:
    """Write each FEBRL file as `out/landing/<brand>/customers/<name>.csv` (brand: the mapping's key)
    and the truth of every row to `out/truth/records.csv`. Returns `out`."""
    out = Path(out)
    truth = []
    for brand, path in files.items():
        frame = read_febrl(path)
        relative = f"{brand}/customers/{Path(path).stem}.csv"
        target = out / "landing" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        to_customers(frame).to_csv(target, index=False)
        truth.append(pd.DataFrame({
            "brand": brand, "entity": "customers", "source_key": frame["rec_id"], "person_id": frame["person_id"],
            "file": relative, "row_number": range(1, len(frame) + 1)}))
    (out / "truth").mkdir(parents=True, exist_ok=True)
    pd.concat(truth, ignore_index=True).to_csv(out / "truth" / "records.csv", index=False)
    return out
