"""`crm-pipeline audiences validate FILE` lists every problem of the file at once, each naming audience and key."""

from __future__ import annotations

import pytest

from crm_pipeline.audiences.config import load_audiences, validate_file
from crm_pipeline.audiences.rules import RuleError, parse_rule
from crm_pipeline.cli import main

BAD_FILE = """
include_defaults: maybe
colour: blue
audiences:
  two_bad_keys:
    label: 5
    consent: sometimes
    rule: {field: revenue, ">=": 1}
  bad_rule_items:
    rule:
      all:
        - {field: revenue, ">=": "lots"}
        - {field: nope, "<": 3}
        - any:
            - {event: purchase, brand: "", within_days: -1}
            - {field: country, in: ["US", 7]}
  fine_one: {rule: {field: order_count, ">=": 1}}
  cross_wrong: {type: cross_brand, pattern: everywhere, min_brands: 0}
cross_brand:
  sometimes: {field: order_count, ">=": 1}
"""

EXPECTED = [
    "{f}: colour: unknown key",
    "{f}: include_defaults: expected true or false, got 'maybe'",
    "audience 'two_bad_keys': label: expected text",
    "audience 'two_bad_keys': consent: expected one of email, none, got 'sometimes'",
    "audience 'bad_rule_items': rule.all[0].>=: expected a float value",
    "audience 'bad_rule_items': rule.all[1].field: unknown field 'nope'",
    "audience 'bad_rule_items': rule.all[2].any[0].brand: expected non-empty text",
    "audience 'bad_rule_items': rule.all[2].any[0].within_days: expected a whole number of days",
    "audience 'bad_rule_items': rule.all[2].any[1].in[1]: expected a string value",
    "audience 'cross_wrong': pattern: expected one of",
    "audience 'cross_wrong': min_brands: expected a whole number from 1, got 0",
    "cross_brand.sometimes: unknown key",
]


@pytest.fixture
def bad_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_FILE, encoding="utf-8")
    return path


def test_validate_reports_every_problem_naming_audience_and_key(bad_file, capsys):
    assert main(["audiences", "validate", str(bad_file)]) == 1
    printed = capsys.readouterr().err.strip().splitlines()
    assert len(printed) == len(EXPECTED), printed
    for line, start in zip(printed, EXPECTED):
        assert line.startswith(start.format(f=bad_file)), (line, start)
    assert validate_file(bad_file) == printed


def test_loading_the_file_raises_one_error_carrying_every_problem(bad_file):
    with pytest.raises(RuleError, match=f"^{len(EXPECTED)} problems:") as info:
        load_audiences(bad_file)
    assert len(info.value.messages) == len(EXPECTED)
    assert list(info.value.messages) == validate_file(bad_file)


def test_one_rule_with_several_bad_keys_names_each():
    with pytest.raises(RuleError) as info:
        parse_rule({"event": "email_open", "sku": "X", "category": "", "min_count": 0, "colour": "red"},
                   audience="mine")
    assert [m.split(":")[1].strip() for m in info.value.messages] == [
        "rule.colour", "rule.category", "rule.sku", "rule.min_count"]
    assert all(m.startswith("audience 'mine': ") for m in info.value.messages)
