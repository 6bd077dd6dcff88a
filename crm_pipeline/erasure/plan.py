"""Finding everything that belongs to one person, from an email, a phone or a contact id.

The search runs in rounds until nothing new turns up:
1. identity: the contacts of the records found so far (`identity_map` by lineage), the ids merged
   into them (`merge_log`), their records, their source keys (identity nodes: customer account,
   subscriber, cookie, guest order, email recipient; their orders) and the emails, match keys and
   E.164 phones on their typed records;
2. typed rows (every typed row: staged, quarantined, held and deduplicated alike) carrying one of
   those identifiers or keys, in SQL with bound parameters; their keys join the search, so a
   quarantined customer row leads to its orders and the orders to their lines;
3. raw rows of files not typed yet, normalized as the ingestion suppression filter does.
A person who never resolved to a contact (say, only in quarantine) is found by step 2 alone.

Identifiers the identity guards refused (junk values, values shared by many people: listed in
`identity_alerts`) never widen the search; and a request that resolves to more than
`max_contacts` contacts is refused, because a shop's shared email would otherwise erase strangers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from crm_pipeline.contract import ENTITIES
from crm_pipeline.erasure.identifiers import KEY_COLUMNS, landed_identifiers, normalize_email, normalize_phone, \
    sha256_text
from crm_pipeline.erasure.suppression import Suppressions
from crm_pipeline.warehouse.bulk import insert_arrow, read_frame
from crm_pipeline.warehouse.quality_schema import typed_rows_sql

MAX_ROUNDS = 6
TARGETS_TABLE = "erasure_targets_tmp"
# Node kinds of identity_map.node_id (`<brand>|<kind>|<value>`) -> suppression kind of `<brand>|<value>`.
_NODE_KINDS = {"customer": "customer", "subscriber": "subscriber", "cookie": "cookie", "guest": "order"}

targets_table = sa.Table(  # session-local scratch: never committed, dropped with the transaction's work
    TARGETS_TABLE, sa.MetaData(),
    sa.Column("entity", sa.String), sa.Column("file_id", sa.Integer), sa.Column("row_number", sa.Integer),
    prefixes=["TEMPORARY"],
)


class ErasureRefused(ValueError):
    """The request cannot be carried out safely as asked (nothing was changed)."""


@dataclass(frozen=True)
class ErasureRequest:
    kind: str  # email / phone / contact_id
    value: str  # normalized: the email as staged, E.164, or the contact id
    email_key: str | None = None

    @classmethod
    def of(cls, *, email: str | None = None, contact_id: str | None = None,
           phone: str | None = None) -> ErasureRequest:
        given = [(k, v) for k, v in (("email", email), ("contact_id", contact_id), ("phone", phone)) if v]
        if len(given) != 1:
            raise ErasureRefused("give exactly one of email, contact_id or phone")
        kind, text = given[0]
        if kind == "email":
            value, key = normalize_email(text)
            if value is None:
                raise ErasureRefused("the email is empty")
            return cls(kind, value, key)
        if kind == "phone":
            value = normalize_phone(text)
            if value is None:
                raise ErasureRefused(f"{text!r} is not a phone number (write it in E.164, like +14155550123)")
            return cls(kind, value)
        return cls(kind, text.strip())

    @property
    def digest(self) -> str:
        return sha256_text(self.value)

    def seed_values(self) -> dict[str, set[str]]:
        if self.kind == "email":
            return {"email": {self.value}, "email_key": {self.email_key} if self.email_key else set()}
        if self.kind == "phone":
            return {"phone": {self.value}}
        return {}


@dataclass
class Person:
    """Everything found for one request. `values`: suppression kind -> clear normalized values."""

    contact_ids: set[str] = field(default_factory=set)
    merged_ids: set[str] = field(default_factory=set)  # of those, ids merged into another (kept in old snapshots)
    node_ids: set[str] = field(default_factory=set)  # identity nodes of their records (pairs and review decisions)
    values: dict[str, set[str]] = field(default_factory=dict)
    targets: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        {"entity": pd.Series(dtype=str), "file_id": pd.Series(dtype="int64"),
         "row_number": pd.Series(dtype="int64")}))

    def add(self, kind: str, values) -> None:
        self.values.setdefault(kind, set()).update(v for v in pd.Series(values, dtype=object).dropna().unique()
                                                   if isinstance(v, str) and v)

    def size(self) -> tuple:
        return len(self.contact_ids), sum(len(v) for v in self.values.values()), len(self.targets)

    def clear_values(self) -> set[str]:
        """Every clear value of the person, with source keys also without their brand (as files write them)."""
        out: set[str] = set()
        for kind, values in self.values.items():
            out |= values
            if kind in KEY_COLUMNS:
                out |= {v.split("|", 1)[1] for v in values if "|" in v}
        return out | self.contact_ids


def find_person(conn: sa.Connection, request: ErasureRequest, tables: set[str], *, max_contacts: int) -> Person:
    """Search the warehouse for the person; the lineage of their rows is left in `TARGETS_TABLE` too."""
    targets_table.create(conn)
    person = Person()
    for kind, values in request.seed_values().items():
        person.add(kind, list(values))
    if request.kind == "contact_id":
        person.contact_ids.add(request.value)
    guarded = _guarded_identifiers(conn, tables)
    untyped = _untyped_raw_rows(conn, tables)
    for _ in range(MAX_ROUNDS):
        before = person.size()
        _add_contact_facts(conn, person, tables, guarded)
        found = [_typed_matches(conn, e, person, tables) for e in ENTITIES]
        found += [_untyped_matches(e, rows, person) for e, rows in untyped.items()]
        _add_targets(conn, person, pd.concat(found, ignore_index=True))
        person.contact_ids |= _contacts_of_targets(conn, tables)
        live = person.contact_ids - person.merged_ids
        if len(live) > max_contacts:
            raise ErasureRefused(
                f"the {request.kind} resolves to {len(live)} contacts (more than {max_contacts}): "
                "it may be shared by several people; erase each by contact id, or raise max_contacts")
        if person.size() == before:
            break
    return person


def _guarded_identifiers(conn: sa.Connection, tables: set[str]) -> dict[str, set[str]]:
    """Identifier values identity refused to join on (junk, shared by many people): never used to widen."""
    if "identity_alerts" not in tables:
        return {}
    subjects = read_frame(conn, sa.text(
        "SELECT DISTINCT subject FROM identity_alerts WHERE kind IN ('junk_identifier', 'identifier_capped')"))
    parts = subjects["subject"].astype(str).str.split(":", n=1, expand=True)
    if parts.empty or parts.shape[1] < 2:
        return {}
    return {kind: set(group[1]) for kind, group in parts.groupby(0)}


def _add_contact_facts(conn: sa.Connection, person: Person, tables: set[str], guarded: dict[str, set[str]]) -> None:
    """The contacts' merged-away ids, records (as targets), source keys, emails and phones."""
    if not person.contact_ids:
        return
    if "merge_log" in tables:
        merged = conn.execute(sa.text("SELECT old_contact_id FROM merge_log WHERE kind = 'merge' "
                                      "AND new_contact_id IN :ids").bindparams(in_list("ids", person.contact_ids)))
        person.merged_ids |= set(merged.scalars())
        person.contact_ids |= person.merged_ids
    if "identity_map" not in tables:
        return
    records = read_frame(conn, sa.text(
        "SELECT entity, brand, source_key, node_id, _file_id AS file_id, _row_number AS row_number "
        "FROM identity_map WHERE contact_id IN :ids").bindparams(in_list("ids", person.contact_ids)))
    _add_targets(conn, person, records[["entity", "file_id", "row_number"]])
    person.node_ids |= set(records["node_id"].dropna().astype(str))
    node = records["node_id"].astype(str).str.split("|", n=2, expand=True)
    if len(node.columns) == 3:
        for node_kind, kind in _NODE_KINDS.items():
            mine = node[node[1] == node_kind]
            person.add(kind, mine[0] + "|" + mine[2])
        person.add("email_key", node.loc[node[1] == "recipient", 2])
    orders = records[records["entity"] == "orders"]
    person.add("order", orders["brand"].astype(str) + "|" + orders["source_key"].astype(str))
    for entity in ("customers", "orders", "subscribers", "email_events", "web_events"):
        typed = _typed_rows(entity, tables)
        if typed is None:
            continue
        spec = ENTITIES[entity]
        columns = (["email", "email_match_key"] if spec.has_column("email") else []) + \
                  (["phone"] if spec.has_column("phone") else [])
        found = read_frame(conn, sa.text(
            f"SELECT {', '.join('t.' + c for c in columns)} FROM {typed} t JOIN identity_map m "
            "ON m.entity = :e AND m._file_id = t._file_id AND m._row_number = t._row_number "
            "WHERE m.contact_id IN :ids").bindparams(in_list("ids", person.contact_ids), e=entity))
        for column, kind in (("email", "email"), ("email_match_key", "email_key"), ("phone", "phone")):
            if column in found:
                refused = guarded.get("email" if kind == "email_key" else kind, set())
                person.add(kind, found.loc[~found[column].isin(refused), column])


def in_list(name: str, values) -> sa.BindParameter:
    """A bound `IN :name` list (expanding), portable across backends."""
    return sa.bindparam(name, value=sorted(values), expanding=True, type_=sa.String)


def _match_conditions(entity: str, person: Person) -> tuple[list[str], list[sa.BindParameter]]:
    spec = ENTITIES[entity]
    exprs: list[tuple[str, str]] = []
    if spec.has_column("email"):
        exprs += [("email", "t.email"), ("email_key", "t.email_match_key")]
    if spec.has_column("phone"):
        exprs.append(("phone", "t.phone"))
    exprs += [(kind, f"t._brand || '|' || CAST(t.{col} AS VARCHAR)") for kind, col in KEY_COLUMNS.items()
              if spec.has_column(col)]
    conditions, params = [], []
    for kind, expr in exprs:
        if person.values.get(kind):
            conditions.append(f"{expr} IN :{kind}")
            params.append(in_list(kind, person.values[kind]))
    return conditions, params


def _typed_matches(conn: sa.Connection, entity: str, person: Person, tables: set[str]) -> pd.DataFrame:
    """Typed rows of `entity` carrying one of the person's identifiers or keys; their keys join the person."""
    conditions, params = _match_conditions(entity, person)
    typed = _typed_rows(entity, tables)
    if typed is None or not conditions:
        return person.targets.iloc[0:0]
    keys = [col for col in KEY_COLUMNS.values() if ENTITIES[entity].has_column(col)]
    query = sa.text(
        f"SELECT t._file_id AS file_id, t._row_number AS row_number, t._brand{''.join(', t.' + k for k in keys)} "
        f"FROM {typed} t WHERE {' OR '.join(conditions)}"
    ).bindparams(*params)
    rows = read_frame(conn, query)
    for kind, col in KEY_COLUMNS.items():
        if col in rows:
            person.add(kind, rows["_brand"].astype(str) + "|" + rows[col].astype("string"))
    return rows[["file_id", "row_number"]].assign(entity=entity)


def _typed_rows(entity: str, tables: set[str]) -> str | None:
    """Every typed row of `entity` as a FROM item, from its tables (erasure sees tables, not the `typed_` view);
    None when the entity was never typed."""
    if {f"stg_{entity}", f"unstaged_{entity}"} <= tables:
        return f"({typed_rows_sql(entity)})"
    return f"typed_{entity}" if f"typed_{entity}" in tables else None  # a warehouse from before the view


def _untyped_raw_rows(conn: sa.Connection, tables: set[str]) -> dict[str, pd.DataFrame]:
    """Raw rows of loaded files the quality stage has not typed yet (they have no typed row to match)."""
    if "files" not in tables:
        return {}
    typed = "AND f.file_id NOT IN (SELECT file_id FROM typed_files)" if "typed_files" in tables else ""
    out = {}
    for entity in ENTITIES:
        if f"raw_{entity}" not in tables:
            continue
        rows = read_frame(conn, sa.text(
            f"SELECT r.* FROM raw_{entity} r JOIN files f ON f.file_id = r._file_id WHERE TRUE {typed}"))
        if len(rows):
            out[entity] = rows
    return out


def _untyped_matches(entity: str, rows: pd.DataFrame, person: Person) -> pd.DataFrame:
    spec = ENTITIES[entity]
    hit = Suppressions.of_values(person.values).row_mask(spec, rows)
    matched = rows[hit]
    for kind, values in landed_identifiers(spec, matched, set(KEY_COLUMNS)).items():
        person.add(kind, values)
    return pd.DataFrame({"entity": entity, "file_id": matched["_file_id"].astype("int64"),
                         "row_number": matched["_row_number"].astype("int64")})


def _add_targets(conn: sa.Connection, person: Person, found: pd.DataFrame) -> None:
    """Add newly found rows to the person and to the scratch table the deletes join."""
    found = found[["entity", "file_id", "row_number"]].astype({"file_id": "int64", "row_number": "int64"})
    merged = found.drop_duplicates().merge(person.targets, how="left", indicator=True)
    new = merged.loc[merged["_merge"] == "left_only", ["entity", "file_id", "row_number"]]
    if new.empty:
        return
    person.targets = pd.concat([person.targets, new], ignore_index=True)
    insert_arrow(conn, targets_table, pa.Table.from_pandas(
        new.astype({"entity": object}), preserve_index=False,
        schema=pa.schema([("entity", pa.string()), ("file_id", pa.int32()), ("row_number", pa.int32())])))


def _contacts_of_targets(conn: sa.Connection, tables: set[str]) -> set[str]:
    if "identity_map" not in tables:
        return set()
    return set(conn.execute(sa.text(
        f"SELECT DISTINCT m.contact_id FROM identity_map m JOIN {TARGETS_TABLE} x "
        "ON x.entity = m.entity AND x.file_id = m._file_id AND x.row_number = m._row_number")).scalars())
