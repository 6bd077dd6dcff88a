"""Identity through the whole pipeline on data we did not generate (FEBRL) and on our own generator,
and clerical review decisions that survive a rerun."""

from __future__ import annotations

import base64
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from crm_pipeline.cli_identity import add_evaluate_febrl_arguments, add_identity_commands, evaluate_febrl
from crm_pipeline.definitions import ALL_ASSETS
from crm_pipeline.defs import headless
from crm_pipeline.defs.resources import default_resources
from crm_pipeline.identity.evaluate import PEOPLE, blocking_recall, evaluate_identity
from crm_pipeline.identity.febrl import febrl_to_landing, read_febrl
from crm_pipeline.settings import load_settings
from crm_pipeline.synth.generate import generate
from crm_pipeline.warehouse.engine import make_engine

FEBRL = Path(__file__).parent / "fixtures" / "febrl"
THROUGH_IDENTITY = ("ingest_files", "stage_entities", "resolve_identity")


def materialize_through_identity(settings, as_of: date, instance: dg.DagsterInstance, **_):
    """`materialize_all` up to identity: ingest, quality and identity in one run for `as_of`. The stages after
    identity (profiles, predictions, scoring, audiences) change no contact and cost a good part of a full run;
    `febrl1` runs the whole graph once, as `evaluate identity --febrl` does."""
    chosen = [a for a in ALL_ASSETS if a.op.name in THROUGH_IDENTITY]
    return dg.materialize(ALL_ASSETS, selection=dg.AssetSelection.assets(*chosen), instance=instance,
                          resources=default_resources(settings.with_overrides(as_of=as_of)),
                          run_config={"ops": {"ingest_files": {"config": {"paths": []}}},
                                      "loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                          tags={"crm/as_of": as_of.isoformat()}, raise_on_error=False)


@pytest.fixture
def through_identity(monkeypatch):
    """`evaluate_febrl` runs ingest, quality and identity only (what it scores)."""
    monkeypatch.setattr(headless, "materialize_all", materialize_through_identity)


def test_a_febrl_file_maps_onto_the_customers_contract_with_its_truth(tmp_path):
    febrl_to_landing({"brand_a": FEBRL / "dataset1.csv"}, tmp_path)
    landed = pd.read_csv(tmp_path / "landing" / "brand_a" / "customers" / "dataset1.csv", dtype=str,
                         keep_default_na=False)
    truth = pd.read_csv(tmp_path / "truth" / "records.csv", dtype=str)
    source = read_febrl(FEBRL / "dataset1.csv")
    assert len(landed) == len(truth) == len(source) == 1000
    row = landed.set_index("customer_id").loc["rec-122-org"]
    assert (row["first_name"], row["last_name"], row["address_line1"], row["city"], row["region"],
            row["postal_code"], row["birth_date"], row["country"]) == (
        "lachlan", "berry", "69 giblin street", "bittern", "QLD", "4814", "1999-02-19", "AU")
    assert (landed.loc[landed["customer_id"] == "rec-373-org", "birth_date"] == "1960-02-10").all()
    assert truth["person_id"].nunique() == 500
    pair = truth[truth["source_key"].isin(["rec-10-dup-0", "rec-10-org"])]
    assert pair["person_id"].nunique() == 1 and len(pair) == 2


@pytest.fixture(scope="module")
def febrl1(tmp_path_factory):
    work = tmp_path_factory.mktemp("febrl1")
    return work, evaluate_febrl([FEBRL / "dataset1.csv"], work)


def test_febrl_1_through_the_pipeline(febrl1):
    _, scores = febrl1
    assert scores["f1"] >= 0.98 and scores["precision"] >= 0.99, scores
    assert scores["blocking_recall"] >= 0.99, scores


def test_febrl_2_through_the_pipeline(tmp_path, through_identity):
    scores = evaluate_febrl([FEBRL / "dataset2.csv"], tmp_path)
    assert scores["f1"] >= 0.98 and scores["precision"] >= 0.99, scores
    assert scores["blocking_recall"] >= 0.99, scores


def test_febrl_4_as_two_brands_through_the_pipeline(tmp_path, through_identity):
    scores = evaluate_febrl([FEBRL / "dataset4a.csv", FEBRL / "dataset4b.csv"], tmp_path)
    assert scores["records"] == 10_000 and scores["people"] == 5_000
    assert scores["f1"] >= 0.99 and scores["precision"] >= 0.995, scores
    assert scores["blocking_recall"] >= 0.99, scores


def test_our_generator_at_3000_people(tmp_path):
    generate(tmp_path / "data", people=3000, brands=3, days=730, seed=7, end_date=date(2026, 6, 30))
    settings = load_settings(None, env={}, landing_dir=str(tmp_path / "data" / "landing"),
                             home_dir=str(tmp_path / "home"), warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert materialize_through_identity(settings, date(2026, 6, 30), instance=instance).success
    engine = make_engine(settings.warehouse_url)
    with engine.connect() as conn:
        people = evaluate_identity(conn, tmp_path / "data" / "truth").set_index("scope").loc[PEOPLE]
        blocked = blocking_recall(conn, tmp_path / "data" / "truth")
    engine.dispose()
    # Issue #14 asks for F1 0.985; measured precision 1.0, F1 0.9885 (with till e-receipts). Most pairs still missed
    # are subscribers with another address who signed up off the site (in store, import) or untracked, or across
    # brands: a name is all they share with the rest.
    assert people["precision"] >= 0.99 and people["f1"] >= 0.985, people
    assert blocked >= people["recall"]


def _parser():
    import argparse

    parser = argparse.ArgumentParser(prog="crm-pipeline")
    add_identity_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def _metadata(instance, asset: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    return event.asset_materialization.metadata


def _contacts(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT node_id, contact_id FROM identity_nodes")).all())


def test_must_link_and_cannot_link_survive_a_rerun(febrl1, capsys):
    work, _ = febrl1
    url = f"duckdb:///{work / 'warehouse.duckdb'}"
    engine = make_engine(url)
    before = _contacts(engine)
    with engine.connect() as conn:
        border = pd.read_sql(sa.text("SELECT node_a, node_b, accepted FROM identity_borderline"), conn)
    # Two records the model joined, and two it kept apart (different people of the file).
    joined = [n for n in before if before[n] == before["brand_a|customer|rec-10-org"]]
    apart = ("brand_a|customer|rec-1-org", "brand_a|customer|rec-2-org")
    assert len(joined) == 2 and before[apart[0]] != before[apart[1]]

    parser = _parser()
    for argv in (["identity", "review", "--cannot-link", *joined, "--warehouse", url, "--note", "twins"],
                 ["identity", "review", "--must-link", *apart, "--warehouse", url]):
        args = parser.parse_args(argv)
        assert args.func(args) == 0
    args = parser.parse_args(["identity", "review", "--warehouse", url, "--limit", "5"])
    assert args.func(args) == 0
    listed = capsys.readouterr().out
    assert ("no borderline pairs" in listed) == border.empty

    settings = load_settings(None, env={}, landing_dir=str(work / "landing"), home_dir=str(work / "home"),
                             warehouse_url=url)
    runs = []
    for _ in range(2):  # honoured by the next run and the one after (which finds nothing changed)
        with dg.instance_for_test(temp_dir=str(work / "dagster")) as instance:
            assert materialize_through_identity(settings, date(2026, 6, 30), instance=instance).success
            runs.append((_metadata(instance, "contacts"), _metadata(instance, "identity_map")))
        after = _contacts(engine)
        assert after[joined[0]] != after[joined[1]]
        assert after[apart[0]] == after[apart[1]]
    with engine.connect() as conn:
        log = pd.read_sql(sa.text("SELECT kind, reason FROM merge_log WHERE kind IN ('must_link', 'cannot_link')"),
                          conn)
    engine.dispose()
    assert sorted(log["kind"]) == ["cannot_link", "must_link"]
    assert log["reason"].str.contains("twins").any()
    (contacts_meta, map_meta), (rerun_meta, _) = runs
    assert (contacts_meta["mode"].value, rerun_meta["mode"].value) == ("incremental", "unchanged")
    # The asset pages explain the model: m and u per level, the weights chart, the threshold, borderline pairs.
    assert 0.5 <= contacts_meta["threshold"].value <= 1
    assert "| first_name |" in contacts_meta["m_and_u"].value and "| location |" in contacts_meta["m_and_u"].value
    assert contacts_meta["match_weights_chart"].value.startswith("![match weights](data:image/png;base64,")
    stored = work / "home" / "charts" / "identity" / "match_weights.png"   # kept: a run with the same model reads it
    assert base64.b64encode(stored.read_bytes()).decode() in contacts_meta["match_weights_chart"].value
    assert "w_birth_date" in contacts_meta["borderline_pairs"].value
    assert contacts_meta["reviewed_must_link"].value == 1 and contacts_meta["reviewed_cannot_link"].value == 1
    assert map_meta["dagster/row_count"].value == 1000
    assert sum(map_meta[f"records_{k}"].value for k in ("deterministic", "probabilistic", "singleton")
               if f"records_{k}" in map_meta) == 1000


def test_evaluate_identity_febrl_names_a_missing_file(tmp_path, capsys):
    import argparse

    from crm_pipeline.cli_identity import cmd_evaluate_identity_febrl

    parser = argparse.ArgumentParser()
    add_evaluate_febrl_arguments(parser)
    args = parser.parse_args(["--febrl", str(FEBRL / "dataset4a.csv"), str(tmp_path / "missing.csv"),
                              "--work", str(tmp_path / "work")])
    assert cmd_evaluate_identity_febrl(args) == 2
    assert "missing.csv" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()  # nothing run on half the input
