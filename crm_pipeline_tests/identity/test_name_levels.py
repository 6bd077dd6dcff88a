"""The cheap test that lets a first-name pair through to Damerau-Levenshtein never hides a one-edit typo,
wherever in the name the edit falls (a slipped first letter, a dropped last one, a two-letter name)."""

from __future__ import annotations

import duckdb

from crm_pipeline.identity.splink_settings import _ONE_EDIT_POSSIBLE

NAMES = ("al", "jo", "eve", "ann", "anna", "john", "maria", "joseph", "christopher", "y")


def _one_edit_variants(name: str) -> set[str]:
    letters = "abz"
    out = set()
    for i in range(len(name) + 1):
        out |= {name[:i] + c + name[i:] for c in letters}  # insertion
        if i < len(name):
            out.add(name[:i] + name[i + 1:])  # deletion
            out |= {name[:i] + c + name[i + 1:] for c in letters}  # substitution
        if i < len(name) - 1:
            out.add(name[:i] + name[i + 1] + name[i] + name[i + 2:])  # neighbours swapped
    return {v for v in out if v and v != name}


def test_every_one_edit_variant_passes_the_cheap_test_and_scores_one_edit():
    pairs = [(n, v) for n in NAMES for v in sorted(_one_edit_variants(n))]
    con = duckdb.connect()
    con.execute("CREATE TABLE p (first_name_l VARCHAR, first_name_r VARCHAR)")
    con.executemany("INSERT INTO p VALUES (?, ?)", pairs)
    missed = con.sql(f"SELECT first_name_l, first_name_r FROM p WHERE NOT ({_ONE_EDIT_POSSIBLE}) "
                     "AND damerau_levenshtein(first_name_l, first_name_r) <= 1").fetchall()
    assert len(pairs) > 300 and missed == []
    # It is a filter, not a pass: most unrelated names are stopped before the edit distance runs.
    unrelated = [(a, b) for a in NAMES for b in NAMES if a != b]
    con.executemany("INSERT INTO p VALUES (?, ?)", unrelated)
    stopped = con.sql(f"SELECT count(*) FROM p WHERE NOT ({_ONE_EDIT_POSSIBLE}) "
                      "AND damerau_levenshtein(first_name_l, first_name_r) > 1").fetchone()[0]
    assert stopped >= len(unrelated) // 2
