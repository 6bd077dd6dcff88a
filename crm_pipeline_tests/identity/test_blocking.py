"""The comparison budget for blocking: a key shared by thousands pairs nobody, the largest blocks go first when
the rules ask for too many pairs, and a data engineer is told which rule lost what."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pytest

from crm_pipeline.identity import splink_settings as model
from crm_pipeline.identity.blocking import BlockingBudget, plan_blocking
from crm_pipeline.identity.config import load_identity_config
from crm_pipeline.identity.match_store import stored_match, store_match
from crm_pipeline.identity.probabilistic import _input_frame, _prepare, match_people
from crm_pipeline.settings import SettingsError
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline.warehouse.identity_schema import create_identity_tables
from crm_pipeline_tests.identity.test_probabilistic import PLANTED, THRESHOLD, _background

RULES = (("street", "number"), ("last", "born"))


def _table(rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute("CREATE TABLE people (id VARCHAR, street VARCHAR, number VARCHAR, last VARCHAR, born DATE)")
    con.executemany("INSERT INTO people VALUES (?, ?, ?, ?, ?)", rows)
    return con


def _block_pairs(con, k: int) -> set[tuple[str, str]]:
    return set(con.sql(f"SELECT l.id, r.id FROM people l JOIN people r ON l.block_{k} = r.block_{k} "
                       "AND l.id < r.id").fetchall())


def test_a_test_address_shared_by_thousands_is_left_out_by_key_and_named():
    test_address = [(f"t{i:04d}", "test street", "1", f"name{i}", None) for i in range(1500)]
    people = [("a1", "oak st", "12", "smith", date(1980, 1, 2)), ("a2", "oak st", "12", "smyth", date(1980, 1, 2)),
              ("b1", "elm st", "3", "jones", date(1970, 5, 5)), ("b2", "pine rd", "9", "jones", date(1970, 5, 5))]
    con = _table(test_address + people)
    plan = plan_blocking(con, "people", RULES, BlockingBudget(comparisons_per_record=1000, max_block_size=1000))

    assert plan.oversized_keys.to_dict("records") == [{"rule": "street, number", "key": "test street | 1",
                                                       "records": 1500}]
    report = plan.report.set_index("rule")
    assert report.loc["street, number", "status"] == "tightened"
    assert "1 key(s) shared by more than 1,000 records" in report.loc["street, number", "reason"]
    assert report.loc["last, born", "status"] == "kept"
    # The test address pairs nobody; the real address and the shared name and birth date still pair.
    assert _block_pairs(con, 0) == {("a1", "a2")}
    assert _block_pairs(con, 1) == {("b1", "b2")}
    assert plan.comparisons == 2


def test_over_budget_the_largest_blocks_go_first_across_rules_and_the_total_holds():
    # Rule 0: blocks of 2, 2 and 12 records; rule 1: one block of 30 (a common name born on one day).
    rows = [(f"s{i}", "oak st", "1", f"x{i}", None) for i in range(2)]
    rows += [(f"u{i}", "elm st", "2", f"y{i}", None) for i in range(2)]
    rows += [(f"v{i}", "main st", "3", f"z{i}", None) for i in range(12)]
    rows += [(f"w{i}", None, None, "smith", date(1990, 1, 1)) for i in range(30)]
    con = _table(rows)
    records = len(rows)  # 46: a budget of 2 per record allows 92 of the 503 pairs asked for
    plan = plan_blocking(con, "people", RULES, BlockingBudget(comparisons_per_record=2, max_block_size=1000))

    assert plan.budget == 2 * records and plan.comparisons <= plan.budget
    assert plan.block_cap == 12  # 1 + 1 + 66 = 68 pairs fit; the block of 30 (435 pairs) does not
    report = plan.report.set_index("rule")
    assert report.loc["street, number", "status"] == "kept"
    assert report.loc["last, born", "status"] == "skipped"
    assert report.loc["last, born", "comparisons"] == 435 and report.loc["last, born", "comparisons_kept"] == 0
    assert "to hold all rules to 92 comparisons (2 per record x 46 records)" in report.loc["last, born", "reason"]
    assert plan.rules == ["l.block_0 = r.block_0"]  # a skipped rule is not scored at all


def test_within_budget_the_block_columns_pair_exactly_what_the_rules_fields_would():
    records = pd.concat([_background(600), PLANTED], ignore_index=True)
    con = duckdb.connect(":memory:")
    _prepare(con, _input_frame(records))
    con.execute("CREATE TABLE plain AS SELECT * FROM person_records")
    plan = plan_blocking(con, "person_records", model.PREDICTION_BLOCKING_FIELDS, BlockingBudget(),
                         extra_condition=model.OTHER_CLUSTER)
    assert (plan.report["status"] == "kept").all() and len(plan.rules) == len(model.PREDICTION_BLOCKING_FIELDS)
    for k, fields in enumerate(model.PREDICTION_BLOCKING_FIELDS):
        on = " AND ".join(f"l.{f} = r.{f}" for f in fields)
        by_fields = con.sql(f"SELECT l.node_id, r.node_id FROM plain l JOIN plain r ON {on} "
                            "AND l.node_id < r.node_id").fetchall()
        by_block = con.sql(f"SELECT l.node_id, r.node_id FROM person_records l JOIN person_records r "
                           f"ON l.block_{k} = r.block_{k} AND l.node_id < r.node_id").fetchall()
        assert sorted(by_block) == sorted(by_fields), fields


@pytest.fixture(scope="module")
def tight():
    records = pd.concat([_background(), PLANTED], ignore_index=True)
    return records, match_people(records, threshold=THRESHOLD, blocking=BlockingBudget(comparisons_per_record=3))


def test_a_tight_budget_holds_the_candidate_pairs_and_says_which_rules_it_cut(tight):
    records, result = tight
    assert 0 < result.candidate_pairs <= 3 * len(records)
    cut = result.blocking[result.blocking["status"] != "kept"]
    # One city: the rule on city and last name is in effect last name alone, the largest blocks of all.
    assert cut.set_index("rule").loc["city, last_name", "status"] == "tightened"
    assert cut["reason"].str.contains("3 per record").all()
    # Small blocks survive: the typo'd first name is still found through last name and birth date.
    assert ((result.pairs.node_a == "typo_a") & (result.pairs.node_b == "typo_b")).any()


def test_a_reused_pass_reports_the_blocking_plan_of_the_pass_that_made_it(tight, tmp_path):
    _, result = tight
    engine = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    create_identity_tables(engine)
    with engine.begin() as conn:
        store_match(conn, "digest", result, date(2025, 1, 1))
    with engine.connect() as conn:
        again = stored_match(conn, "digest")
    pd.testing.assert_frame_equal(again.blocking, result.blocking, check_dtype=False)
    assert again.model == result.model and again.candidate_pairs == result.candidate_pairs


def test_a_budget_of_nothing_stops_the_run_naming_the_key(tmp_path):
    path = tmp_path / "identity.yaml"
    path.write_text("probabilistic:\n  blocking:\n    comparisons_per_record: 0\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="identity.probabilistic.blocking.comparisons_per_record"):
        load_identity_config(path)
    path.write_text("probabilistic:\n  blocking:\n    max_block_size: 500\n", encoding="utf-8")
    assert load_identity_config(path).blocking == BlockingBudget(comparisons_per_record=10, max_block_size=500)


def test_predicting_in_chunks_gives_the_pairs_of_one_pass(tight, monkeypatch):
    """A million people are scored a chunk of records at a time (bounded memory and spill); the pairs, threshold
    and borderline sample are those of scoring everything at once."""
    from crm_pipeline.identity import probabilistic

    records, whole = tight
    monkeypatch.setattr(probabilistic, "PREDICT_CHUNK_PAIRS", whole.candidate_pairs // 4 + 1)  # four chunks
    chunked = match_people(records, threshold=THRESHOLD, blocking=BlockingBudget(comparisons_per_record=3))
    pd.testing.assert_frame_equal(chunked.pairs, whole.pairs)
    pd.testing.assert_frame_equal(chunked.borderline, whole.borderline)
    assert chunked.threshold == whole.threshold
