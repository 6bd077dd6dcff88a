"""Identity quality against the generator's ground truth: pairwise precision, recall and F1.

Records are matched to the truth by their lineage (file and data row), so planted bad
rows, which never reach staging, cannot blur the comparison. A pair is two records
of one contact (predicted) or of one person (true); counts come from group sizes,
never from enumerating pairs.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.warehouse.bulk import read_frame

SCOPES = {
    "profiles (customers, subscribers, orders)": ("customers", "subscribers", "orders"),
    "all person-linked records": ("customers", "subscribers", "orders", "email_events", "web_events"),
    "people (customers, subscribers)": ("customers", "subscribers"),
}
PEOPLE = "people (customers, subscribers)"


def _pairs(groups: pd.Series) -> int:
    sizes = groups.value_counts()
    return int((sizes * (sizes - 1) // 2).sum())


def pairwise_scores(contact: pd.Series, person: pd.Series) -> dict[str, float | int]:
    """Precision, recall and F1 of the contact grouping against the person grouping (aligned Series)."""
    together = contact.astype(str) + "\x1f" + person.astype(str)
    tp, predicted, true = _pairs(together), _pairs(contact), _pairs(person)
    precision = tp / predicted if predicted else 1.0
    recall = tp / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"records": int(len(contact)), "contacts": int(contact.nunique()), "people": int(person.nunique()),
            "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def _joined(conn: sa.Connection, truth_dir: str | Path) -> pd.DataFrame:
    """identity_map rows (entity, node, contact, match type) with the true person of each."""
    truth = pd.read_csv(Path(truth_dir) / "records.csv", dtype=str, keep_default_na=False)
    if not {"file", "row_number"} <= set(truth.columns):
        raise ValueError(f"{truth_dir}/records.csv has no file and row_number columns; regenerate the data set")
    truth = truth[truth["person_id"] != ""]
    truth["row_number"] = truth["row_number"].astype("int64")
    mapped = read_frame(conn, sa.text(
        "SELECT m.entity, m.node_id, m.match_type, f.path AS file, m._row_number AS row_number, m.contact_id "
        "FROM identity_map m JOIN files f ON f.file_id = m._file_id"))
    return mapped.merge(truth[["file", "row_number", "person_id"]], on=["file", "row_number"], how="inner")


def blocking_recall(conn: sa.Connection, truth_dir: str | Path, blocking=None) -> float:
    """Share of true pairs of person nodes (customers, subscribers) that reach the model's scoring: a
    candidate pair of the blocking rules (held to the comparison budget `blocking`, a BlockingBudget;
    default: the packaged one), or already joined by a shared identifier. Recall can never beat it, so
    a low figure points at blocking, a high one at the comparisons or the threshold."""
    from crm_pipeline.identity.nodes import person_records
    from crm_pipeline.identity.probabilistic import candidate_pairs

    joined = _joined(conn, truth_dir)
    nodes = joined[joined["entity"].isin(SCOPES[PEOPLE])].drop_duplicates("node_id")
    true = nodes.merge(nodes, on="person_id", suffixes=("_a", "_b"))
    true = true[true["node_id_a"] < true["node_id_b"]]
    if not len(true):
        return 1.0
    records = person_records(conn).drop_duplicates("node_id")
    blocked = candidate_pairs(records.assign(cluster_id=records["node_id"]), blocking)
    key = true["node_id_a"] + "\x1f" + true["node_id_b"]
    covered = key.isin(blocked["node_a"] + "\x1f" + blocked["node_b"]) | (
        (true["contact_id_a"] == true["contact_id_b"])
        & true["match_type_a"].eq("deterministic") & true["match_type_b"].eq("deterministic"))
    return round(float(covered.mean()), 4)


def evaluate_identity(conn: sa.Connection, truth_dir: str | Path) -> pd.DataFrame:
    """One row per scope with the pairwise scores and cluster counts."""
    joined = _joined(conn, truth_dir)
    rows = []
    for scope, entities in SCOPES.items():
        part = joined[joined["entity"].isin(entities)]
        rows.append({"scope": scope, **pairwise_scores(part["contact_id"], part["person_id"])})
    return pd.DataFrame(rows)
