"""The audience rule language: YAML/JSON data parsed into a small tree, never evaluated.

A rule is one node:
- `{all: [node, ...]}`, `{any: [node, ...]}`, `{not: node}`
- a field condition: `{field: order_count, ">=": 2}`: exactly one operator key out of
  `=, !=, <, <=, >, >=, in, within_days, days_ago_between, is_null`, on an allow-listed field.
  `within_days: N` means as_of - N < value <= as_of (day granularity, UTC days for timestamps);
  `days_ago_between: [a, b]` means as_of - b <= value <= as_of - a (b may be null: "a or more days ago").
  A comparison on a missing value is false (so `not` stays two-valued); test missing values with `is_null`.
- an event condition: `{event: email_click, brand: brand_a, min_count: 2, within_days: 30}`,
  `{event: purchase, category: Shoes, within_days: 90}`, `{event: product_view, sku: X, without: purchase}`.

Fields, operators, events and keys are allow-listed here; values are checked against the
field's type and later travel as bound parameters. Every error names the audience and the
key path (`audience 'x': rule.all[1].field: ...`); one RuleError carries every problem of the
rule (`messages`), so a user fixes a file in one pass.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Union

from crm_pipeline.scoring.config import CHANNELS, GROWTH_BANDS, STAGES
from crm_pipeline.settings import SettingsError


class RuleError(SettingsError):
    """An audience rule or definition is invalid: one or more problems, each naming the audience and key path."""

    def __init__(self, *messages: str):
        self.messages: tuple[str, ...] = messages
        super().__init__("\n".join(messages))


_BAD = object()  # what _Problems.check returns for a part that had problems


class _Problems:
    """Collects the problems of independent parts, so one bad key does not hide the next."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, error: RuleError) -> None:
        self.messages.extend(error.messages)

    def check(self, parse, *args, **kwargs):
        try:
            return parse(*args, **kwargs)
        except RuleError as exc:
            self.add(exc)
            return _BAD

    def raise_any(self) -> None:
        if self.messages:
            raise RuleError(*self.messages)


# Field catalogues per source: name -> type (int, float, date, timestamp, string, bool).
_COUNTS = {f"email_{k}_{n}d_count": "int" for k in ("open", "click") for n in (30, 90, 365)}
PROFILE_FIELDS: dict[str, str] = {
    "order_count": "int", "revenue": "float", "average_order_value": "float",
    "first_order_date": "date", "last_order_date": "date",
    "purchased_unit_count": "int", "returned_unit_count": "int", "return_rate": "float",
    "last_open_at": "timestamp", "last_click_at": "timestamp", "last_browse_at": "timestamp",
    "last_engagement_at": "timestamp", **_COUNTS,
    "top_category_bought": "string", "top_category_browsed": "string", "price_band_bought": "string",
    "subscription_status": "string", "subscribed_date": "date", "email_consent": "bool",
    "brand_count": "int", "country": "string", "region": "string", "city": "string",
    "postal_code": "string", "birth_date": "date",
    # from the scoring stage (crm_pipeline/scoring), per brand on brand rows and across brands otherwise
    "engagement_score": "float", "engagement_change_7d": "float", "engagement_change_30d": "float",
    "engagement_growth_band": "string", "engagement_top_percent": "float",
    "preferred_channel": "string", "lifecycle_stage": "string",
}
# Fields with a closed set of values: a value outside it is a typo, reported with the key path.
FIELD_VALUES: dict[str, tuple[str, ...]] = {
    "engagement_growth_band": GROWTH_BANDS, "preferred_channel": CHANNELS, "lifecycle_stage": STAGES,
}
# Profile fields that are model estimates: an audience reading one counts as predictive.
ESTIMATED_FIELDS = frozenset({"preferred_channel"})
# The scoring stage's other fields: an audience reading one is of kind `engagement`.
SCORING_FIELDS = frozenset({"engagement_score", "engagement_change_7d", "engagement_change_30d",
                            "engagement_growth_band", "engagement_top_percent", "lifecycle_stage"})
PREDICTION_FIELDS: dict[str, str] = {
    "rfm_segment": "string", "churn_probability": "float", "risk_band": "string",
    "p_purchase_30d": "float", "predicted_clv": "float", "clv_top_percent": "float",
    "p_alive": "float", "expected_purchases_90d": "float", "expected_purchases_365d": "float",
}
SOURCES = {"profile": PROFILE_FIELDS, "predictions": PREDICTION_FIELDS}

OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "within_days", "days_ago_between", "is_null")
EMAIL_EVENTS = ("email_send", "email_open", "email_click", "email_bounce", "email_unsubscribe", "email_complaint")
WEB_EVENTS = ("page_view", "product_view", "add_to_cart", "search", "checkout")
EVENTS = (*EMAIL_EVENTS, "purchase", *WEB_EVENTS)
EVENT_KEYS = ("event", "brand", "sku", "category", "campaign_id", "min_count", "within_days", "days_ago_between",
              "without")
MAX_IN_VALUES = 10_000
MAX_DEPTH = 20
_MAX_DAYS = 36_500


@dataclass(frozen=True)
class All:
    items: tuple["Node", ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple["Node", ...]


@dataclass(frozen=True)
class Not:
    item: "Node"


@dataclass(frozen=True)
class FieldCondition:
    field: str
    kind: str  # the field's type
    op: str
    value: Any


@dataclass(frozen=True)
class EventCondition:
    event: str
    brand: str | None = None
    sku: str | None = None
    category: str | None = None
    campaign_id: str | None = None
    min_count: int = 1
    within_days: int | None = None
    days_ago_between: tuple[int, int | None] | None = None
    without: str | None = None


Node = Union[All, AnyOf, Not, FieldCondition, EventCondition]


class _Ctx:
    def __init__(self, audience: str, fields: dict[str, str], allow_events: bool):
        self.audience, self.fields, self.allow_events = audience, fields, allow_events

    def fail(self, path: str, message: str) -> RuleError:
        return RuleError(f"audience {self.audience!r}: {path}: {message}")


def parse_rule(raw: Any, *, audience: str, path: str = "rule", source: str = "profile") -> Node:
    """Parse `raw` (plain data from YAML/JSON) into a rule tree, or raise RuleError naming audience and path."""
    if source not in SOURCES:
        raise RuleError(f"audience {audience!r}: source: unknown source {source!r}; known: {', '.join(SOURCES)}")
    return _node(raw, path, _Ctx(audience, SOURCES[source], allow_events=source == "profile"), 0)


def _node(raw: Any, path: str, ctx: _Ctx, depth: int) -> Node:
    if depth > MAX_DEPTH:
        raise ctx.fail(path, f"rule nested deeper than {MAX_DEPTH} levels")
    if not isinstance(raw, dict) or not raw:
        raise ctx.fail(path, f"expected a mapping (all/any/not, a field condition or an event condition), "
                             f"got {type(raw).__name__}")
    keys = [str(k) for k in raw]
    if any(not isinstance(k, str) for k in raw):
        raise ctx.fail(path, f"keys must be text, got {list(raw)!r}")
    for group in ("all", "any", "not"):
        if group in raw:
            if len(raw) != 1:
                extra = ", ".join(k for k in keys if k != group)
                raise ctx.fail(f"{path}.{group}",
                               f"'{group}' must be the only key of its mapping (also found: {extra})")
            value = raw[group]
            if group == "not":
                return Not(_node(value, f"{path}.not", ctx, depth + 1))
            if not isinstance(value, list) or not value:
                raise ctx.fail(f"{path}.{group}", "expected a non-empty list of conditions")
            problems = _Problems()
            items = tuple(problems.check(_node, item, f"{path}.{group}[{i}]", ctx, depth + 1)
                          for i, item in enumerate(value))
            problems.raise_any()
            return All(items) if group == "all" else AnyOf(items)
    if "field" in raw:
        return _field(raw, path, ctx)
    if "event" in raw:
        if not ctx.allow_events:
            raise ctx.fail(f"{path}.event", "event conditions are only allowed on the profile source")
        return _event(raw, path, ctx)
    raise ctx.fail(path, f"unknown condition keys {keys}; expected one of all, any, not, field, event")


def _field(raw: dict, path: str, ctx: _Ctx) -> FieldCondition:
    problems = _Problems()
    name = raw["field"]
    known_field = isinstance(name, str) and name in ctx.fields
    if not known_field:
        problems.add(ctx.fail(f"{path}.field", f"unknown field {name!r}; known: {', '.join(sorted(ctx.fields))}"))
    ops = [k for k in raw if k != "field"]
    unknown = [k for k in ops if k not in OPERATORS]
    for op in unknown:
        problems.add(ctx.fail(f"{path}.{op}", f"unknown operator {op!r}; known: {', '.join(OPERATORS)}"))
    if len(ops) != 1:
        problems.add(ctx.fail(path, f"a field condition needs exactly one operator, found {len(ops)}: {ops}"))
    if not known_field or unknown or len(ops) != 1:
        problems.raise_any()  # the operand can only be judged against a known field and operator
    op = ops[0]
    kind = ctx.fields[name]
    value = _operand(raw[op], op, kind, f"{path}.{op}", ctx)
    allowed = FIELD_VALUES.get(name) if ctx.fields is PROFILE_FIELDS else None
    if allowed and op in ("=", "!=", "in"):
        for v in (value if op == "in" else (value,)):
            if v not in allowed:
                problems.add(ctx.fail(f"{path}.{op}", f"unknown {name} {v!r}; known: {', '.join(allowed)}"))
    problems.raise_any()
    return FieldCondition(name, kind, op, value)


def _operand(value: Any, op: str, kind: str, path: str, ctx: _Ctx) -> Any:
    if op == "is_null":
        if not isinstance(value, bool):
            raise ctx.fail(path, f"expected true or false, got {value!r}")
        return value
    if op == "within_days":
        if kind not in ("date", "timestamp"):
            raise ctx.fail(path, f"within_days needs a date or timestamp field, not a {kind} field")
        return _days(value, path, ctx)
    if op == "days_ago_between":
        if kind not in ("date", "timestamp"):
            raise ctx.fail(path, f"days_ago_between needs a date or timestamp field, not a {kind} field")
        return _between(value, path, ctx)
    if op == "in":
        if not isinstance(value, list) or not value:
            raise ctx.fail(path, "expected a non-empty list")
        if len(value) > MAX_IN_VALUES:
            raise ctx.fail(path, f"at most {MAX_IN_VALUES} values")
        problems = _Problems()
        values = tuple(problems.check(_scalar, v, kind, f"{path}[{i}]", ctx) for i, v in enumerate(value))
        problems.raise_any()
        return values
    if kind == "bool" and op not in ("=", "!="):
        raise ctx.fail(path, f"operator {op!r} does not apply to a true/false field")
    return _scalar(value, kind, path, ctx)


def _scalar(value: Any, kind: str, path: str, ctx: _Ctx) -> Any:
    if kind == "bool":
        if isinstance(value, bool):
            return value
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind == "string":
        if isinstance(value, str):
            return value
    elif kind in ("date", "timestamp"):
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        raise ctx.fail(path, f"expected a date (YYYY-MM-DD), got {value!r}")
    raise ctx.fail(path, f"expected a {kind} value, got {type(value).__name__} {value!r}")


def _days(value: Any, path: str, ctx: _Ctx) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= _MAX_DAYS:
        raise ctx.fail(path, f"expected a whole number of days from 1 to {_MAX_DAYS}, got {value!r}")
    return value


def _between(value: Any, path: str, ctx: _Ctx) -> tuple[int, int | None]:
    if not isinstance(value, list) or len(value) != 2:
        raise ctx.fail(path, f"expected [from_days, to_days] (to_days may be null), got {value!r}")
    low, high = value
    if not isinstance(low, int) or isinstance(low, bool) or not 0 <= low <= _MAX_DAYS:
        raise ctx.fail(f"{path}[0]", f"expected a whole number of days from 0 to {_MAX_DAYS}, got {low!r}")
    if high is not None and (not isinstance(high, int) or isinstance(high, bool) or not low <= high <= _MAX_DAYS):
        raise ctx.fail(f"{path}[1]", f"expected null or a whole number of days from {low} to {_MAX_DAYS}, "
                                     f"got {high!r}")
    return (low, high)


def _event(raw: dict, path: str, ctx: _Ctx) -> EventCondition:
    problems = _Problems()
    for key in (k for k in raw if k not in EVENT_KEYS):
        problems.add(ctx.fail(f"{path}.{key}", f"unknown key {key!r} in an event condition; "
                                               f"known: {', '.join(EVENT_KEYS)}"))
    event = raw["event"]
    if event not in EVENTS:
        problems.add(ctx.fail(f"{path}.event", f"unknown event {event!r}; known: {', '.join(EVENTS)}"))
    kw: dict[str, Any] = {"event": event}
    for key in ("brand", "sku", "category", "campaign_id"):
        if key in raw:
            if not isinstance(raw[key], str) or not raw[key]:
                problems.add(ctx.fail(f"{path}.{key}", f"expected non-empty text, got {raw[key]!r}"))
            else:
                kw[key] = raw[key]
    for key in ("sku", "category"):
        if key in kw and event in EMAIL_EVENTS:
            problems.add(ctx.fail(f"{path}.{key}", f"does not apply to {event}"))
    if "campaign_id" in kw and event in EVENTS and event not in EMAIL_EVENTS:
        problems.add(ctx.fail(f"{path}.campaign_id", f"does not apply to {event}"))
    if "min_count" in raw:
        count = raw["min_count"]
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1_000_000:
            problems.add(ctx.fail(f"{path}.min_count", f"expected a whole number from 1, got {count!r}"))
        kw["min_count"] = count
    if "within_days" in raw and "days_ago_between" in raw:
        problems.add(ctx.fail(path, "use within_days or days_ago_between, not both"))
    if "within_days" in raw:
        kw["within_days"] = problems.check(_days, raw["within_days"], f"{path}.within_days", ctx)
    if "days_ago_between" in raw:
        kw["days_ago_between"] = problems.check(_between, raw["days_ago_between"], f"{path}.days_ago_between", ctx)
    if "without" in raw:
        without = raw["without"]
        if without not in ("purchase", *WEB_EVENTS) or event in EMAIL_EVENTS:
            problems.add(ctx.fail(f"{path}.without", f"expected one of purchase, {', '.join(WEB_EVENTS)} after a "
                                                     f"purchase or web event, got {without!r}"))
        kw["without"] = without
    problems.raise_any()
    return EventCondition(**kw)


def reads_field(node: Node, fields) -> bool:
    """True when the rule tree has a field condition on any of `fields`."""
    if isinstance(node, FieldCondition):
        return node.field in fields
    if isinstance(node, Not):
        return reads_field(node.item, fields)
    if isinstance(node, (All, AnyOf)):
        return any(reads_field(n, fields) for n in node.items)
    return False


def validate_file(path) -> list[str]:
    """Every problem of a user's audience file (merged with the shipped defaults); [] when valid."""
    from crm_pipeline.audiences.config import validate_file as _validate  # noqa: PLC0415 (config imports rules)
    return _validate(path)
