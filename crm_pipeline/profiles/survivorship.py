"""Survivorship: the golden value of each field of a contact, chosen in SQL by a rule from YAML.

Candidates are the non-empty values of a contact's customer accounts, subscriber records
and orders (linked through `identity_map`) dated on or before the as-of day. Per field a
rule ranks them with one window function (`most_recent`, `most_frequent`,
`source_priority`; every tie goes to the most recent record, then to a fixed order of
source, brand and key so the choice is deterministic). The rules ship in
`survivorship.yaml` next to this module; a user's file overrides them field by field,
and anything it gets wrong fails before any SQL runs, naming the key.

E-mail addresses at a marketplace's relay domains (`relay_email_domains`: a per-order address
that forwards to the buyer, e.g. `...@marketplace.amazon.com`) rank below every other address of
the contact whatever the email rule, so a marketer never mails a relay unless it is all the
contact has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from crm_pipeline.profiles import rewrite
from crm_pipeline.profiles.sql import GOLDEN, counts, latest_of, only_recomputed, text
from crm_pipeline.warehouse.profile_schema import GOLDEN_FIELDS

RULES = ("most_recent", "most_frequent", "source_priority")


@dataclass(frozen=True)
class Source:
    """A staging table that offers golden values: its key, its record time and its field -> column map."""

    entity: str
    key: str
    record_at: str  # SQL over alias `s`
    columns: dict[str, str]


SOURCES: dict[str, Source] = {
    "customers": Source("customers", "customer_id", "COALESCE(s.updated_at, s.created_at)",
                        {f: f for f in GOLDEN_FIELDS}),
    "subscribers": Source("subscribers", "subscriber_id",
                          f"COALESCE(s.updated_at, {latest_of('s.subscribed_at', 's.unsubscribed_at')})",
                          {"email": "email", "first_name": "first_name", "last_name": "last_name",
                           "country": "country"}),
    "orders": Source("orders", "order_id", "s.ordered_at",
                     {"email": "email", "phone": "phone", "country": "shipping_country"}),
}


class SurvivorshipError(ValueError):
    """Invalid survivorship configuration; the message starts with the offending key."""


@dataclass(frozen=True)
class FieldRule:
    field: str
    rule: str
    sources: tuple[str, ...] = ()  # source_priority only, best first
    relay_domains: tuple[str, ...] = ()  # email only: values at these domains (or subdomains) lose to any other

    def allows(self, source: str) -> bool:
        carried = self.field in SOURCES[source].columns
        return carried and (self.rule != "source_priority" or source in self.sources)

    def priority(self, source: str) -> int:
        return self.sources.index(source) if self.rule == "source_priority" else 0


DEFAULT_FILE = "survivorship.yaml"
RELAY_KEY = "relay_email_domains"
# lower-case host names of two labels or more: safe as SQL LIKE literals (no quote, '%' or '_')
_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+")


def default_rules() -> dict[str, FieldRule]:
    """The rules shipped in the package."""
    text_ = resources.files("crm_pipeline.profiles").joinpath(DEFAULT_FILE).read_text(encoding="utf-8")
    rules, relay = _parse_section(_load_yaml(text_, DEFAULT_FILE))
    missing = [f for f in GOLDEN_FIELDS if f not in rules]
    if missing:  # a packaging mistake, not a user's
        raise SurvivorshipError(f"survivorship.fields: the packaged defaults lack {', '.join(missing)}")
    return _with_relay(rules, relay or ())


def load_rules(path: str | Path | None = None) -> dict[str, FieldRule]:
    """The packaged rules, overridden field by field by the user's YAML file at `path` (if given); the user's
    `relay_email_domains`, when it names them, replace the packaged list (`[]` turns the demotion off)."""
    rules = default_rules()
    if path is None:
        return rules
    path = Path(path)
    if not path.is_file():
        raise SurvivorshipError(f"survivorship file not found: {path}")
    fields, relay = _parse_section(_load_yaml(path.read_text(encoding="utf-8"), str(path)))
    kept = rules["email"].relay_domains
    rules.update(fields)
    return _with_relay(rules, kept if relay is None else relay)


def _with_relay(rules: dict[str, FieldRule], relay: tuple[str, ...]) -> dict[str, FieldRule]:
    """`rules` with the relay domains on the email rule (whichever file that rule came from)."""
    return {**rules, "email": replace(rules["email"], relay_domains=relay)} if "email" in rules else rules


def _load_yaml(text_: str, label: str) -> Any:
    try:
        return yaml.safe_load(text_)
    except yaml.YAMLError as exc:
        raise SurvivorshipError(f"{label}: not valid YAML: {exc}") from None


def parse_rules(raw: Any) -> dict[str, FieldRule]:
    """Validate a loaded YAML document (`{survivorship: {fields: {...}}}`) into rules per field (with the
    document's `relay_email_domains`, if any, on its email rule)."""
    rules, relay = _parse_section(raw)
    return _with_relay(rules, relay) if relay is not None else rules


def _parse_section(raw: Any) -> tuple[dict[str, FieldRule], tuple[str, ...] | None]:
    """The field rules a document names, and its relay domains (None when it names none)."""
    if not isinstance(raw, dict) or "survivorship" not in raw:
        raise SurvivorshipError("survivorship: missing; the file needs a top-level 'survivorship' mapping")
    section = raw["survivorship"]
    if not isinstance(section, dict):
        raise SurvivorshipError(f"survivorship: expected a mapping with 'fields', got {_kind(section)}")
    for key in section:
        if key not in ("fields", RELAY_KEY):
            raise SurvivorshipError(f"survivorship.{key}: unknown key; expected fields, {RELAY_KEY}")
    fields = section.get("fields") or {}
    if not isinstance(fields, dict):
        raise SurvivorshipError(f"survivorship.fields: expected a mapping of field -> rule, got {_kind(fields)}")
    relay = _parse_relay(section[RELAY_KEY]) if RELAY_KEY in section else None
    return {str(name): _parse_field(str(name), spec) for name, spec in fields.items()}, relay


def _parse_relay(domains: Any) -> tuple[str, ...]:
    where = f"survivorship.{RELAY_KEY}"
    if domains is None:
        return ()
    if not isinstance(domains, list):
        raise SurvivorshipError(f"{where}: expected a list of domains, e.g. [marketplace.amazon.com], "
                                f"got {_kind(domains)}")
    parsed = []
    for i, domain in enumerate(domains):
        name = domain.strip().lower().lstrip("@.") if isinstance(domain, str) else domain
        if not isinstance(name, str) or not _DOMAIN.fullmatch(name):
            raise SurvivorshipError(f"{where}[{i}]: {domain!r} is not a domain name (e.g. marketplace.amazon.com)")
        parsed.append(name)
    return tuple(dict.fromkeys(parsed))


def _parse_field(name: str, spec: Any) -> FieldRule:
    where = f"survivorship.fields.{name}"
    if name not in GOLDEN_FIELDS:
        raise SurvivorshipError(f"{where}: unknown field; expected one of {', '.join(GOLDEN_FIELDS)}")
    if isinstance(spec, str):
        spec = {"rule": spec}
    if not isinstance(spec, dict):
        raise SurvivorshipError(f"{where}: expected a mapping with 'rule' (and 'sources'), got {_kind(spec)}")
    for key in spec:
        if key not in ("rule", "sources"):
            raise SurvivorshipError(f"{where}.{key}: unknown key; expected rule, sources")
    if "rule" not in spec:
        raise SurvivorshipError(f"{where}.rule: missing; expected one of {', '.join(RULES)}")
    rule = spec["rule"]
    if rule not in RULES:
        raise SurvivorshipError(f"{where}.rule: {rule!r} is not one of {', '.join(RULES)}")
    if rule != "source_priority":
        if "sources" in spec:
            raise SurvivorshipError(f"{where}.sources: only used by rule source_priority (this field's rule is {rule})")
        return FieldRule(name, rule)
    sources = spec.get("sources")
    if not isinstance(sources, list) or not sources:
        raise SurvivorshipError(f"{where}.sources: source_priority needs an ordered list of sources, "
                                f"e.g. [customers, orders, subscribers]")
    for i, source in enumerate(sources):
        at = f"{where}.sources[{i}]"
        if source not in SOURCES:
            raise SurvivorshipError(f"{at}: {source!r} is not one of {', '.join(SOURCES)}")
        if name not in SOURCES[source].columns:
            having = ", ".join(s for s, src in SOURCES.items() if name in src.columns)
            raise SurvivorshipError(f"{at}: {source!r} has no {name} (sources with it: {having})")
        if source in sources[:i]:
            raise SurvivorshipError(f"{at}: {source!r} is listed twice")
    return FieldRule(name, rule, tuple(sources))


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


# --- SQL -------------------------------------------------------------------------------------------

def _candidates_sql(source: Source, rules: dict[str, FieldRule], full: bool = True) -> str | None:
    """One source's candidate values: its records x the fields it offers (a portable unpivot)."""
    offered = [r for r in rules.values() if r.allows(source.entity)]
    if not offered:
        return None
    values = ", ".join(f"('{r.field}', '{r.rule}', {r.priority(source.entity)}, "
                       f"{1 if r.rule == 'most_frequent' else 0})" for r in offered)
    pick = " ".join(f"WHEN '{r.field}' THEN {text('s.' + source.columns[r.field])}" for r in offered)
    return f"""
        SELECT m.contact_id, f.field, f.rule, f.priority, f.by_frequency,
               NULLIF(TRIM(CASE f.field {pick} END), '') AS value,
               '{source.entity}' AS source_entity, s._brand AS brand, s.{source.key} AS source_key,
               {source.record_at} AS record_at
        FROM stg_{source.entity} s
        JOIN identity_map m ON m.entity = '{source.entity}' AND m.brand = s._brand AND m.source_key = s.{source.key}
        {only_recomputed("m", full, GOLDEN)}
        CROSS JOIN (VALUES {values}) AS f(field, rule, priority, by_frequency)
        WHERE {counts(source.record_at)}"""


def golden_records_sql(rules: dict[str, FieldRule], full: bool = True, into: str = "golden_records") -> str:
    """INSERT ... SELECT of the winning value per contact and field (binds :as_of, :as_of_end).

    Every contact when `full`, else the contacts in `tmp_profile_golden` only.

    A value's count matters to `most_frequent` fields only: it is counted for them alone, by a GROUP BY (a
    window over every candidate, 15 million rows at 1M people, cost a third of the build's golden records).

    Field names, rules and sources are embedded as literals only after validation against
    the fixed vocabularies above; nothing user-typed reaches the SQL otherwise.
    """
    for r in rules.values():  # defence in depth: the parser already guarantees this
        assert r.field in GOLDEN_FIELDS and r.rule in RULES and all(s in SOURCES for s in r.sources)
        assert all(_DOMAIN.fullmatch(d) for d in r.relay_domains)
    parts = [sql for source in SOURCES.values() if (sql := _candidates_sql(source, rules, full))]
    union = "\n        UNION ALL".join(parts)
    return f"""
    INSERT INTO {into} (as_of, contact_id, field, value, rule, source_entity, brand, source_key,
                                record_at, candidate_count)
    WITH candidates AS ({union}
    ),
    present AS (
        SELECT c.*, {_relayed_sql(rules)} AS relayed FROM candidates c WHERE value IS NOT NULL
    ),
    frequencies AS (
        SELECT contact_id, field, value, COUNT(*) AS value_count FROM present WHERE by_frequency = 1
        GROUP BY contact_id, field, value
    ),
    counted AS (
        SELECT c.*, COALESCE(f.value_count, 0) AS value_count
        FROM present c
        LEFT JOIN frequencies f ON f.contact_id = c.contact_id AND f.field = c.field AND f.value = c.value
    ),
    ranked AS (
        SELECT c.*,
               ROW_NUMBER() OVER (PARTITION BY contact_id, field
                                  ORDER BY relayed, by_frequency * value_count DESC, priority,
                                           record_at DESC NULLS LAST, source_entity, brand, source_key) AS pick,
               COUNT(*) OVER (PARTITION BY contact_id, field) AS candidate_count
        FROM counted c
    )
    SELECT :as_of, contact_id, field, value, rule, source_entity, brand, source_key, record_at, candidate_count
    FROM ranked WHERE pick = 1"""


def _relayed_sql(rules: dict[str, FieldRule]) -> str:
    """1 for a candidate at one of its field's relay domains (the domain itself or a subdomain), else 0: sorted
    first, it makes a relay win only when the contact has nothing else."""
    whens = " ".join(
        f"WHEN field = '{r.field}' AND ("
        + " OR ".join(f"LOWER(value) LIKE '%@{d}' OR LOWER(value) LIKE '%.{d}'" for d in r.relay_domains)
        + ") THEN 1" for r in rules.values() if r.relay_domains)
    return f"CASE {whens} ELSE 0 END" if whens else "0"


def dated_into_day_sql(scope: str) -> str:
    """The contacts of `scope` with a record of a golden source dated from :since to the end of as_of: on a new
    day, the only contacts (besides those with new or changed records) whose candidates change."""
    return " UNION ".join(
        f"SELECT m.contact_id FROM stg_{s.entity} s JOIN identity_map m ON m.entity = '{s.entity}' "
        f"AND m.brand = s._brand AND m.source_key = s.{s.key}{only_recomputed('m', False, scope)} "
        f"WHERE {s.record_at} >= :since AND {s.record_at} < :as_of_end" for s in SOURCES.values())


def build_golden_records(conn: sa.Connection, params: dict, rules: dict[str, FieldRule], *,
                         full: bool = True) -> int:
    """Rewrite the golden records of the contacts in `tmp_profile_golden` (all when `full`; inside the caller's
    transaction). Returns the table's rows."""
    if full or conn.execute(sa.text(f"SELECT COUNT(*) FROM {GOLDEN}")).scalar_one():
        into = rewrite.begin(conn, "golden_records", full=full)
        conn.execute(sa.text(golden_records_sql(rules, full, into)), {k: params[k] for k in ("as_of", "as_of_end")})
        rewrite.finish(conn, "golden_records", ("contact_id", "field"), GOLDEN, full=full)
    return conn.execute(sa.text("SELECT COUNT(*) FROM golden_records")).scalar_one()
