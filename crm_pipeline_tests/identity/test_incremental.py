"""Identity resolves only when its input changed, writes only what changed, and reports what it touched.

A small generated landing goes through the real stages (ingest, typing, publish) in three drops,
identity resolving after each, and all at once with full refreshes: the same records must end in
the same contacts (contact ids compared through each contact's smallest record key, since a fresh
warehouse numbers contacts in another order). After every drop, a full re-resolution of a copy of
the warehouse must leave every identity table exactly as the incremental write left it.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from crm_pipeline.identity.config import load_identity_config
from crm_pipeline.identity.febrl import febrl_to_landing
from crm_pipeline.identity.probabilistic import match_people
from crm_pipeline.identity import resolve as resolve_module
from crm_pipeline.identity.resolve import resolve_identities
from crm_pipeline.identity.review import record_decision
from crm_pipeline.quality.publish import publish
from crm_pipeline.synth.generate import generate
from crm_pipeline.warehouse.engine import make_engine
from crm_pipeline_tests.conftest import NOW
from crm_pipeline_tests.quality.test_incremental import drops, land, load

D1, D2 = dt.date(2025, 6, 20), dt.date(2025, 6, 30)
FEBRL = Path(__file__).parent / "fixtures" / "febrl"
STATE = {"identity_nodes": ["node_id"], "identity_map": ["entity", "brand", "source_key"],
         "contacts": ["contact_id"], "merge_log": ["kind", "old_contact_id", "new_contact_id", "as_of"],
         "identity_alerts": ["kind", "subject", "as_of"], "identity_borderline": ["node_a", "node_b"],
         "identity_pairs": ["node_a", "node_b"], "identity_graph": ["kind", "node_a", "node_b"]}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    generate(out, people=300, brands=2, days=120, seed=5, end_date="2025-06-30")
    return out / "landing"


def stage_and_resolve(engine, landing: Path, as_of: dt.date, *, full_refresh=False, find_pairs=None):
    load(engine, landing)
    publish(engine, hold_share=0.05, full_refresh=full_refresh)
    return resolve_identities(engine, as_of=as_of, config=load_identity_config(), find_pairs=find_pairs,
                              full_refresh=full_refresh)


def state(engine) -> dict[str, pd.DataFrame]:
    with engine.connect() as conn:
        frames = {t: pd.read_sql(sa.text(f"SELECT * FROM {t}"), conn) for t in STATE}
    return {t: f.sort_values(list(f.columns)).reset_index(drop=True) for t, f in frames.items()}


def partition(engine) -> tuple[pd.DataFrame, pd.DataFrame]:
    """identity_map and contacts with each contact named by its smallest record key."""
    with engine.connect() as conn:
        mapped = pd.read_sql(sa.text(
            "SELECT entity, brand, source_key, node_id, match_type, "
            "MIN(entity || '|' || brand || '|' || source_key) OVER (PARTITION BY contact_id) AS person "
            "FROM identity_map"), conn)
        people = pd.read_sql(sa.text(
            "SELECT k.person, c.node_count, c.record_count, c.brands, c.match_type FROM contacts c "
            "JOIN (SELECT contact_id, MIN(entity || '|' || brand || '|' || source_key) AS person FROM identity_map "
            "      GROUP BY contact_id) k ON k.contact_id = c.contact_id"), conn)
    return (mapped.sort_values(["entity", "brand", "source_key"]).reset_index(drop=True),
            people.sort_values("person").reset_index(drop=True))


def full_refresh_of_a_copy(engine, path: Path, as_of: dt.date, find_pairs) -> dict[str, pd.DataFrame]:
    engine.dispose()
    copy = path.with_name(path.stem + "_copy.duckdb")
    shutil.copyfile(path, copy)
    other = make_engine(f"duckdb:///{copy}")
    report = resolve_identities(other, as_of=as_of, config=load_identity_config(), find_pairs=find_pairs,
                                full_refresh=True)
    assert report.mode == "full" and report.changes.contacts_touched == 0  # same input: nothing to change
    tables = state(other)
    other.dispose()
    copy.unlink()
    return tables


GHOST_LOGIN = {"brand_a/web_events/ghost_login.csv": pd.DataFrame({  # an account with no record yet: no node
    "event_id": ["GHOST1"], "cookie_id": ["GHOSTCOOKIE"], "session_id": ["GS"], "customer_id": ["GHOST"],
    "email": [""], "event_type": ["page_view"], "url": ["/account"], "sku": [""],
    "occurred_at": ["2025-06-25T10:00:00Z"]})}


def additions(landing: Path) -> dict[str, pd.DataFrame]:
    """A drop that only adds rows (read without staging's earlier rows, its edges built among the nodes it
    touches): new accounts of known people, known visitors' cookies logging in to other known accounts
    (merges, devices nearer the shared cap) and typing their emails, and the first record (an order) of the
    account GHOST_LOGIN's cookie logged in to, among orders of known customers."""
    a = landing / "brand_a"
    customers = pd.read_csv(a / "customers/customers_full.csv", dtype=str, keep_default_na=False)
    web = pd.read_csv(a / "web_events/web_events_2025Q2.csv", dtype=str, keep_default_na=False)
    web = web[web["cookie_id"] != ""].iloc[:8]
    orders = pd.read_csv(a / "orders/orders_2025Q2.csv", dtype=str, keep_default_na=False)
    orders = orders[orders["customer_id"] != ""].iloc[:30]
    return {"brand_a/customers/customers_added.csv": customers.iloc[:6].assign(
                customer_id=lambda f: "9" + f["customer_id"]),
            "brand_a/web_events/web_added.csv": web.assign(
                event_id=lambda f: "added_" + f["event_id"],
                customer_id=list(customers["customer_id"].iloc[10:10 + len(web)])),
            "brand_a/orders/orders_added.csv": pd.concat([
                orders.assign(order_id=lambda f: "added_" + f["order_id"]),
                orders.iloc[[0]].assign(order_id="added_ghost", customer_id="GHOST", email="", phone="")])}


def test_three_drops_resolve_to_the_contacts_of_all_files_at_once(generated, tmp_path):
    three = [*drops(generated), additions(generated)]
    three[2] = {**three[2], **GHOST_LOGIN}
    path = tmp_path / "step.duckdb"
    step = make_engine(f"duckdb:///{path}")
    reports = []
    for files, as_of in zip(three, (D1, D1, D2, D2)):
        land(tmp_path / "step", files)
        reports.append(stage_and_resolve(step, tmp_path / "step", as_of, find_pairs=match_people))
        incremental = state(step)
        rebuilt = full_refresh_of_a_copy(step, path, as_of, match_people)
        for name in STATE:
            pd.testing.assert_frame_equal(incremental[name], rebuilt[name], obj=f"{name} after drop {len(reports)}")
    assert [r.mode for r in reports] == ["full", "incremental", "incremental", "incremental"]
    assert [r.edges_scoped for r in reports] == [False, False, False, True]  # drops 2, 3 replace customer rows
    with step.connect() as conn:  # the account's first record made the login an edge
        assert conn.execute(sa.text("SELECT COUNT(DISTINCT contact_id) FROM identity_nodes WHERE node_id IN "
                                    "('brand_a|cookie|GHOSTCOOKIE', 'brand_a|customer|GHOST')")).scalar_one() == 1
    assert all(0 < r.changes.contacts_touched < r.contacts for r in reports[1:])  # later drops touch a part
    assert reports[0].nodes_recomputed == reports[0].nodes  # the first run clusters the whole graph ...
    assert all(0 < r.nodes_recomputed < r.nodes for r in reports[1:])  # ... later ones the part they touch

    # Without the model (trained on different data in the two runs), the partition must be the same.
    resolve_identities(step, as_of=D2, config=load_identity_config(), full_refresh=True)
    full = make_engine(f"duckdb:///{tmp_path / 'full.duckdb'}")
    for files in three:
        land(tmp_path / "full", files)
    assert stage_and_resolve(full, tmp_path / "full", D2, full_refresh=True).mode == "full"
    for left, right in zip(partition(step), partition(full)):
        pd.testing.assert_frame_equal(left, right)
    with step.connect() as conn:  # the merge/split log stays coherent: every id it names is a contact or retired
        dangling = conn.execute(sa.text(
            "SELECT COUNT(*) FROM (SELECT new_contact_id AS c FROM merge_log UNION SELECT old_contact_id FROM merge_log) l "
            "WHERE c NOT IN (SELECT contact_id FROM contacts) "
            "  AND c NOT IN (SELECT old_contact_id FROM merge_log WHERE kind IN ('merge', 'split'))")).scalar_one()
    assert dangling == 0
    full.dispose()
    step.dispose()


def test_a_drop_touching_one_person_touches_one_contact_and_a_rerun_touches_nothing(generated, tmp_path, backend):
    engine = backend
    first = drops(generated)[0]
    land(tmp_path / "landing", first)
    assert stage_and_resolve(engine, tmp_path / "landing", D1).mode == "full"

    before = state(engine)
    with engine.connect() as conn:
        runs = conn.execute(sa.text("SELECT COUNT(*) FROM identity_runs")).scalar_one()
    again = stage_and_resolve(engine, tmp_path / "landing", D2)  # a new day, no new file
    assert again.mode == "unchanged" and again.contacts == len(before["contacts"])
    after = state(engine)
    for name in STATE:
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM identity_runs")).scalar_one() == runs

    customer = first["brand_a/customers/customers_full.csv"].iloc[[5]]
    land(tmp_path / "landing", {"brand_a/customers/one_change.csv": customer.assign(address_line2="Apt 9")})
    report = stage_and_resolve(engine, tmp_path / "landing", D2)
    changes = report.changes
    assert report.mode == "incremental"
    assert (changes.contacts_touched, changes.contacts_changed) == (1, 1)
    assert (changes.records_added, changes.records_removed) == (1, 1)  # the re-sent row replaces the old one
    with engine.connect() as conn:
        touched = conn.execute(sa.text("SELECT contact_id, change FROM identity_changes WHERE run_number = :r"),
                               {"r": changes.run_number}).all()
        owner = conn.execute(sa.text("SELECT contact_id FROM identity_map WHERE entity = 'customers' "
                                     "AND source_key = :c"), {"c": str(customer["customer_id"].iloc[0])}).scalar_one()
    assert touched == [(owner, "changed")]
    assert report.graph_reused and report.nodes_recomputed == 0  # no identifier changed: no clustering
    assert not report.new_files_only  # a row was replaced: staging is read whole

    # A new visitor with that customer's email joins the contact: only that contact's nodes are clustered again.
    with engine.connect() as conn:
        nodes = conn.execute(sa.text("SELECT node_count FROM contacts WHERE contact_id = :c"), {"c": owner}).scalar_one()
        total = conn.execute(sa.text("SELECT COUNT(*) FROM identity_nodes")).scalar_one()
    land(tmp_path / "landing", {"brand_a/web_events/one_visitor.csv": pd.DataFrame({
        "event_id": ["NEW1"], "cookie_id": ["NEWCOOKIE"], "session_id": ["NEWS"], "customer_id": [""],
        "email": [customer["email"].iloc[0]], "event_type": ["page_view"], "url": ["/"], "sku": [""],
        "occurred_at": ["2025-06-29T10:00:00Z"]})})
    report = stage_and_resolve(engine, tmp_path / "landing", D2)
    assert (report.mode, report.nodes, report.contacts) == ("incremental", total + 1, len(before["contacts"]))
    assert report.new_files_only and report.edges_scoped  # rows only added: the new file's rows and edges
    assert (report.nodes_recomputed, report.components_recomputed) == (nodes + 1, 1)
    assert (report.changes.contacts_touched, report.changes.contacts_changed, report.merges) == (1, 1, 0)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT contact_id FROM identity_nodes WHERE node_id = 'brand_a|cookie|NEWCOOKIE'")
                            ).scalar_one() == owner

    # Inputs kept by other code (another release's identifier rules) are not trusted: staging is read whole once.
    with engine.begin() as conn:
        run, kept = conn.execute(sa.text("SELECT run_number, fingerprint FROM identity_runs "
                                         "ORDER BY run_number DESC LIMIT 1")).one()
        conn.execute(sa.text("UPDATE identity_runs SET fingerprint = :f WHERE run_number = :r"),
                     {"f": json.dumps({**json.loads(kept), "graph_inputs": "an older release"}), "r": run})
    land(tmp_path / "landing", {"brand_a/web_events/one_more_visit.csv": pd.DataFrame({
        "event_id": ["NEW2"], "cookie_id": ["NEWCOOKIE"], "session_id": ["NEWS2"], "customer_id": [""],
        "email": [""], "event_type": ["page_view"], "url": ["/"], "sku": [""],
        "occurred_at": ["2025-06-29T11:00:00Z"]})})
    report = stage_and_resolve(engine, tmp_path / "landing", D2)
    assert report.mode == "incremental" and not report.new_files_only
    assert report.changes.contacts_touched == 1 and report.contacts == len(before["contacts"])


def test_a_drop_of_known_visitors_events_reuses_the_matching_and_gives_a_full_resolutions_tables(tmp_path,
                                                                                                monkeypatch):
    febrl_to_landing({"brand_a": FEBRL / "dataset1.csv"}, tmp_path)  # 1,000 people records: Splink trains
    path = tmp_path / "w.duckdb"
    engine = make_engine(f"duckdb:///{path}")
    assert not stage_and_resolve(engine, tmp_path / "landing", D1, find_pairs=match_people).match_reused
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM identity_pairs")).scalar_one() > 0
    # Two visitors log in to accounts already known: records added, no two people joined.
    land(tmp_path / "landing", {"brand_a/web_events/w.csv": pd.DataFrame({
        "event_id": ["W1", "W2"], "cookie_id": ["K1", "K2"], "session_id": ["S1", "S2"],
        "customer_id": ["rec-1-org", "rec-2-org"], "email": ["", ""], "event_type": ["page_view"] * 2,
        "url": ["/account"] * 2, "sku": ["", ""], "occurred_at": ["2025-06-01T10:00:00Z"] * 2})})
    with monkeypatch.context() as patched:  # no person record is read: none changed, nor their clusters
        patched.setattr(resolve_module.graph_tables, "clustered_person_records", _not_read)
        report = stage_and_resolve(engine, tmp_path / "landing", D2, find_pairs=match_people)
    assert report.mode == "incremental" and report.match_reused and report.match.model is not None
    assert report.new_files_only  # rows only added: the stored graph's inputs and the new file's rows
    assert (report.changes.records_added, report.changes.contacts_changed) == (2, 2)
    incremental = state(engine)
    rebuilt = full_refresh_of_a_copy(engine, path, D2, match_people)  # retrains: the same pairs and borderline
    for name in STATE:
        pd.testing.assert_frame_equal(incremental[name], rebuilt[name], obj=name)

    # The same visitors again, next day: no new node or identifier, so the graph is not clustered again.
    land(tmp_path / "landing", {"brand_a/web_events/w2.csv": pd.DataFrame({
        "event_id": ["W3"], "cookie_id": ["K1"], "session_id": ["S3"], "customer_id": ["rec-1-org"], "email": [""],
        "event_type": ["page_view"], "url": ["/cart"], "sku": [""], "occurred_at": ["2025-06-02T10:00:00Z"]})})
    report = stage_and_resolve(engine, tmp_path / "landing", D2 + dt.timedelta(days=1), find_pairs=match_people)
    assert report.mode == "incremental" and report.graph_reused
    assert (report.changes.records_added, report.changes.contacts_touched) == (1, 1)
    incremental = state(engine)
    rebuilt = full_refresh_of_a_copy(engine, path, D2 + dt.timedelta(days=1), match_people)
    for name in STATE:
        pd.testing.assert_frame_equal(incremental[name], rebuilt[name], obj=name)


def _not_read(conn):
    raise AssertionError("the person records were read")


def test_a_review_decision_or_a_new_setting_makes_identity_resolve_again(generated, tmp_path):
    engine = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    land(tmp_path / "landing", drops(generated)[0])
    stage_and_resolve(engine, tmp_path / "landing", D1)
    with engine.connect() as conn:
        a, b = conn.execute(sa.text("SELECT MIN(node_id), MAX(node_id) FROM identity_nodes "
                                    "WHERE node_id LIKE '%|customer|%'")).one()
    record_decision(engine, a, b, "must_link", now=NOW, as_of=D1)
    joined = resolve_identities(engine, as_of=D1, config=load_identity_config())
    assert joined.mode == "incremental" and joined.changes.contacts_retired == 1  # two contacts became one
    assert resolve_identities(engine, as_of=D1, config=load_identity_config()).mode == "unchanged"

    stricter = tmp_path / "identity.yaml"
    stricter.write_text("max_people_per_identifier: 1\n")
    assert resolve_identities(engine, as_of=D1, config=load_identity_config(stricter)).mode == "incremental"
    engine.dispose()


def test_the_asset_reports_its_mode_and_resolves_fully_when_the_run_asks(generated, tmp_path, dagster_instance,
                                                                          monkeypatch):
    import dagster as dg

    from crm_pipeline.definitions import ALL_ASSETS
    from crm_pipeline.defs.resources import default_resources
    from crm_pipeline.defs.run_tags import FULL_REFRESH_TAG
    from crm_pipeline.settings import Settings

    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    engine = make_engine(url)
    land(tmp_path / "landing", drops(generated)[0])
    load(engine, tmp_path / "landing")
    publish(engine, hold_share=0.05)
    engine.dispose()
    # Deterministic identity: the mode and the run's tag are what is tested here; that a full re-resolution
    # with Splink retrained touches no contact is test_three_drops_resolve_to_the_contacts_of_all_files_at_once's.
    # (The asset reads the identity settings from the environment: the resources do not carry Settings' own.)
    config = tmp_path / "identity.yaml"
    config.write_text("probabilistic:\n  enabled: false\n", encoding="utf-8")
    monkeypatch.setenv("CRM_IDENTITY_CONFIG", str(config))
    settings = Settings(home_dir=tmp_path / "home", landing_dir=tmp_path / "landing", warehouse_url=url, as_of=D1)
    chosen = [a for a in ALL_ASSETS if a.op.name == "resolve_identity"]

    def run(tags: dict[str, str]) -> dict:
        result = dg.materialize(ALL_ASSETS, selection=dg.AssetSelection.assets(*chosen), instance=dagster_instance,
                                resources=default_resources(settings), tags=tags,
                                run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
        assert result.success
        event = dagster_instance.get_latest_materialization_event(dg.AssetKey("contacts"))
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}

    first = run({})
    assert first["mode"] == "full" and first["contacts_created"] == first["dagster/row_count"] > 0
    assert (first["full_because"], first["nodes_recomputed"]) == ("first run", first["nodes_total"])
    assert {k: run({})[k] for k in ("mode", "contacts_touched", "nodes_recomputed")} == \
        {"mode": "unchanged", "contacts_touched": 0, "nodes_recomputed": 0}

    # A drop touching one contact (two visits of a new visitor giving one customer's email) recomputes
    # that contact's component alone, as the stage's counters say.
    customers = drops(generated)[0]["brand_a/customers/customers_full.csv"]
    customer = customers[customers["email"].fillna("").str.contains("@")].iloc[[7]]
    with make_engine(url).connect() as conn:
        owner, nodes = conn.execute(sa.text(
            "SELECT c.contact_id, c.node_count FROM contacts c JOIN identity_map m ON m.contact_id = c.contact_id "
            "WHERE m.entity = 'customers' AND m.source_key = :k"), {"k": str(customer["customer_id"].iloc[0])}).one()
    land(tmp_path / "landing", {"brand_a/web_events/one_visitor.csv": pd.DataFrame({
        "event_id": ["V1", "V2"], "cookie_id": ["VISITOR"] * 2, "session_id": ["VS"] * 2, "customer_id": ["", ""],
        "email": [customer["email"].iloc[0]] * 2, "event_type": ["page_view"] * 2, "url": ["/", "/cart"],
        "sku": ["", ""], "occurred_at": ["2025-06-19T10:00:00Z", "2025-06-19T10:01:00Z"]})})
    engine = make_engine(url)
    load(engine, tmp_path / "landing")
    publish(engine, hold_share=0.05)
    engine.dispose()
    drop = run({})
    assert drop["mode"] == "incremental" and drop["nodes_total"] == first["nodes_total"] + 1
    assert (drop["nodes_recomputed"], drop["components_recomputed"]) == (nodes + 1, 1)
    assert (drop["contacts_touched"], drop["records_added"], drop["dagster/row_count"]) == \
        (1, 2, first["dagster/row_count"])

    forced = run({FULL_REFRESH_TAG: "true"})
    assert (forced["mode"], forced["contacts_touched"], forced["dagster/row_count"]) == \
        ("full", 0, first["dagster/row_count"])
    assert (forced["full_because"], forced["nodes_recomputed"]) == ("full refresh", forced["nodes_total"])


def test_a_superseded_record_that_drops_an_edge_splits_its_contact_as_a_full_resolution_would(generated, tmp_path):
    customers = drops(generated)[0]["brand_a/customers/customers_full.csv"].iloc[:3]
    shared = customers.assign(email=["pat@shared.example.org", "pat@shared.example.org", "kim@own.example.org"],
                              phone="")
    path = tmp_path / "w.duckdb"
    engine = make_engine(f"duckdb:///{path}")
    land(tmp_path / "landing", {"brand_a/customers/c1.csv": shared})
    assert stage_and_resolve(engine, tmp_path / "landing", D1).contacts == 2  # the first two share an email
    # The second customer is re-sent with an address of their own: the edge goes, the contact splits.
    land(tmp_path / "landing", {"brand_a/customers/c2.csv": shared.iloc[[1]].assign(email="lee@own.example.org")})
    report = stage_and_resolve(engine, tmp_path / "landing", D2)
    assert (report.mode, report.contacts, report.splits, report.merges) == ("incremental", 3, 1, 0)
    assert (report.nodes_recomputed, report.components_recomputed) == (2, 2)  # the split contact's two nodes
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT kind, reason FROM merge_log")).all() == \
            [("split", "records no longer linked")]
    incremental = state(engine)
    rebuilt = full_refresh_of_a_copy(engine, path, D2, None)
    for name in STATE:
        pd.testing.assert_frame_equal(incremental[name], rebuilt[name], obj=name)


def test_the_whole_graph_is_clustered_again_every_full_recluster_every_days(generated, tmp_path):
    settings = tmp_path / "identity.yaml"
    settings.write_text("full_recluster_every_days: 7\n")
    config = load_identity_config(settings)
    engine = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    first, second, third = drops(generated)
    runs = []
    for files, as_of in zip((first, second, third), (D1, D1 + dt.timedelta(days=6), D1 + dt.timedelta(days=7))):
        land(tmp_path / "landing", files)
        load(engine, tmp_path / "landing")
        publish(engine, hold_share=0.05)
        runs.append(resolve_identities(engine, as_of=as_of, config=config))
    assert [(r.mode, r.full_reason) for r in runs] == \
        [("full", "first run"), ("incremental", ""), ("full", "periodic re-cluster")]
    assert runs[1].nodes_recomputed < runs[1].nodes and runs[2].nodes_recomputed == runs[2].nodes
    # The schedule says when, never what: changing it alone is no new input.
    assert resolve_identities(engine, as_of=D2, config=load_identity_config()).mode == "unchanged"
    engine.dispose()


def test_rows_of_a_later_file_the_map_already_holds_are_not_mapped_twice(generated, tmp_path):
    """A drop's new file is inserted into identity_map whole, trusting that only identity writes the map. Where the
    map already holds a row of such a file (an overlapping run wrote it), every file is compared instead: each
    staged record keeps one map row."""
    engine = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    stage_and_resolve(engine, generated, D1)
    with engine.begin() as conn:
        event_id, file_id = conn.execute(sa.text(
            "SELECT source_key, (SELECT MAX(_file_id) + 1 FROM stg_web_events) FROM identity_map "
            "WHERE entity = 'web_events' ORDER BY source_key LIMIT 1")).one()
        keys = {"e": event_id, "f": file_id}
        conn.execute(sa.text("INSERT INTO stg_web_events SELECT * REPLACE (event_id || '-again' AS event_id, "
                             ":f AS _file_id, 1 AS _row_number) FROM stg_web_events WHERE event_id = :e"), keys)
        conn.execute(sa.text("INSERT INTO identity_map SELECT * REPLACE (source_key || '-again' AS source_key, "
                             ":f AS _file_id, 1 AS _row_number) FROM identity_map "
                             "WHERE entity = 'web_events' AND source_key = :e"), keys)
    resolve_identities(engine, as_of=D1, config=load_identity_config())
    with engine.connect() as conn:
        mapped = conn.execute(sa.text("SELECT COUNT(*) FROM identity_map WHERE _file_id = :f"), keys).scalar_one()
    assert mapped == 1
