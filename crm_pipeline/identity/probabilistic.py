"""Probabilistic person matching: extra match-graph edges for people with no shared identifier.

The deterministic pass joins records that share an email, a phone, an account or a cookie
login. The same person with a new email and a typo'd or shortened first name in another
brand shares none of those; this pass finds such pairs from name, birth date, address and
postal code with a Fellegi-Sunter model (Splink, DuckDB backend) trained unsupervised on
the records themselves, and returns them as weighted edges for the same graph.

It runs on its own in-memory DuckDB connection: the warehouse file is never opened, so
this pass cannot hold its single-writer lock, and the same SQL Splink generates here for
DuckDB it generates for Spark when a deployment outgrows one machine.
"""

from __future__ import annotations

import logging
import math
import time

from dataclasses import dataclass, field

import duckdb
import pandas as pd
import pyarrow as pa
from splink import DuckDBAPI, Linker, block_on
from splink.internals.splink_dataframe import SplinkDataFrame

from crm_pipeline.identity import splink_settings as model
from crm_pipeline.identity.blocking import BlockingBudget, BlockingPlan, plan_blocking
from crm_pipeline.identity.nicknames import nickname_rows

logger = logging.getLogger(__name__)


class _RepairedLevelsFilter(logging.Filter):
    """Splink warns when a comparison level was not observed in training; `_guarded` repairs exactly
    those levels, so the warning is noise in every run log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "not observed in dataset" not in record.getMessage()


logging.getLogger("splink").addFilter(_RepairedLevelsFilter())
for _name in ("splink.internals.m_training", "splink.internals.expectation_maximisation",
              "splink.internals.estimate_u"):
    logging.getLogger(_name).addFilter(_RepairedLevelsFilter())
# None leaves Splink's logger to the host's logging setup (Dagster captures warnings);
# set logging.INFO to watch training iterations when tuning.
LOG_LEVEL: int | None = None

# The columns the model reads; other columns of a person-node frame (phone ...) are accepted
# and ignored (see splink_settings for why). OPTIONAL_COLUMNS may be absent (then blank).
INPUT_COLUMNS = ("node_id", "cluster_id", "first_name", "last_name", "birth_date", "address_line1",
                 "postal_code", "country")
OPTIONAL_COLUMNS = ("city", "region")
OUTPUT_COLUMNS = ("node_a", "node_b", "match_probability")
# The prepared records Splink reads (`prepare_sql`), with the blocking columns `blocking.plan_blocking` adds.
RECORDS = "person_records"
# Below this many records (with a name) the model has too few pairs to learn from, and a
# person's duplicate is better left to the deterministic pass than to a guessed model.
MIN_RECORDS = 50
# Pairs sampled to learn how often non-matches agree by chance (u): enough to see the
# rarest level (exact birth date, about 1 in 25,000) a few dozen times, whatever the number of
# records. (500k gave the same pairs on the generator but 3 fewer on FEBRL 4.)
U_MAX_PAIRS = 1.2e6
# Pairs per expectation-maximisation session; sampled down (deterministically) above this.
# (500k: the same pairs at 100k records, but at 1M precision 0.933 -> 0.930, 260 more false pairs.)
EM_MAX_PAIRS = 2e6
# Candidate pairs scored per chunk of predict. Splink materialises a chunk's blocked pairs (and
# the records they touch) before scoring them, and keeps only the pairs over SCORED_FLOOR: so
# the working set, and what DuckDB may spill, follows this figure, not the whole budget.
PREDICT_CHUNK_PAIRS = 20_000_000
# Pairs scored below this probability are dropped at once: they can never be accepted, and
# they add nothing to the expected count of true pairs the threshold is chosen from.
SCORED_FLOOR = 0.001
# The chosen threshold never goes below an even chance.
MIN_THRESHOLD = 0.5
# A pair that agrees on names and has nothing else to compare (no birth date or address on
# one side) is a namesake as often as a person: never merged by the model, only offered
# for review. SQL over Splink's predictions (a null level weighs exactly 0).
_MORE_THAN_NAMES = "(mw_birth_date <> 0 OR mw_location <> 0)"
# A level the matches found never showed still has some chance among matches: a level seen
# 0 times among N matches gets at most this m, so that no single field is an absolute veto
# (a moved or mistyped address, a wrong birth date) unless the model says so on purpose.
MIN_M = 1e-3
# However many matches the deterministic pass joined, at least this share of the expected
# matching pairs is assumed to be left for the probabilistic pass (so the prior stays > 0).
MIN_REMAINING_SHARE = 0.01
# A birth date or street address shared by more records than this is a placeholder
# (1900-01-01, "Unknown"), not evidence; it is blanked so it neither blocks nor scores.
JUNK_SHARE, JUNK_MIN = 0.001, 100


@dataclass
class MatchResult:
    """What the probabilistic pass decided, and what a reviewer needs to see why."""

    pairs: pd.DataFrame  # node_a, node_b, match_probability: the accepted edges
    threshold: float | None = None  # the match probability a pair needed
    # pairs the blocking rules let through to scoring, as the comparison budget counts them (an upper bound:
    # a pair two rules find is counted twice but scored once)
    candidate_pairs: int = 0
    model: dict | None = None  # Splink's trained model (settings with m and u per level)
    # pairs just below and above the threshold, with each comparison's weight (bits)
    borderline: pd.DataFrame = field(default_factory=pd.DataFrame)
    # what the comparison budget did to each blocking rule, and the keys it left out (see blocking.py)
    blocking: pd.DataFrame = field(default_factory=pd.DataFrame)
    oversized_keys: pd.DataFrame = field(default_factory=pd.DataFrame)
    seconds: dict[str, float] = field(default_factory=dict)  # per step: prepare, blocking, training, predict, pairs


def probabilistic_pairs(records: pd.DataFrame, *, threshold: float | None = None, max_pairs_per_record: int = 5,
                        seed: int = 7, blocking: BlockingBudget | None = None) -> pd.DataFrame:
    """Pairs of person records in different deterministic clusters that are likely one person.

    `records` has one row per person node (see INPUT_COLUMNS; standardized values, may be
    missing). Returns `node_a < node_b, match_probability`, one row per pair, only
    pairs scoring at least `threshold` (None: chosen from the trained model, see
    `model_threshold`) whose nodes are in different `cluster_id`s. Each record keeps at
    most `max_pairs_per_record` edges (its most probable), so one bad record cannot
    chain many clusters into one. The same input and `seed` give the same output. With
    fewer than MIN_RECORDS named records there is too little to train on and the result
    is empty. `blocking` holds candidate pairs to a budget (default: BlockingBudget()).
    """
    return match_people(records, threshold=threshold, max_pairs_per_record=max_pairs_per_record, seed=seed,
                        blocking=blocking).pairs


def lap_timer(seconds: dict[str, float]):
    """A `lap(step)` that records in `seconds` the time since the last lap (or since now) under `step`: the
    pass's own steps, on either engine, for the asset's metadata."""
    clock = time.perf_counter()

    def lap(step: str) -> None:
        seconds[step] = round(time.perf_counter() - clock - sum(seconds.values()), 2)

    return lap


def match_people(records: pd.DataFrame, *, threshold: float | None = None, max_pairs_per_record: int = 5,
                 seed: int = 7, borderline_sample: int = 20, duckdb_settings: dict | None = None,
                 blocking: BlockingBudget | None = None) -> MatchResult:
    """`probabilistic_pairs` with the trained model, the threshold used and borderline pairs.

    `duckdb_settings` (memory_limit, threads, temp_directory) bound the pass's own DuckDB
    connection as the warehouse settings bound the warehouse's: unbounded, it may take most
    of the machine's memory on a million people. They never change the result.
    """
    _check(records, threshold, max_pairs_per_record)
    empty = MatchResult(_empty())
    if len(records) < MIN_RECORDS:
        return empty
    con = duckdb.connect(":memory:", config={k: str(v) for k, v in (duckdb_settings or {}).items() if v})
    seconds = {}
    lap = lap_timer(seconds)
    try:
        named = _prepare(con, _input_frame(records))
        if named < MIN_RECORDS:
            return empty
        lap("prepare")
        plan = _blocking_plan(con, blocking)
        lap("blocking")
        found = MatchResult(_empty(), blocking=plan.report, oversized_keys=plan.oversized_keys, seconds=seconds)
        if not plan.rules:
            logger.warning("probabilistic_pairs: the comparison budget left no blocking rule; no probabilistic edges")
            return found
        linker = _trained_linker(DuckDBAPI(con).register("person_records"), con, seed, plan.rules)
        lap("training")
        if linker is None:
            return found
        # Chunks of the left-hand records: each chunk's blocked pairs and comparison vectors are built,
        # thresholded and dropped before the next, so memory and spill stay bounded.
        chunks = max(1, math.ceil(plan.comparisons / PREDICT_CHUNK_PAIRS))
        predictions = linker.inference.predict(threshold_match_probability=SCORED_FLOOR,
                                               num_chunks_left=chunks, num_chunks_right=1).physical_name
        lap("predict")
        found.threshold = model_threshold(con, predictions) if threshold is None else float(threshold)
        found.pairs = _accepted_pairs(con, predictions, found.threshold, max_pairs_per_record)
        found.candidate_pairs, found.model = plan.comparisons, _stored_model(linker)
        found.borderline = _borderline(con, predictions, found.threshold, borderline_sample)
        lap("pairs")
        return found
    finally:
        con.close()


def candidate_pairs(records: pd.DataFrame, blocking: BlockingBudget | None = None) -> pd.DataFrame:
    """`node_a, node_b` of every cross-cluster pair the blocking rules send to scoring (no training)."""
    _check(records, None, 1)
    con = duckdb.connect(":memory:")
    try:
        _prepare(con, _input_frame(records))
        plan = _blocking_plan(con, blocking)
        if not plan.rules:
            return pd.DataFrame({"node_a": pd.Series(dtype="str"), "node_b": pd.Series(dtype="str")})
        linker = Linker(DuckDBAPI(con).register("person_records"), model.settings(plan.rules), log_level=LOG_LEVEL)
        blocked = linker.inference.compute_blocked_pairs_for_predict().physical_name
        return con.sql(f"SELECT DISTINCT least(join_key_l, join_key_r) AS node_a, "
                       f"greatest(join_key_l, join_key_r) AS node_b FROM {blocked}").df()
    finally:
        con.close()


def _blocking_plan(con: duckdb.DuckDBPyConnection, budget: BlockingBudget | None) -> BlockingPlan:
    """The prediction rules held to the comparison budget, with their block columns added to person_records."""
    return plan_blocking(con, "person_records", model.PREDICTION_BLOCKING_FIELDS, budget or BlockingBudget(),
                         extra_condition=model.OTHER_CLUSTER, group=model.CLUSTER)


def _stored_model(linker) -> dict:
    """The trained model as Splink saves it, less the random id it gives each linker, so that the same
    records give the same stored model on every run and backend."""
    return {k: v for k, v in linker.misc.save_model_to_json().items() if k != "linker_uid"}


def model_threshold(con: duckdb.DuckDBPyConnection, predictions: str) -> float:
    """The match probability that maximises the F1 the model itself expects.

    Read as calibrated, the probabilities say how many of the scored pairs are true
    (their sum) and how many of those a threshold keeps (the sum above it), so each
    candidate threshold has an expected F1 = 2 * kept true / (kept + true). The best is
    taken, never below an even chance (a pair the model thinks more likely apart than
    together is not merged). Data sets differ in how many duplicates they hold, so a
    fixed cut-off tuned on one is wrong on the next; this one moves with the data.
    """
    best = con.sql(f"""
        WITH scored AS (SELECT match_probability AS p FROM {predictions}
                        WHERE cluster_id_l <> cluster_id_r AND {_MORE_THAN_NAMES}),
        ranked AS (
            SELECT p, sum(p) OVER (ORDER BY p DESC ROWS UNBOUNDED PRECEDING) AS kept_true,
                   row_number() OVER (ORDER BY p DESC) AS kept
            FROM scored
        )
        SELECT p FROM ranked, (SELECT sum(p) AS total FROM scored) t
        ORDER BY 2 * kept_true / (kept + total) DESC, p DESC LIMIT 1
    """).fetchone()
    return max(MIN_THRESHOLD, round(float(best[0]), 9)) if best else 1.0


def _check(records: pd.DataFrame, threshold: float | None, max_pairs_per_record: int) -> None:
    missing = [c for c in INPUT_COLUMNS if c not in records.columns]
    if missing:
        raise ValueError(f"probabilistic_pairs: records lack column(s) {', '.join(missing)}")
    if records["node_id"].duplicated().any() or records[["node_id", "cluster_id"]].isna().any(axis=None):
        raise ValueError("probabilistic_pairs: node_id must be unique, and node_id and cluster_id present")
    if (threshold is not None and not 0 < threshold <= 1) or max_pairs_per_record < 1:
        raise ValueError("probabilistic_pairs: threshold must be in (0, 1] and max_pairs_per_record >= 1")


def _borderline(con: duckdb.DuckDBPyConnection, predictions: str, threshold: float, sample: int) -> pd.DataFrame:
    """The `sample` cross-cluster pairs whose weight lies nearest the threshold's, on either side,
    with each comparison's weight in bits (log2 of its Bayes factor): where the model hesitates."""
    columns = [r[0] for r in con.sql(f"DESCRIBE {predictions}").fetchall()]
    return sort_borderline(con.sql(borderline_sql(columns, predictions, threshold, sample)).df())


def sort_borderline(sample: pd.DataFrame) -> pd.DataFrame:
    """The borderline sample as shown and stored: most probable first."""
    return sample.sort_values(["match_probability", "node_a", "node_b"], ascending=[False, True, True],
                              ignore_index=True)


def borderline_sql(columns: list[str], predictions: str, threshold: float, sample: int) -> str:
    """The SELECT of `_borderline`'s sample (unsorted) over `predictions`, whose columns are `columns`."""
    parts = [c[3:] for c in columns if c.startswith("mw_") and not c.startswith("mw_tf_adj_")]
    weights = ", ".join(f"round(mw_{p}" + (f" + mw_tf_adj_{p}" if f"mw_tf_adj_{p}" in columns else "")
                        + f", 2) AS w_{p}" for p in parts)
    cut = math.log2(threshold / (1 - threshold)) if threshold < 1 else float("inf")
    return f"""
        SELECT least(node_id_l, node_id_r) AS node_a, greatest(node_id_l, node_id_r) AS node_b,
               round(match_probability, 6) AS match_probability, round(match_weight, 2) AS match_weight,
               {weights}
        FROM {predictions}
        WHERE cluster_id_l <> cluster_id_r
        ORDER BY abs(match_weight - {cut!r}), node_a, node_b
        LIMIT {int(sample)}
    """


def _input_frame(records: pd.DataFrame) -> pd.DataFrame:
    frame = records.loc[:, list(INPUT_COLUMNS)].copy()
    for column in OPTIONAL_COLUMNS:
        frame[column] = records[column] if column in records.columns else None
    return frame


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"node_a": pd.Series(dtype="str"), "node_b": pd.Series(dtype="str"),
                         "match_probability": pd.Series(dtype="float64")})


def _prepare(con: duckdb.DuckDBPyConnection, records: pd.DataFrame) -> int:
    """Load the records as the table Splink reads; return how many have a name to compare.

    Adds the columns the model needs (name forms for nicknames, last-name initial for
    blocking), cuts US ZIP+4 codes to the ZIP, and blanks empty strings and placeholder
    values, so "" never equals "" and 1900-01-01 is no evidence.
    """
    con.register("records_in", _as_arrow(records))
    con.execute("CREATE TABLE nicknames (name VARCHAR, formal VARCHAR)")
    con.executemany("INSERT INTO nicknames VALUES (?, ?)", nickname_rows())
    junk_limit = max(JUNK_MIN, int(len(records) * JUNK_SHARE))
    con.execute(f"CREATE TABLE {RECORDS} AS {prepare_sql('records_in', 'nicknames', junk_limit)} ORDER BY node_id")
    con.unregister("records_in")
    return named_count(con)


def named_count(con, table: str = RECORDS) -> int:
    """How many prepared records (of `table`) have a name to compare."""
    return con.sql(f"SELECT count(*) FROM {table} WHERE first_name IS NOT NULL "
                   "OR last_name IS NOT NULL").fetchone()[0]


def prepare_sql(source: str, nicknames: str, junk_limit: int) -> str:
    """The SELECT of the table Splink reads (`RECORDS`) from `source` (INPUT_COLUMNS and OPTIONAL_COLUMNS) and
    `nicknames` (name, formal): stage SQL in the DuckDB dialect, which `warehouse.dialects.render` gives Spark.

    Adds the columns the model needs (name forms for nicknames, last-name initial for
    blocking), cuts US ZIP+4 codes to the ZIP, and blanks empty strings and placeholder
    values (shared by more than `junk_limit` records), so "" never equals "" and 1900-01-01 is no evidence.
    """
    return f"""
        WITH src AS (
            SELECT CAST(node_id AS VARCHAR) AS node_id, CAST(cluster_id AS VARCHAR) AS cluster_id,
                   NULLIF(lower(trim(CAST(first_name AS VARCHAR))), '') AS first_name,
                   NULLIF(lower(trim(CAST(last_name AS VARCHAR))), '') AS last_name,
                   TRY_CAST(birth_date AS DATE) AS birth_date,
                   NULLIF(lower(trim(CAST(address_line1 AS VARCHAR))), '') AS address_line1,
                   NULLIF(lower(trim(CAST(city AS VARCHAR))), '') AS city,
                   NULLIF(upper(trim(CAST(region AS VARCHAR))), '') AS region,
                   -- a US ZIP+4 is the same place as its 5-digit ZIP
                   CASE WHEN upper(CAST(country AS VARCHAR)) = 'US'
                        THEN NULLIF(left(trim(CAST(postal_code AS VARCHAR)), 5), '')
                        ELSE NULLIF(upper(trim(CAST(postal_code AS VARCHAR))), '')
                   END AS postal_code
            FROM {source}
        ),
        junk_dates AS (SELECT birth_date FROM src WHERE birth_date IS NOT NULL
                       GROUP BY birth_date HAVING count(*) > {int(junk_limit)}),
        junk_addresses AS (SELECT address_line1 FROM src WHERE address_line1 IS NOT NULL
                           GROUP BY address_line1 HAVING count(*) > {int(junk_limit)}),
        forms AS (SELECT lower(name) AS name, list(DISTINCT lower(formal)) AS formals FROM {nicknames} GROUP BY 1),
        kept AS (
            SELECT src.node_id, src.cluster_id, src.first_name, src.last_name,
                   CASE WHEN jd.birth_date IS NULL THEN src.birth_date END AS birth_date,
                   CASE WHEN ja.address_line1 IS NULL THEN src.address_line1 END AS address_line1,
                   src.city, src.region, src.postal_code
            FROM src
            LEFT JOIN junk_dates AS jd ON jd.birth_date = src.birth_date
            LEFT JOIN junk_addresses AS ja ON ja.address_line1 = src.address_line1
        )
        SELECT kept.node_id, kept.cluster_id, kept.first_name, kept.first_name AS given_name, kept.last_name,
               CASE WHEN kept.first_name IS NOT NULL
                    THEN list_sort(list_distinct(list_append(coalesce(forms.formals, []), kept.first_name)))
               END AS first_name_forms,
               left(kept.last_name, 1) AS last_initial,
               kept.birth_date, kept.address_line1,
               -- "12a harbour view rd" -> number "12a", street "harbour view rd"
               NULLIF(regexp_extract(kept.address_line1, '^([0-9]+[a-z]?)\\b', 1), '') AS street_number,
               NULLIF(trim(regexp_replace(kept.address_line1, '^[0-9]+[a-z]?\\b[ ,]*', '')), '') AS street_name,
               kept.city, kept.region, kept.postal_code
        FROM kept
        LEFT JOIN forms ON forms.name = kept.first_name"""


def _as_arrow(records: pd.DataFrame):
    """The frame as an Arrow table, which DuckDB reads column by column at C speed (a pandas frame of Python
    strings it reads value by value: about twice the whole prepare step at a million records). A column of
    mixed Python types Arrow cannot type is left to DuckDB's own pandas reader."""
    try:
        return pa.Table.from_pandas(records, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return records


def _trained_linker(records: SplinkDataFrame, con: duckdb.DuckDBPyConnection, seed: int,
                    blocking_rules: list[str]) -> Linker | None:
    """Estimate the model unsupervised; None when the data cannot support an estimate.

    The prior (how often two random records match) comes from near-certain rules, the u
    probabilities (chance agreement) from a seeded random sample of pairs, the m
    probabilities (agreement among true matches) from expectation maximisation. Between
    steps the model is passed through `_guarded` and a fresh Linker (Splink's public way
    to set parameters); the settings were validated by the first, so the later ones skip it
    (validation costs more than the rest of building a Linker).
    """
    recall = model.DETERMINISTIC_RECALL * _rule_coverage(con)
    rows = con.sql("SELECT count(*) FROM person_records").fetchone()[0]
    u_floor = 1 / min(U_MAX_PAIRS, rows * (rows - 1) / 2)
    linker = Linker(records, model.settings(blocking_rules), log_level=LOG_LEVEL)
    if recall <= 0:
        return None
    try:
        linker.training.estimate_probability_two_random_records_match(list(model.DETERMINISTIC_RULES), recall=recall)
    except ValueError:  # more rule matches than the recall allows: not a population of people
        logger.warning("probabilistic_pairs: deterministic rules matched too many pairs; no probabilistic edges")
        return None
    if linker.misc.save_model_to_json()["probability_two_random_records_match"] <= 0:
        logger.info("probabilistic_pairs: no near-certain pairs to learn from; no probabilistic edges")
        return None
    linker.training.estimate_u_using_random_sampling(max_pairs=U_MAX_PAIRS, seed=seed, num_chunks=1)
    linker = Linker(records, _guarded(linker.misc.save_model_to_json(), u_floor), log_level=LOG_LEVEL,
                    validate_settings=False)
    for columns in model.EM_BLOCKING_COLUMNS:
        # Sample only when needed: below max_pairs, Splink's sampling probe finds nothing and warns.
        sample = _pair_count(con, columns) > EM_MAX_PAIRS
        try:
            # Iterations over the distinct comparison vectors, not over every pair with its name frequencies:
            # half the session's time, and the same pairs on the generator (100k and 1M records, 500k-pair sessions)
            # and FEBRL 1, 2 and 4 (term frequencies still weigh every pair scored).
            linker.training.estimate_parameters_using_expectation_maximisation(
                block_on(*columns), max_pairs=EM_MAX_PAIRS if sample else None,
                estimate_without_term_frequencies=True)
        except ValueError:  # Splink 5 rejects an m that EM drove to 0: too few pairs in the block to learn from
            logger.warning("probabilistic_pairs: too few pairs to train on (%s); no probabilistic edges", columns)
            return None
    trained = _guarded(linker.misc.save_model_to_json(), u_floor)
    trained["probability_two_random_records_match"] = _cross_cluster_prior(
        con, trained["probability_two_random_records_match"])
    return Linker(records, trained, log_level=LOG_LEVEL, validate_settings=False)


def _cross_cluster_prior(con: duckdb.DuckDBPyConnection, prior: float) -> float:
    """How often two records in different deterministic clusters are one person.

    The trained prior counts every matching pair, but the pairs this pass scores are the
    ones the deterministic pass left apart: the matches it already joined are taken out
    of the expected count before it is spread over the remaining pairs. Data with no
    shared emails or phones (FEBRL) keeps its prior; data where identifiers joined most
    people (a retailer's own) gets the lower one it needs, or namesakes would merge.
    """
    total, within = con.sql("""
        SELECT sum(n) * (sum(n) - 1) / 2, sum(n * (n - 1) / 2)
        FROM (SELECT count(*) AS n FROM person_records GROUP BY cluster_id)
    """).fetchone()
    across = float(total) - float(within)
    if across <= 0:
        return prior
    remaining = prior * float(total) - float(within)
    return min(prior, max(remaining, MIN_REMAINING_SHARE * prior * float(total)) / across)


def _pair_count(con: duckdb.DuckDBPyConnection, columns: tuple[str, ...]) -> int:
    """How many record pairs agree on all `columns` (none missing): an equi-join's size."""
    keys = ", ".join(columns)
    present = " AND ".join(f"{c} IS NOT NULL" for c in columns)
    return con.sql(f"SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM "
                   f"(SELECT count(*) AS n FROM person_records WHERE {present} GROUP BY {keys})").fetchone()[0]


def _rule_coverage(con: duckdb.DuckDBPyConnection) -> float:
    """Share of record pairs on which at least one deterministic rule has the fields it needs."""
    one, two = model.RULE_FIELDS
    a, b, both = con.sql(f"""
        SELECT avg(CAST({one} AS INT)), avg(CAST({two} AS INT)), avg(CAST(({one}) AND ({two}) AS INT))
        FROM person_records
    """).fetchone()
    return float(a**2 + b**2 - both**2)


def _guarded(model_dict: dict, u_floor: float) -> dict:
    """Two repairs for what a finite sample cannot teach, applied to Splink's model dict.

    A level never seen among the sampled random pairs (say, a near-identical address in
    the same postal code) gets u = 1 / pairs sampled, an upper bound on its chance rate;
    Splink would otherwise fall back to a generic default that makes strong evidence weak.
    A level never seen among the matches expectation maximisation found gets the m of the
    comparison's rarest level. And such a level (a postal-code typo, in a small file) must
    not turn into a veto: no level counts as less evidence than the next, less similar one.
    A level that random pairs do show is never given an m below MIN_M (EM's zero is "not
    seen in this sample", not "impossible"), and no m exceeds 1.
    """
    for comparison in model_dict["comparisons"]:
        levels = [level for level in comparison["comparison_levels"] if not level.get("is_null_level")]
        rarest_m = min((level["m_probability"] for level in levels if "m_probability" in level), default=u_floor)
        weaker_factor = 0.0
        for level in reversed(levels):  # from "all other" up to the exact match
            seen = "u_probability" in level  # among the random pairs
            level.setdefault("u_probability", u_floor)
            level.setdefault("m_probability", rarest_m)
            if seen and not level.get("fix_m_probability"):
                level["m_probability"] = max(level["m_probability"], MIN_M)
            level["m_probability"] = min(1.0, max(level["m_probability"], weaker_factor * level["u_probability"]))
            weaker_factor = level["m_probability"] / level["u_probability"]
    return model_dict


def _accepted_pairs(con: duckdb.DuckDBPyConnection, predictions: str, threshold: float,
                    max_per_record: int) -> pd.DataFrame:
    """Threshold, drop same-cluster pairs, and keep each record's `max_per_record` best edges.

    A pair survives only if it is among the best of both its records (ties broken by node
    id, so the result is deterministic). Probabilities are rounded to 9 places so that
    last-bit differences of parallel sums never show.
    """
    return con.sql(accepted_pairs_sql(predictions, threshold, max_per_record)).df()


def accepted_pairs_sql(predictions: str, threshold: float, max_per_record: int) -> str:
    """The SELECT of `_accepted_pairs` (node_a, node_b, match_probability) over Splink's `predictions` table."""
    return f"""
        WITH pairs AS (
            SELECT least(node_id_l, node_id_r) AS node_a, greatest(node_id_l, node_id_r) AS node_b,
                   round(match_probability, 9) AS match_probability
            FROM {predictions}
            -- compared as rounded, as `model_threshold` rounds the probability it picks: the pair that
            -- set the threshold is kept whichever way its last digits fall
            WHERE round(match_probability, 9) >= {float(threshold)!r} AND cluster_id_l <> cluster_id_r
              AND {_MORE_THAN_NAMES}
        ),
        ends AS (
            SELECT node_a AS node_id, * FROM pairs
            UNION ALL
            SELECT node_b AS node_id, * FROM pairs
        ),
        ranked AS (
            SELECT node_a, node_b, match_probability,
                   row_number() OVER (PARTITION BY node_id
                                      ORDER BY match_probability DESC, node_a, node_b) AS rank
            FROM ends
        )
        SELECT node_a, node_b, any_value(match_probability) AS match_probability
        FROM ranked
        GROUP BY node_a, node_b
        HAVING max(rank) <= {int(max_per_record)}
        ORDER BY node_a, node_b
    """
