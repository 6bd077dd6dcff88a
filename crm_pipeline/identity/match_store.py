"""The probabilistic pass, kept: reused as long as what it would read is exactly the same.

Splink's training and scoring cost most of a resolution (20 s of 50 at 100k people) and, with
a fixed seed, give the same pairs for the same input. Its input is the person records (the
model's columns) and which of them the deterministic pass already joined; it only ever asks
whether two records share a cluster, so clusters are named by their smallest person node (a
new cookie joining a cluster renames it, but changes nothing Splink sees). A drop of web or
email events that joins no two people leaves that input as it was: the stored pairs, model,
threshold and borderline sample are reused, exactly what a new pass would give. Any change of
a person record, of their clusters, of the settings or of the matching code trains again.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import date
from importlib import metadata as package_metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from crm_pipeline.identity.config import IdentityConfig
from crm_pipeline.warehouse.bulk import insert_arrow, read_frame
from crm_pipeline.warehouse.identity_schema import identity_match, identity_pairs

_MODEL_COLUMNS = ("node_id", "cluster_id", "first_name", "last_name", "birth_date", "address_line1",
                  "postal_code", "country", "city", "region")
_CODE = ("probabilistic.py", "splink_settings.py", "nicknames.py", "blocking.py")
# The blocking plan (what the comparison budget did to each rule) travels in the stored model's JSON
# under this key, so that a reused pass reports it as the pass that made it did.
_BLOCKING_KEY = "crm_blocking_plan"


def records_digest(records: pd.DataFrame, person_cluster: str) -> str:
    """A digest of the pass's input frame: the person records' model columns and which of them share a cluster,
    in any row order. `person_cluster` names each record's cluster by its smallest person node
    (`graph.clustered_person_records` has it); it stands in for `cluster_id`.

    One hash per row (node_id is unique and hashed with the row), sorted: no sorted copy of the frame."""
    columns = [person_cluster if c == "cluster_id" else c for c in _MODEL_COLUMNS if c in records.columns]
    hashes = pd.util.hash_pandas_object(records[columns], index=False).to_numpy()
    return hashlib.sha256(np.sort(hashes).tobytes()).hexdigest()


def match_digest(records: str, config: IdentityConfig, finder: object) -> str:
    """A digest of everything the pass reads (see the module docstring): `records`, the input's
    `records_digest` (kept with each run, so that a run whose input is known unchanged need not read it),
    the matching code and the settings."""
    digest = hashlib.sha256(records.encode())
    here = Path(__file__).parent
    for name in _CODE:
        digest.update((here / name).read_bytes())
    digest.update(json.dumps([config.probabilistic_threshold, config.max_pairs_per_record, config.seed,
                              _name(finder), package_metadata.version("splink"), config.blocking],
                             default=str).encode())
    return digest.hexdigest()


def _name(finder: object) -> str:
    """The matching function's name; a partial's bound settings (memory, threads) never change the result."""
    finder = getattr(finder, "func", finder)
    return f"{getattr(finder, '__module__', '')}.{getattr(finder, '__qualname__', type(finder).__name__)}"


def stored_match(conn: sa.Connection, digest: str):
    """The stored result of a pass over the same input (a MatchResult), or None."""
    from crm_pipeline.identity.probabilistic import MatchResult

    if not sa.inspect(conn).has_table("identity_match"):
        return None
    row = conn.execute(sa.select(identity_match).where(identity_match.c.digest == digest)).mappings().first()
    if row is None:
        return None
    pairs = read_frame(conn, sa.select(identity_pairs.c.node_a, identity_pairs.c.node_b,
                                       identity_pairs.c.match_probability)
                       .order_by(identity_pairs.c.node_a, identity_pairs.c.node_b))
    borderline = pd.read_json(io.StringIO(row["borderline"]), orient="split") if row["borderline"] else pd.DataFrame()
    model = json.loads(row["model"]) if row["model"] else {}
    plan = model.pop(_BLOCKING_KEY, {})
    return MatchResult(pairs, row["threshold"], int(row["candidate_pairs"]), model or None, borderline,
                       pd.DataFrame(plan.get("rules", [])), pd.DataFrame(plan.get("oversized_keys", [])))


def store_match(conn: sa.Connection, digest: str, found, as_of: date) -> None:
    """Replace the stored pass with this one (`found`: a MatchResult or a bare pairs frame)."""
    pairs = getattr(found, "pairs", found)
    conn.execute(identity_match.delete())
    conn.execute(identity_pairs.delete())
    borderline = getattr(found, "borderline", None)
    model = dict(getattr(found, "model", None) or {})
    plan = {name: getattr(found, attr).to_dict("records") for name, attr in
            (("rules", "blocking"), ("oversized_keys", "oversized_keys")) if len(getattr(found, attr, ()))}
    if plan:
        model[_BLOCKING_KEY] = plan
    conn.execute(identity_match.insert().values(
        digest=digest, threshold=getattr(found, "threshold", None),
        candidate_pairs=int(getattr(found, "candidate_pairs", 0)), model=json.dumps(model) if model else None,
        borderline=borderline.to_json(orient="split", index=False, double_precision=15, date_format="iso")
        if borderline is not None and len(borderline) else None, as_of=as_of))
    if len(pairs):
        insert_arrow(conn, identity_pairs, pa.Table.from_pandas(
            pairs[["node_a", "node_b", "match_probability"]].astype({"match_probability": "float64"}),
            preserve_index=False))
