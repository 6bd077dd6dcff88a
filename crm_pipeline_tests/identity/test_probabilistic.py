"""Probabilistic person matching: one person behind two identities is joined; households, namesakes are not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm_pipeline.identity.probabilistic import match_people, probabilistic_pairs

FIRST = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "William", "Elizabeth",
         "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
         "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Betty", "Mark", "Sandra", "Paul", "Ashley", "Steven",
         "Emily", "Andrew", "Donna", "Kevin", "Michelle", "Brian", "Carol", "George", "Amanda", "Edward",
         "Melissa", "Ronald", "Deborah", "Timothy", "Rebecca", "Jason", "Laura", "Ryan", "Cynthia", "Eric",
         "Amy", "Jacob", "Angela", "Gary", "Helen", "Nicholas", "Anna", "Henry", "Emma"]
LAST = ["Anderson", "Baker", "Carter", "Dalton", "Ellis", "Fletcher", "Garner", "Hughes", "Ingram", "Jensen",
        "Keller", "Lawson", "Monroe", "Nolan", "Osborne", "Pierce", "Quinn", "Ramsey", "Sutton", "Thornton",
        "Underwood", "Vaughn", "Walsh", "Yates", "Zimmerman", "Barrett", "Coleman", "Dunn", "Foster", "Gibson",
        "Hale", "Irwin", "Jordan", "Knight", "Lowe", "Mercer", "Norris", "Owens", "Porter", "Reeves", "Shaw",
        "Tucker", "Vance", "Webb", "Wolfe", "Brennan", "Caldwell", "Doyle", "Fischer", "Garrett", "Hammond",
        "Jacobs", "Kramer", "Lambert", "McCoy", "Newton", "Parsons", "Rowe", "Sharp", "Tate"]
STREETS = ["Oak St", "Maple Ave", "Pine Rd", "Cedar Ln", "Elm Dr", "Main St", "Park Pl", "Lake Way", "Hill Ct",
           "River Rd", "Church St", "Mill Ln", "Spring Ave", "Forest Dr", "Sunset Blvd", "Meadow Ln", "Ridge Rd",
           "Valley Way", "Walnut St", "Willow Ct"]
THRESHOLD = 0.95


def _background(people: int = 2000, seed: int = 11) -> pd.DataFrame:
    """Single-record people, each its own deterministic cluster; 10% live with a relative."""
    rng = np.random.default_rng(seed)
    last = np.array(LAST, dtype=object)[rng.integers(0, len(LAST), people)]
    address = (pd.Series(rng.integers(1, 999, people)).astype(str) + " "
               + np.array(STREETS, dtype=object)[rng.integers(0, len(STREETS), people)]).to_numpy()
    postal = pd.Series(rng.integers(10000, 10300, people)).astype(str).to_numpy()
    relative = rng.random(people) < 0.10
    host = rng.integers(0, people, people)
    address, postal = np.where(relative, address[host], address), np.where(relative, postal[host], postal)
    last = np.where(relative, last[host], last)
    ids = pd.Series(np.arange(people)).astype(str).str.zfill(5)
    records = pd.DataFrame({
        "node_id": ("bg" + ids).to_numpy(),
        "cluster_id": ("cbg" + ids).to_numpy(),
        "first_name": np.array(FIRST, dtype=object)[rng.integers(0, len(FIRST), people)],
        "last_name": last,
        "birth_date": np.datetime64("1940-01-01") + rng.integers(0, 65 * 365, people).astype("timedelta64[D]"),
        "address_line1": address,
        "postal_code": postal,
        "city": "Springfield",
        "country": "US",
        "email_match_key": ("person" + ids + "@example.com").to_numpy(),
        "phone": ("+1555" + ids.str.zfill(7)).to_numpy(),
    })
    records.loc[rng.random(people) < 0.2, "birth_date"] = pd.NaT
    return records


def _person(node_id, cluster_id, first, last, birth, address, postal, email):
    return {"node_id": node_id, "cluster_id": cluster_id, "first_name": first, "last_name": last,
            "birth_date": pd.Timestamp(birth) if birth else pd.NaT, "address_line1": address,
            "postal_code": postal, "city": "Springfield", "country": "US", "email_match_key": email, "phone": None}


PLANTED = pd.DataFrame([
    # (1) one person, two brands: a typo'd first name and a new email.
    _person("typo_a", "c_typo_a", "Jonathan", "Harrington", "1984-03-17", "12 Birchwood Ln", "02139", "jon@gmail.com"),
    _person("typo_b", "c_typo_b", "Jonathon", "Harrington", "1984-03-17", "12 Birchwood Ln", "02139", "jh@work.com"),
    # (1) one person under a nickname, a different email.
    _person("nick_a", "c_nick_a", "Robert", "Kowalski", "1971-08-02", "77 Quarry Rd", "60614", "rkowalski@aol.com"),
    _person("nick_b", "c_nick_b", "Bob", "Kowalski", "1971-08-02", "77 Quarry Rd", "60614", "bobk@yahoo.com"),
    # (1) one person, one file writes ZIP+4, the other the ZIP.
    _person("zip_a", "c_zip_a", "Amara", "Whitfield", "1993-10-08", "401 Larkspur Ave", "55414", "amara@w.net"),
    _person("zip_b", "c_zip_b", "Amara", "Whitfield", "1993-10-08", "401 Larkspur Ave", "55414-1203", "aw@x.org"),
    # (2) a household: same address and last name, other first names and birth dates.
    _person("home_a", "c_home_a", "Maria", "Lindqvist", "1962-05-02", "48 Harbor View Rd", "98101", "maria@lq.se"),
    _person("home_b", "c_home_b", "Erik", "Lindqvist", "1960-11-23", "48 Harbor View Rd", "98101", "erik@lq.se"),
    # (2) father and son of the same name at one address.
    _person("senior", "c_senior", "Thomas", "Whitaker", "1950-02-14", "9 Elmstead Ct", "30305", "tw@bell.net"),
    _person("junior", "c_junior", "Thomas", "Whitaker", "1982-06-30", "9 Elmstead Ct", "30305", "tommy@gmail.com"),
    # (3) two strangers with a common name, elsewhere, born years apart.
    _person("smith_a", "c_smith_a", "John", "Smith", "1975-04-04", "5 Lincoln Ave", "10115", "js1@example.org"),
    _person("smith_b", "c_smith_b", "John", "Smith", "1988-09-19", "310 Ocean Dr", "33139", "js2@example.org"),
    # (4) the same person twice in one deterministic cluster (shared email): no edge needed.
    _person("same_a", "c_same", "Priya", "Raman", "1990-12-01", "3 Orchard Way", "94110", "priya@raman.io"),
    _person("same_b", "c_same", "Priya", "Raman", "1990-12-01", "3 Orchard Way", "94110", "priya@raman.io"),
])


@pytest.fixture(scope="module")
def records() -> pd.DataFrame:
    return pd.concat([_background(), PLANTED], ignore_index=True)


@pytest.fixture(scope="module")
def pairs(records) -> pd.DataFrame:
    return probabilistic_pairs(records, threshold=THRESHOLD)


def _paired(pairs: pd.DataFrame, a: str, b: str) -> bool:
    a, b = sorted((a, b))
    return bool(((pairs.node_a == a) & (pairs.node_b == b)).any())


def test_same_person_with_a_typo_in_the_first_name_and_a_new_email_is_paired(pairs):
    row = pairs[(pairs.node_a == "typo_a") & (pairs.node_b == "typo_b")]
    assert len(row) == 1
    assert row.match_probability.iloc[0] >= THRESHOLD


def test_same_person_under_a_nickname_is_paired(pairs):
    assert _paired(pairs, "nick_a", "nick_b")


def test_a_zip_plus_four_and_its_zip_are_the_same_place(pairs):
    assert _paired(pairs, "zip_a", "zip_b")


def test_a_household_stays_apart(pairs):
    assert not _paired(pairs, "home_a", "home_b")


def test_father_and_son_of_the_same_name_at_one_address_stay_apart(pairs):
    assert not _paired(pairs, "senior", "junior")


def test_namesakes_elsewhere_with_other_birth_dates_stay_apart(pairs):
    assert not _paired(pairs, "smith_a", "smith_b")


def test_pairs_within_one_deterministic_cluster_are_never_returned(pairs, records):
    cluster = records.set_index("node_id").cluster_id
    assert not _paired(pairs, "same_a", "same_b")
    assert (cluster.loc[pairs.node_a].to_numpy() != cluster.loc[pairs.node_b].to_numpy()).all()


def test_output_is_one_row_per_pair_above_the_threshold(pairs):
    assert list(pairs.columns) == ["node_a", "node_b", "match_probability"]
    assert (pairs.node_a < pairs.node_b).all()
    assert not pairs.duplicated(["node_a", "node_b"]).any()
    assert (pairs.match_probability >= THRESHOLD).all() and (pairs.match_probability <= 1).all()


def test_same_input_gives_the_same_pairs(records, pairs):
    again = probabilistic_pairs(records.sample(frac=1, random_state=3), threshold=THRESHOLD)
    pd.testing.assert_frame_equal(again, pairs)


def test_a_memory_cap_and_one_thread_give_the_same_pairs(records, tmp_path):
    # Thread counts stated on both sides: the suite's connections default to one thread (conftest).
    parallel = match_people(records, threshold=THRESHOLD, duckdb_settings={"threads": 2})
    bounded = match_people(records, threshold=THRESHOLD, duckdb_settings={
        "memory_limit": "512MB", "threads": 1, "temp_directory": str(tmp_path / "spill")})
    pd.testing.assert_frame_equal(bounded.pairs, parallel.pairs)


def test_one_record_cannot_chain_many_clusters(records):
    # The same person landed four times in four brands: with a cap of one edit per record,
    # no record is joined to more than one other.
    copies = pd.DataFrame([
        _person(f"multi_{i}", f"c_multi_{i}", first, "Okonkwo", "1979-07-21", "150 Sycamore St", "55401", f"o{i}@x.com")
        for i, first in enumerate(["Chinedu", "Chinedu", "Chinedy", "Chinedu"])
    ])
    capped = probabilistic_pairs(pd.concat([records, copies], ignore_index=True), max_pairs_per_record=1)
    multi = capped[capped.node_a.str.startswith("multi_")]
    assert len(multi) >= 1
    degree = pd.concat([capped.node_a, capped.node_b]).value_counts()
    assert degree.max() <= 1


def test_too_few_records_give_no_pairs():
    pairs = probabilistic_pairs(PLANTED)
    assert pairs.empty
    assert list(pairs.columns) == ["node_a", "node_b", "match_probability"]


def test_records_without_the_fields_to_compare_give_no_pairs():
    blank = _background(200).assign(birth_date=pd.NaT, address_line1=None, postal_code="")
    assert probabilistic_pairs(blank).empty


def test_the_pair_that_sets_the_threshold_is_merged():
    """The threshold is the probability of the pair where the model's expected F1 peaks; that pair is kept
    however its probability's last digits round (0.7150737956 rounds up to 0.715073796)."""
    import duckdb

    from crm_pipeline.identity.probabilistic import _accepted_pairs, model_threshold

    con = duckdb.connect(":memory:")
    con.execute("CREATE TABLE predictions AS SELECT * FROM (VALUES "
                "('a', 'b', 0.99, 'ca', 'cb', 3.0, 0.0), ('c', 'd', 0.7150737956, 'cc', 'cd', 0.0, 12.4), "
                "('e', 'f', 0.2, 'ce', 'cf', 1.0, 0.0)) "
                "t(node_id_l, node_id_r, match_probability, cluster_id_l, cluster_id_r, mw_birth_date, mw_location)")
    threshold = model_threshold(con, "predictions")
    assert threshold == 0.715073796 > 0.7150737956
    pairs = _accepted_pairs(con, "predictions", threshold, 5)
    assert list(zip(pairs["node_a"], pairs["node_b"])) == [("a", "b"), ("c", "d")]
