"""Stable contact ids: a cluster keeps its id across runs; on a merge the oldest id survives.

Ids are `C` + a zero-padded sequence number, so "oldest" is simply the smallest.
Each previous id is owned by the new cluster holding most of its nodes (ties: the
cluster with the smallest node id); a cluster that owns several previous ids keeps
the oldest and records the others as merged into it; a cluster that owns none gets a
new id, and any previous ids among its nodes are recorded as split from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ID_PREFIX = "C"
ID_DIGITS = 10


def format_id(number: int | np.ndarray) -> str | np.ndarray:
    if isinstance(number, np.ndarray):
        return (ID_PREFIX + pd.Series(number, dtype="int64").astype(str).str.zfill(ID_DIGITS)).to_numpy(dtype=object)
    return f"{ID_PREFIX}{number:0{ID_DIGITS}d}"


def id_number(contact_ids: pd.Series) -> pd.Series:
    return contact_ids.str.slice(len(ID_PREFIX)).astype("int64")


@dataclass
class Assignment:
    contact_of_component: pd.Series  # component -> contact id
    merges: pd.DataFrame  # old_contact_id, new_contact_id
    splits: pd.DataFrame  # old_contact_id, new_contact_id


def assign_contact_ids(component: pd.Series, previous: pd.Series, next_number: int) -> Assignment:
    """`component`: node_id -> component label; `previous`: node_id -> contact id from the last run."""
    frame = pd.DataFrame({"component": component})
    frame["previous"] = previous.reindex(frame.index)
    known = frame.dropna(subset=["previous"])
    holding = known.groupby(["previous", "component"]).size().rename("nodes").reset_index()
    holding = holding.sort_values(["previous", "nodes", "component"], ascending=[True, False, True])
    owners = holding.drop_duplicates("previous")  # previous id -> the component that keeps it
    owners = owners.assign(number=id_number(owners["previous"]))
    oldest = owners.sort_values("number").drop_duplicates("component").set_index("component")["previous"]

    components = pd.Index(sorted(frame["component"].unique()))
    contact = pd.Series(oldest.reindex(components).values, index=components, dtype="object")
    fresh = contact.index[contact.isna()]
    contact[fresh] = format_id(np.arange(next_number, next_number + len(fresh)))

    merged = owners[~owners["previous"].isin(oldest.values)]
    merges = pd.DataFrame({"old_contact_id": merged["previous"].values,
                           "new_contact_id": contact.reindex(merged["component"]).values})
    lost = holding.merge(owners[["previous", "component"]], on="previous", suffixes=("", "_owner"))
    lost = lost[lost["component"] != lost["component_owner"]]
    splits = pd.DataFrame({"old_contact_id": lost["previous"].values,
                           "new_contact_id": contact.reindex(lost["component"]).values}).drop_duplicates()
    return Assignment(contact, merges.reset_index(drop=True), splits.reset_index(drop=True))
