"""The Splink model for probabilistic person matching: comparisons, blocking rules, training rules.

The model compares every identifying field of the customers contract: first and last
name (term-frequency adjusted, nicknames, typos, swapped), birth date (exact, one part
mistyped, near, far), and the address as one comparison over street number, street,
city, postal code and region (how many parts agree; see `_location` for why one).
Email and phone are left out on purpose: the pairs this pass is for are, by
construction, pairs that share no strong identifier (otherwise the deterministic pass
has joined them already), so among them a differing email is no evidence against a
match, and a mailbox made of the name (johnsmith@) repeats the name's evidence.

Column names refer to the prepared table built in `probabilistic.py`
(`first_name_forms` is the first name plus its formal names from `nicknames.py`,
`last_initial` the first letter of the last name, `street_number` and `street_name`
the two halves of `address_line1`; names and places are lower-cased).
"""

from __future__ import annotations

from itertools import combinations

import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import SettingsCreator, block_on

UNIQUE_ID = "node_id"
CLUSTER = "cluster_id"

# Pairs already in one deterministic cluster are never scored: they need no edge.
OTHER_CLUSTER = f"l.{CLUSTER} <> r.{CLUSTER}"

# Each rule is an equi-join on two fields a person rarely shares with a stranger, so
# candidate pairs grow with records, not with records squared. Every identifying field
# appears in several rules and no two rules share both fields, so a typo in any one
# field (or two, mostly) leaves a rule that still pairs the records: a name typo, a
# moved address, a mistyped birth date or postal code, a blank field. Most telling first:
# `blocking.py` holds them to a comparison budget, and Splink scores a pair under the
# first rule that finds it.
PREDICTION_BLOCKING_FIELDS = (
    ("first_name", "last_name"),
    ("last_name", "birth_date"),
    ("first_name", "birth_date"),
    ("postal_code", "birth_date"),
    ("postal_code", "last_initial"),
    ("postal_code", "first_name"),
    ("street_name", "street_number"),
    ("city", "birth_date"),
    ("city", "last_name"),
    ("street_name", "first_name"),
    ("birth_date", "street_number"),
    ("postal_code", "street_number"),
    ("last_initial", "birth_date"),
)

# Rules precise enough to count as matches when estimating how often two random records
# are the same person. DETERMINISTIC_RECALL is the share of true pairs they are assumed
# to find among pairs that have the fields they need (the rest differ by a typo, a
# nickname or a move); `probabilistic.py` scales it by how many pairs do have them,
# because a subscriber record with a name only can match but can never satisfy a rule.
DETERMINISTIC_RULES = (
    block_on("first_name", "last_name", "birth_date"),
    block_on("first_name", "last_name", "address_line1", "postal_code"),
)
DETERMINISTIC_RECALL = 0.7
# Records having every field of rule 1, of rule 2, of both (SQL over the prepared table).
RULE_FIELDS = (
    "first_name IS NOT NULL AND last_name IS NOT NULL AND birth_date IS NOT NULL",
    "first_name IS NOT NULL AND last_name IS NOT NULL AND address_line1 IS NOT NULL AND postal_code IS NOT NULL",
)

# Share of true duplicates whose birth dates are more than ten years apart and not a
# one-part slip: practically none (a garbage date), so in effect a veto (-16 bits). It has
# to be: a household is not independent evidence (a shared address comes with a shared,
# and if rare then heavily weighted, last name), and summing them would otherwise let a
# father and son of the same name (Sr./Jr.) through. Merging two people is worse than
# missing one merge.
BIRTH_DATES_FAR_APART_M = 1e-5

# Expectation maximisation cannot learn the m of a column it blocks on, so two sessions
# with disjoint blocking columns cover every comparison between them.
EM_BLOCKING_COLUMNS = (
    ("postal_code", "birth_date"),  # trains first_name, last_name
    ("first_name", "last_name"),    # trains birth_date, location
)


# Necessary for two first names to be one edit apart (substitution, insertion, deletion or swap of
# neighbours): lengths differ by at most one, and an edit cannot touch both ends of a name of three
# letters or more, so the first or the last letter agrees. Plain SQL on every engine Splink targets.
_ONE_EDIT_POSSIBLE = (
    "abs(length(first_name_l) - length(first_name_r)) <= 1 AND ("
    "substr(first_name_l, 1, 1) = substr(first_name_r, 1, 1) OR right(first_name_l, 1) = right(first_name_r, 1)"
    " OR least(length(first_name_l), length(first_name_r)) <= 2)"
)


def comparisons() -> list:
    """One comparison per kind of evidence; levels from most to least similar."""
    first_name = cl.CustomComparison(
        output_column_name="first_name",
        comparison_levels=[
            cll.NullLevel("first_name"),
            # Term frequencies: sharing "Mary" says less than sharing "Perpetua".
            cll.ExactMatchLevel("first_name").configure(tf_adjustment_column="first_name"),
            # A nickname, a one-key slip and a close spelling are the same kind of evidence;
            # one level for all keeps its m well estimated even when nicknames are rare.
            # Jaro-Winkler alone misses slips in short names (Joe/Jeo is 0.56) and a lower
            # cut-off lets household names through (Lisa/Linda 0.83, Mary/Gary 0.83).
            # Cheapest test first: most pairs reaching this level (a shared last name) fail all three.
            cll.Or(
                cll.JaroWinklerLevel("first_name", 0.92),
                cll.ArrayIntersectLevel("first_name_forms", min_intersection=1),
                # Damerau-Levenshtein is ~8x slower in DuckDB than Jaro-Winkler: it runs only on the
                # pairs a cheap necessary condition for one edit lets through.
                cll.And(cll.CustomLevel(_ONE_EDIT_POSSIBLE), cll.DamerauLevenshteinLevel("first_name", 1)),
            ).configure(label_for_charts="Nickname, one edit or Jaro-Winkler >= 0.92"),
            # First and last name typed into each other's fields.
            cll.ColumnsReversedLevel("first_name", "last_name", symmetrical=True)
            .configure(label_for_charts="First and last name swapped"),
            # Household names (Lisa/Linda) land here too; the model learns how little it says.
            cll.JaroWinklerLevel("first_name", 0.8),
            cll.ElseLevel(),
        ],
    )
    return [
        first_name,
        cl.NameComparison("last_name", jaro_winkler_thresholds=[0.92, 0.8]),  # exact level tf-adjusted
        _birth_date(),
        _location(),
    ]


# Two of year, month and day agree (one part mistyped), or day and month are swapped (a US
# date read as European). Integer parts in standard SQL: cheap, unlike an edit distance on
# the date as text, and the same on every engine Splink targets.
_BIRTH_DATE_SLIP = " OR ".join((
    "(CAST(EXTRACT(YEAR FROM birth_date_l) = EXTRACT(YEAR FROM birth_date_r) AS INT)"
    " + CAST(EXTRACT(MONTH FROM birth_date_l) = EXTRACT(MONTH FROM birth_date_r) AS INT)"
    " + CAST(EXTRACT(DAY FROM birth_date_l) = EXTRACT(DAY FROM birth_date_r) AS INT) >= 2)",
    "(EXTRACT(YEAR FROM birth_date_l) = EXTRACT(YEAR FROM birth_date_r)"
    " AND EXTRACT(MONTH FROM birth_date_l) = EXTRACT(DAY FROM birth_date_r)"
    " AND EXTRACT(DAY FROM birth_date_l) = EXTRACT(MONTH FROM birth_date_r))",
))


def _birth_date():
    """Exact, a typed slip, within a month / a year / ten years apart, else.

    More than ten years apart under the same first name is fixed as near-certain non-match
    rather than learned: the father and son of the same name at the same address (John
    Smith Sr. and Jr.) look to expectation maximisation like one person with a wrong birth
    date, and would teach it that such a gap is common among matches. Any other large gap
    is learned: in some sources (FEBRL) a birth date is replaced outright now and then.
    """
    dob = "birth_date"
    return cl.CustomComparison(
        output_column_name=dob,
        comparison_levels=[
            cll.NullLevel(dob),
            cll.ExactMatchLevel(dob),
            cll.CustomLevel(_BIRTH_DATE_SLIP, label_for_charts="One part typed wrong, or day and month swapped"),
            cll.AbsoluteDateDifferenceLevel(dob, threshold=1, metric="month", input_is_string=False),
            cll.AbsoluteDateDifferenceLevel(dob, threshold=1, metric="year", input_is_string=False),
            cll.AbsoluteDateDifferenceLevel(dob, threshold=10, metric="year", input_is_string=False),
            # More than ten years apart under the same first name: a father and the son named after him.
            # (`given_name` is a copy of first_name: a comparison reading first_name itself could not be
            # trained by the expectation-maximisation session that blocks on names.)
            cll.ExactMatchLevel("given_name").configure(
                m_probability=BIRTH_DATES_FAR_APART_M, fix_m_probability=True,
                label_for_charts="More than 10 years apart, same first name (Sr. and Jr.)"),
            cll.ElseLevel(),
        ],
    )


# The parts of an address, each with what counts as the same value despite a typo.
LOCATION_PARTS = {
    "street_number": cll.ExactMatchLevel("street_number"),
    "street_name": cll.JaroWinklerLevel("street_name", 0.9),
    "city": cll.JaroWinklerLevel("city", 0.9),
    "postal_code": cll.LevenshteinLevel("postal_code", 1),
    "region": cll.ExactMatchLevel("region"),
}


def _at_least(levels: list, k: int):
    """At least `k` of `levels` hold."""
    return cll.Or(*(cll.And(*combo) for combo in combinations(levels, k)))


def _location():
    """Street number, street, city, postal code and region as one comparison, by how many parts agree.

    The parts are far from independent (a street line comes with its postal code, city and
    region), and a model that scored them separately would count one shared address five
    times, which is exactly what lets a household outscore its different first names. So
    the levels count agreeing and differing parts: one typo or one blank part weakens the
    evidence, it does not veto it; a shared postal code and city alone is a neighbour.
    """
    alike = list(LOCATION_PARTS.values())
    blank = [cll.NullLevel(c) for c in LOCATION_PARTS]
    fine = [cll.Or(n, a) for n, a in zip(blank, alike)]  # blank on one side, or alike
    return cl.CustomComparison(
        output_column_name="location",
        comparison_levels=[
            cll.And(*blank),
            cll.And(*(cll.ExactMatchLevel(c) for c in LOCATION_PARTS))
            .configure(label_for_charts="Every part the same"),
            cll.And(*fine, _at_least(alike, 3)).configure(label_for_charts="Three or more parts alike, none differ"),
            cll.And(_at_least(fine, len(fine) - 1), _at_least(alike, 3))
            .configure(label_for_charts="Three or more parts alike, one differs"),
            _at_least(alike, 2).configure(label_for_charts="Two parts alike (e.g. same city and postal code)"),
            _at_least(alike, 1).configure(label_for_charts="One part alike"),
            cll.ElseLevel(),
        ],
    )


def settings(blocking_rules: list[str]) -> SettingsCreator:
    """The untrained model: parameters are estimated from the data on every run; `blocking_rules` are
    the prediction rules the comparison budget left (see `blocking.plan_blocking`)."""
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name=UNIQUE_ID,
        comparisons=comparisons(),
        blocking_rules_to_generate_predictions=list(blocking_rules),
        additional_columns_to_retain=[CLUSTER],
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=True,  # per-comparison weights, for review
        max_iterations=20,
    )
