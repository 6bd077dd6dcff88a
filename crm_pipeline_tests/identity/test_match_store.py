"""The probabilistic pass is reused only while its input is the same: the digest that decides it must see every
change of a record or of which records share a cluster, and nothing else (row order, cluster names)."""

from __future__ import annotations

import pandas as pd

from crm_pipeline.identity.match_store import records_digest


def records(**changes) -> pd.DataFrame:
    frame = pd.DataFrame({
        "node_id": ["a|customer|1", "a|customer|2", "b|subscriber|3", "b|customer|4"],
        "cluster_id": ["a|customer|1", "a|customer|1", "x|cookie|9", "b|customer|4"],
        "person_cluster_id": ["a|customer|1", "a|customer|1", "b|subscriber|3", "b|customer|4"],
        "first_name": ["ann", "ann", "bob", None], "last_name": ["lee", "lee", "ray", "kim"],
        "birth_date": pd.to_datetime(["1980-01-02", None, None, "1990-05-06"]),
        "address_line1": [None] * 4, "postal_code": ["10001", None, None, "94110"],
        "country": ["US", "US", "GB", "US"], "city": [None] * 4, "region": [None] * 4,
        "email_match_key": ["ann@x.com", None, "bob@y.com", None], "phone": [None] * 4})
    for column, values in changes.items():
        frame[column] = values
    return frame


def test_row_order_and_the_names_of_clusters_do_not_change_the_digest():
    digest = records_digest(records(), "person_cluster_id")
    assert records_digest(records().iloc[::-1], "person_cluster_id") == digest
    # A cookie joining cluster 3 renames its deterministic cluster; Splink sees the same grouping.
    assert records_digest(records(cluster_id=["a|customer|1", "a|customer|1", "a|cookie|0", "b|customer|4"]),
                          "person_cluster_id") == digest
    # Columns the model does not read (the email key, the phone) do not enter either.
    assert records_digest(records(phone=["+14155550100"] * 4), "person_cluster_id") == digest


def test_a_changed_record_or_a_regrouping_changes_the_digest():
    digest = records_digest(records(), "person_cluster_id")
    assert records_digest(records(last_name=["lee", "lee", "ray", "kimm"]), "person_cluster_id") != digest
    joined = ["a|customer|1", "a|customer|1", "a|customer|1", "b|customer|4"]   # record 3 joins records 1 and 2
    assert records_digest(records(person_cluster_id=joined), "person_cluster_id") != digest
