"""Guards against over-merging: junk identifiers and identifiers shared by too many people."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crm_pipeline.identity.config import IdentityConfig


@dataclass
class GuardResult:
    edges: pd.DataFrame  # the identifier edges that may join records
    junk: pd.DataFrame  # kind, value, nodes: dropped as junk
    capped: pd.DataFrame  # kind, value, people: dropped for joining too many distinct people


def guard_identifiers(edges: pd.DataFrame, people: pd.DataFrame, config: IdentityConfig) -> GuardResult:
    """Drop junk values and values that join more than `max_people_per_identifier` distinct people.

    `people` gives node_id, first_name, last_name for named records; "distinct people" are distinct
    (last name, first initial) among the named nodes that carry the value.
    """
    is_email = edges["kind"] == "email"
    values = edges["value"].astype("str")
    junk = (is_email & values.isin(config.junk_emails)) | (~is_email & values.isin(config.junk_phones))
    for pattern in config.junk_email_patterns:
        junk |= is_email & values.str.contains(pattern.pattern, regex=True)
    junk_counts = (edges[junk].groupby(["kind", "value"]).size().rename("nodes").reset_index())
    kept = edges[~junk]

    names = people.dropna(subset=["last_name"]).drop_duplicates("node_id")
    person_key = names["last_name"].str.lower() + "|" + names["first_name"].fillna("").str[:1].str.lower()
    named = kept.merge(pd.DataFrame({"node_id": names["node_id"], "person": person_key}), on="node_id")
    distinct_people = named.groupby(["kind", "value"])["person"].nunique().rename("people").reset_index()
    capped = distinct_people[distinct_people["people"] > config.max_people_per_identifier]
    if len(capped):
        flagged = kept.set_index(["kind", "value"]).index.isin(capped.set_index(["kind", "value"]).index)
        kept = kept[~np.asarray(flagged)]
    return GuardResult(kept.reset_index(drop=True), junk_counts, capped.reset_index(drop=True))
