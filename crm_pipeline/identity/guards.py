"""Guards against over-merging: junk identifiers, identifiers and devices shared by too many people."""

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


def person_keys(people: pd.DataFrame) -> pd.DataFrame:
    """node_id, person: the (last name, first initial) the guards count distinct people by, for named nodes."""
    names = people.dropna(subset=["last_name"]).drop_duplicates("node_id")
    key = names["last_name"].str.lower() + "|" + names["first_name"].fillna("").str[:1].str.lower()
    return pd.DataFrame({"node_id": names["node_id"], "person": key})


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

    named = kept.merge(person_keys(people), on="node_id")
    distinct_people = named.groupby(["kind", "value"])["person"].nunique().rename("people").reset_index()
    capped = distinct_people[distinct_people["people"] > config.max_people_per_identifier]
    if len(capped):
        flagged = kept.set_index(["kind", "value"]).index.isin(capped.set_index(["kind", "value"]).index)
        kept = kept[~np.asarray(flagged)]
    return GuardResult(kept.reset_index(drop=True), junk_counts, capped.reset_index(drop=True))


@dataclass
class DeviceGuardResult:
    direct: pd.DataFrame  # node_a (device), node_b: the login ties that may join records
    edges: pd.DataFrame  # identifier edges less those carried by a shared device
    shared: pd.DataFrame  # device, people: devices whose logins span more than the cap


def guard_devices(direct: pd.DataFrame, edges: pd.DataFrame, people: pd.DataFrame,
                  config: IdentityConfig) -> DeviceGuardResult:
    """Keep a device (cookie) from joining people when its logins span more than `max_people_per_device`.

    A family computer or a shop's tablet logs in to several people's accounts; the accounts are not one
    person, and neither is whoever typed an address on it. Such a device joins nothing: its login ties and
    the identifiers seen on it are dropped, and it is reported. People are counted as the identifier guard
    counts them, among the named accounts the device logged in to.
    """
    logins = direct.merge(person_keys(people), left_on="node_b", right_on="node_id")
    people_per_device = logins.groupby("node_a")["person"].nunique()
    shared = people_per_device[people_per_device > config.max_people_per_device]
    return DeviceGuardResult(
        direct[~direct["node_a"].isin(shared.index)].reset_index(drop=True),
        edges[~edges["node_id"].isin(shared.index)].reset_index(drop=True),
        pd.DataFrame({"device": shared.index.astype(str), "people": shared.values.astype(int)}),
    )
