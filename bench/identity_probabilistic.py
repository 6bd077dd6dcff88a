"""Speed and accuracy of probabilistic person matching on synthetic people with planted duplicates.

Usage: PYTHONPATH=. python bench/identity_probabilistic.py [--rows 100000 1000000] [--seed 7]
           [--memory-limit 4GB] [--temp-dir bench/out/identity_tmp] [--comparisons-per-record 50]

Builds standardized person records (seeded numpy): about 10% of people have a second
record in another deterministic cluster (new email and phone, plus a first-name typo, a
nickname, a last-name typo, a move, a birth-date slip or nothing else), about 15% share an
address with a household member (usually the same last name; own first name and birth
date), and 3% have a second node in the same cluster (which must never come back as a
pair); a quarter of birth dates are missing. Prints seconds (matching only, not building
the data), pairs found, precision and recall against the planted pairs, recall per kind
of variation, the candidate pairs the comparison budget let through (and what it did to
each blocking rule), DuckDB's spill (largest size of the temp folder, sampled), and the
process's peak memory so far. Target: 1,000,000 records in <= 2 min.

Every record has the same city, as a single-store or single-city retailer's would: the
rules on city degenerate to one field, the case the comparison budget is for.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from crm_pipeline.identity.blocking import BlockingBudget
from crm_pipeline.identity.probabilistic import match_people

FIRST = np.array([
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "William", "Elizabeth",
    "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "Christopher", "Nancy", "Daniel", "Lisa", "Matthew", "Betty", "Anthony", "Margaret", "Mark", "Sandra",
    "Donald", "Ashley", "Steven", "Kimberly", "Paul", "Emily", "Andrew", "Donna", "Joshua", "Michelle",
    "Kenneth", "Dorothy", "Kevin", "Carol", "Brian", "Amanda", "George", "Melissa", "Edward", "Deborah",
    "Ronald", "Stephanie", "Timothy", "Rebecca", "Jason", "Sharon", "Jeffrey", "Laura", "Ryan", "Cynthia",
    "Jacob", "Kathleen", "Gary", "Amy", "Nicholas", "Shirley", "Eric", "Angela", "Jonathan", "Helen",
    "Stephen", "Anna", "Larry", "Brenda", "Justin", "Pamela", "Scott", "Nicole", "Brandon", "Emma",
    "Benjamin", "Samantha", "Samuel", "Katherine", "Gregory", "Christine", "Frank", "Debra", "Alexander",
    "Rachel", "Raymond", "Catherine", "Patrick", "Carolyn", "Jack", "Janet", "Dennis", "Ruth", "Jerry",
    "Maria", "Tyler", "Heather", "Aaron", "Diane", "Jose", "Virginia", "Adam", "Julie", "Henry", "Joyce",
    "Nathan", "Victoria", "Douglas", "Olivia", "Zachary", "Kelly", "Peter", "Christina", "Kyle", "Lauren",
    "Walter", "Joan", "Ethan", "Evelyn", "Jeremy", "Judith", "Harold", "Megan", "Keith", "Cheryl",
    "Christian", "Andrea", "Roger", "Hannah", "Noah", "Martha", "Gerald", "Jacqueline", "Carl", "Frances",
    "Terry", "Gloria", "Sean", "Ann", "Austin", "Teresa", "Arthur", "Kathryn", "Lawrence", "Sara",
    "Jesse", "Janice", "Dylan", "Jean", "Bryan", "Alice", "Joe", "Madison", "Jordan", "Doris", "Billy",
    "Abigail", "Bruce", "Julia", "Albert", "Judy", "Willie", "Grace", "Gabriel", "Denise", "Logan",
    "Amber", "Alan", "Marilyn", "Juan", "Beverly", "Wayne", "Danielle", "Roy", "Theresa", "Ralph",
    "Sophia", "Randy", "Marie", "Eugene", "Diana", "Vincent", "Brittany", "Russell", "Natalie", "Elijah",
    "Isabella", "Louis", "Charlotte", "Bobby", "Rose", "Philip", "Alexis", "Johnny", "Kayla",
], dtype=object)
NICK = {"Robert": "Bob", "William": "Bill", "Elizabeth": "Liz", "Katherine": "Kate", "Richard": "Rick",
        "James": "Jim", "John": "Jack", "Michael": "Mike", "Thomas": "Tom", "Christopher": "Chris",
        "Daniel": "Dan", "Matthew": "Matt", "Anthony": "Tony", "Joseph": "Joe", "Edward": "Ed",
        "Andrew": "Andy", "Jonathan": "Jon", "Nicholas": "Nick", "Samuel": "Sam", "Benjamin": "Ben",
        "Alexander": "Alex", "Steven": "Steve", "Margaret": "Peggy", "Jennifer": "Jen", "Patricia": "Pat",
        "Susan": "Sue", "Rebecca": "Becky", "Victoria": "Vicky", "Deborah": "Debbie", "Jessica": "Jess",
        "Abigail": "Abby", "Samantha": "Sam", "Timothy": "Tim", "Kenneth": "Ken", "Donald": "Don",
        "Ronald": "Ron", "Gregory": "Greg", "Lawrence": "Larry", "Stephen": "Steve", "Zachary": "Zach"}
SYLLABLES = np.array(["son", "ley", "ton", "man", "er", "ford", "well", "wood", "berg", "ski", "ez", "ing",
                      "field", "more", "land", "by", "ham", "worth", "ridge", "ell"], dtype=object)
STEMS = np.array(["Ander", "Bak", "Carl", "Dal", "Ed", "Fair", "Gar", "Hol", "Ing", "Jen", "Kel", "Lind",
                  "Mor", "Nel", "Ol", "Park", "Quin", "Ros", "Stan", "Thom", "Ul", "Vance", "Whit", "Yar",
                  "Zim", "Brad", "Crom", "Dunn", "Ell", "Fitz", "Grant", "Hart", "Kings", "Lock", "Mad",
                  "Nash", "Ox", "Pem", "Red", "Shel"], dtype=object)
STREETS = np.array(["Oak", "Maple", "Pine", "Cedar", "Elm", "Main", "Park", "Lake", "Hill", "Washington",
                    "Lincoln", "Church", "Mill", "River", "Spring", "Highland", "Forest", "Sunset", "Meadow",
                    "Ridge", "Valley", "Franklin", "Jefferson", "Madison", "Chestnut", "Walnut", "Willow",
                    "Birch", "Cherry", "Adams", "Jackson", "Center", "North", "South", "Union", "Grove",
                    "Prospect", "Summit", "Broad", "Market", "Water", "High", "School", "Bridge", "Liberty",
                    "Harbor", "Orchard", "Dogwood", "Laurel", "Aspen"], dtype=object)
SUFFIXES = np.array(["St", "Ave", "Rd", "Ln", "Dr", "Ct", "Pl", "Way", "Blvd", "Ter"], dtype=object)
KINDS = ("first_typo", "nickname", "last_typo", "moved", "birth_slip", "same")
KIND_SHARES = (0.35, 0.2, 0.1, 0.15, 0.05, 0.15)


def _typo(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One edit per value (swap two letters, drop one, double one) at a random inner position."""
    pos = 1 + (rng.random(len(values)) * np.maximum(pd.Series(values).str.len().to_numpy() - 2, 1)).astype(int)
    kind = rng.integers(0, 3, len(values))
    edits = (lambda v, p: v[:p - 1] + v[p] + v[p - 1] + v[p + 1:],  # only the few duplicated rows
             lambda v, p: v[:p] + v[p + 1:],
             lambda v, p: v[:p] + v[p] + v[p:])
    out = np.array([edits[k](v, p) for v, p, k in zip(values, pos, kind)], dtype=object)
    return np.where(out == values, np.array([edits[2](v, p) for v, p in zip(values, pos)], dtype=object), out)


def make_records(rows: int, seed: int = 7, dup_share: float = 0.10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`rows` person records and the truth: `node_a, node_b` of every cross-cluster same-person pair."""
    rng = np.random.default_rng(seed)
    people = int(rows / (1 + dup_share + 0.03))
    last_pool = np.unique(STEMS[rng.integers(0, len(STEMS), 4000)] + SYLLABLES[rng.integers(0, len(SYLLABLES), 4000)])
    last_pool = np.concatenate([last_pool, np.array(["Smith", "Johnson", "Williams", "Brown", "Jones", "Miller",
                                                     "Davis", "Garcia", "Wilson", "Taylor"], dtype=object)])
    # Zipf-like name frequencies: a few names are very common, most are rare.
    first_w = 1 / np.arange(1, len(FIRST) + 1) ** 0.7
    last_w = 1 / np.arange(1, len(last_pool) + 1) ** 0.9
    first = FIRST[rng.choice(len(FIRST), people, p=first_w / first_w.sum())]
    last = last_pool[rng.choice(len(last_pool), people, p=last_w / last_w.sum())]
    birth = np.datetime64("1940-01-01") + rng.integers(0, 66 * 365, people).astype("timedelta64[D]")
    postal_pool = np.unique(rng.integers(1000, 99999, max(2000, rows // 40)))
    postal = postal_pool[rng.integers(0, len(postal_pool), people)]
    address = (pd.Series(rng.integers(1, 9999, people)).astype(str).to_numpy(dtype=object)
               + " " + STREETS[rng.integers(0, len(STREETS), people)]
               + " " + SUFFIXES[rng.integers(0, len(SUFFIXES), people)])
    # Households: 15% of people live with an earlier person: same address, usually same last name.
    home = rng.random(people) < 0.15
    host = rng.integers(0, people, people)
    address = np.where(home, address[host], address)
    postal = np.where(home, postal[host], postal)
    last = np.where(home & (rng.random(people) < 0.7), last[host], last)

    person = np.arange(people)
    dup = rng.choice(people, int(people * dup_share), replace=False)
    kind = np.array(KINDS)[rng.choice(len(KINDS), len(dup), p=KIND_SHARES)]
    d_first, d_last, d_birth = first[dup].copy(), last[dup].copy(), birth[dup].copy()
    d_address, d_postal = address[dup].copy(), postal[dup].copy()
    m = kind == "first_typo"
    d_first[m] = _typo(d_first[m], rng)
    m = kind == "nickname"
    nick = pd.Series(d_first[m], dtype=object).map(NICK).to_numpy()
    d_first[m] = np.where(pd.isna(nick), _typo(d_first[m], rng), nick)
    m = kind == "last_typo"
    d_last[m] = _typo(d_last[m], rng)
    m = kind == "moved"
    d_address[m] = address[rng.integers(0, people, m.sum())]
    d_postal[m] = postal_pool[rng.integers(0, len(postal_pool), m.sum())]
    m = kind == "birth_slip"
    d_birth[m] = d_birth[m] + rng.choice([-1, 1, 30, -30, 365], m.sum()).astype("timedelta64[D]")
    # On top of any of these, a few typos in the street line or the postal code.
    m = (kind != "moved") & (rng.random(len(dup)) < 0.05)
    d_address[m] = _typo(d_address[m], rng)
    m = (kind != "moved") & (rng.random(len(dup)) < 0.03)
    d_postal[m] = (d_postal[m] // 10) * 10 + (d_postal[m] + rng.integers(1, 9, m.sum())) % 10
    # Same cluster: a second node (say, a subscriber record) joined by a shared identifier.
    twin = rng.choice(people, int(people * 0.03), replace=False)

    node_person = np.concatenate([person, dup, twin])
    n = len(node_person)
    node_id = np.char.add("n", np.char.zfill(np.arange(n).astype(str), 8)).astype(object)
    cluster = np.concatenate([person, people + np.arange(len(dup)), twin])
    rec = pd.DataFrame({
        "node_id": node_id,
        "cluster_id": np.char.add("c", cluster.astype(str)).astype(object),
        "first_name": np.concatenate([first, d_first, first[twin]]),
        "last_name": np.concatenate([last, d_last, last[twin]]),
        "birth_date": np.concatenate([birth, d_birth, birth[twin]]).astype("datetime64[ns]"),
        "address_line1": np.concatenate([address, d_address, address[twin]]),
        "postal_code": pd.Series(np.concatenate([postal, d_postal, postal[twin]])).astype(str).str.zfill(5).to_numpy(),
        "city": "Springfield",
        "country": "US",
        "email_match_key": np.char.add(np.char.add("p", np.arange(n).astype(str)), "@example.com").astype(object),
        "phone": np.char.add("+1555", np.char.zfill(np.arange(n).astype(str), 7)).astype(object),
    })
    # Missing values as in real customer files: birth dates are often not asked for.
    rec.loc[rng.random(n) < 0.25, "birth_date"] = pd.NaT
    rec.loc[rng.random(n) < 0.05, "address_line1"] = None
    rec.loc[rng.random(n) < 0.03, "postal_code"] = None
    rec["person"] = node_person
    nodes = rec[["node_id", "cluster_id", "person"]]
    truth = nodes.merge(nodes, on="person", suffixes=("_a", "_b"))
    truth = truth[(truth.node_id_a < truth.node_id_b) & (truth.cluster_id_a != truth.cluster_id_b)]
    # Every cross-cluster pair has exactly one duplicate record, the later node: its variation.
    variation = pd.Series(kind, index=node_id[people:people + len(dup)])
    truth = truth.rename(columns={"node_id_a": "node_a", "node_id_b": "node_b"})[["node_a", "node_b"]]
    truth["variation"] = variation.reindex(truth.node_b).to_numpy()
    return rec.drop(columns="person"), truth.reset_index(drop=True)


def recall_by_variation(found: pd.DataFrame, truth: pd.DataFrame) -> str:
    """Share of planted pairs found, per kind of variation of the duplicate."""
    hit = truth.merge(found.assign(hit=True), on=["node_a", "node_b"], how="left").hit.notna()
    by = hit.groupby(truth.variation).mean()
    return ", ".join(f"{k} {v:.2f}" for k, v in by.items())


def evaluate(found: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """Pair precision and recall against the planted pairs."""
    hits = found.merge(truth, on=["node_a", "node_b"]).shape[0]
    return {"precision": hits / max(len(found), 1), "recall": hits / max(len(truth), 1)}


class SpillWatch:
    """The largest size DuckDB's temp folder reached, sampled every half second."""

    def __init__(self, folder: Path):
        self.folder, self.peak, self._stop = folder, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.5):
            size = sum(f.stat().st_size for f in self.folder.rglob("*") if f.is_file())
            self.peak = max(self.peak, size)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--memory-limit", default="4GB", help="DuckDB memory_limit of the matching connection")
    parser.add_argument("--temp-dir", type=Path, default=Path("bench/out"),
                        help="where DuckDB spills (a fresh folder inside it, deleted afterwards)")
    parser.add_argument("--comparisons-per-record", type=float, default=BlockingBudget().comparisons_per_record)
    args = parser.parse_args()
    budget = BlockingBudget(comparisons_per_record=args.comparisons_per_record)
    for rows in args.rows:
        start = time.perf_counter()
        records, truth = make_records(rows, args.seed)
        built = time.perf_counter() - start
        args.temp_dir.mkdir(parents=True, exist_ok=True)
        spill = Path(tempfile.mkdtemp(prefix="identity_spill_", dir=args.temp_dir))
        try:
            start = time.perf_counter()
            with SpillWatch(spill) as watch:
                result = match_people(records, seed=args.seed, blocking=budget, duckdb_settings={
                    "memory_limit": args.memory_limit, "temp_directory": str(spill)})
            seconds = time.perf_counter() - start
        finally:
            shutil.rmtree(spill, ignore_errors=True)
        found = result.pairs
        score = evaluate(found, truth)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        cut = result.blocking[result.blocking["status"] != "kept"] if len(result.blocking) else result.blocking
        print(f"{len(records):>9,} records (built in {built:.1f} s): {seconds:6.1f} s, "
              f"{len(records) / seconds:,.0f} records/s, {result.candidate_pairs:,} candidate pairs "
              f"(budget {budget.comparisons_per_record:g} per record), {len(found):,} pairs found of "
              f"{len(truth):,} planted, precision {score['precision']:.3f}, recall {score['recall']:.3f}, "
              f"peak memory {peak_mb:,.0f} MB, DuckDB spill {watch.peak / 2**20:,.0f} MB "
              f"(memory_limit {args.memory_limit})\n"
              f"    seconds by step: {result.seconds}\n"
              f"    recall by variation: {recall_by_variation(found, truth)}\n"
              + "".join(f"    blocking rule {r.rule}: {r.status}, {r.reason}\n" for r in cut.itertuples()),
              end="", flush=True)


if __name__ == "__main__":
    main()
