"""Audience definitions: the packaged `audiences.yaml` merged with a user's file, validated fast.

Every problem names the audience and the key path. `validate_file` collects all problems of a
file (for `crm-pipeline audiences validate FILE`) instead of stopping at the first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from crm_pipeline.audiences.rules import (
    ESTIMATED_FIELDS, SCORING_FIELDS, All, AnyOf, EventCondition, Node, Not, RuleError, _Problems, parse_rule,
    reads_field,
)

TOP_KEYS = ("include_defaults", "audiences", "cross_brand")
AUDIENCE_KEYS = ("label", "type", "source", "scopes", "consent", "rule", "pattern", "min_brands", "description")
TYPES = ("rule", "cross_brand", "rfm_segments")
PATTERNS = ("very_active_on_many", "very_active_on_one_inactive_on_others", "inactive_on_every_brand")
SCOPES = ("all", "brands")
CONSENTS = ("email", "none")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class Audience:
    name: str
    label: str
    type: str = "rule"
    source: str = "profile"
    scopes: tuple[str, ...] = ("all",)
    consent: str = "email"
    rule: Node | None = None
    pattern: str | None = None
    min_brands: int = 2

    @property
    def kind(self) -> str:
        if self.type == "cross_brand":
            return "cross_brand"
        if self.type == "rfm_segments" or self.source == "predictions":
            return "predictive"
        if self.rule is not None and reads_field(self.rule, ESTIMATED_FIELDS):
            return "predictive"  # e.g. the preferred channel: an estimate, not a recorded fact
        if self.rule is not None and reads_field(self.rule, SCORING_FIELDS):
            return "engagement"  # engagement score, growth band, lifecycle stage
        return "smart"


@dataclass(frozen=True)
class AudienceConfig:
    audiences: tuple[Audience, ...]
    very_active: Node
    inactive: Node
    errors: tuple[str, ...] = field(default=())


def _default_raw() -> dict:
    return yaml.safe_load(resources.files("crm_pipeline.audiences").joinpath("audiences.yaml").read_text("utf-8"))


def load_audiences(path: str | Path | None = None) -> AudienceConfig:
    """The packaged audiences merged with `path`'s; raises one RuleError listing every problem."""
    config = _load(path)
    if config.errors:
        error = RuleError(*config.errors)
        if len(config.errors) > 1:  # the message leads with the count; `messages` keeps one problem each
            error.args = (f"{len(config.errors)} problems:\n" + "\n".join(config.errors),)
        raise error
    return config


def validate_file(path: str | Path) -> list[str]:
    """Every problem in the user's audience file merged with the defaults (empty list = valid)."""
    try:
        return list(_load(path).errors)
    except RuleError as exc:
        return list(exc.messages)


def _load(path: str | Path | None) -> AudienceConfig:
    raw = _default_raw()
    if path is None:
        return parse_config(raw)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        user = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise RuleError(f"{path}: not valid YAML: {exc}") from None
    problems = _Problems()
    raw = merge(raw, user, str(path), problems)
    config = parse_config(raw)
    return replace(config, errors=(*problems.messages, *config.errors))


def merge(defaults: dict, user: Any, where: str = "file", problems: _Problems | None = None) -> dict:
    """The defaults with the user's audiences and cross_brand rules on top. Problems with the file's
    top level go to `problems` (the parts that are fine still merge), or raise when none is given."""
    collect = problems if problems is not None else _Problems()
    if not isinstance(user, dict):
        collect.add(RuleError(f"{where}: expected a mapping at the top level"))
        user = {}
    for key in (k for k in user if k not in TOP_KEYS):
        collect.add(RuleError(f"{where}: {key}: unknown key; known: {', '.join(TOP_KEYS)}"))
    include = user.get("include_defaults", True)
    if not isinstance(include, bool):
        collect.add(RuleError(f"{where}: include_defaults: expected true or false, got {include!r}"))
        include = True
    audiences = dict(defaults.get("audiences") or {}) if include else {}
    user_audiences = user.get("audiences") or {}
    if not isinstance(user_audiences, dict):
        collect.add(RuleError(f"{where}: audiences: expected a mapping of name -> definition"))
        user_audiences = {}
    audiences.update(user_audiences)
    cross = dict(defaults.get("cross_brand") or {})
    user_cross = user.get("cross_brand") or {}
    if not isinstance(user_cross, dict):
        collect.add(RuleError(f"{where}: cross_brand: expected a mapping with very_active / inactive"))
        user_cross = {}
    cross.update(user_cross)
    if problems is None:
        collect.raise_any()
    return {"audiences": audiences, "cross_brand": cross}


def parse_config(raw: dict) -> AudienceConfig:
    errors: list[str] = []
    audiences = []
    for name, spec in (raw.get("audiences") or {}).items():
        try:
            audiences.append(_audience(name, spec))
        except RuleError as exc:
            errors.extend(exc.messages)
    cross = raw.get("cross_brand") or {}
    rules = {}
    for key in ("very_active", "inactive"):
        try:
            if key not in cross:
                raise RuleError(f"cross_brand.{key}: missing")
            rules[key] = parse_rule(cross[key], audience=f"cross_brand.{key}", path=f"cross_brand.{key}")
            if _has_event(rules[key]):
                # evaluated on every brand row at once: an event condition cannot follow the row's brand
                raise RuleError(f"audience 'cross_brand.{key}': cross_brand.{key}: event conditions are not "
                                f"allowed here; use profile fields")
        except RuleError as exc:
            errors.extend(exc.messages)
            rules[key] = None
    for key in cross:
        if key not in ("very_active", "inactive"):
            errors.append(f"cross_brand.{key}: unknown key; known: very_active, inactive")
    return AudienceConfig(tuple(audiences), rules["very_active"], rules["inactive"], tuple(errors))


def _audience(name: Any, spec: Any) -> Audience:
    """One audience definition, or a RuleError carrying every problem of it (each naming the key)."""
    problems = _Problems()

    def fail(key: str, message: str) -> None:
        problems.add(RuleError(f"audience {name!r}: {key}: {message}"))

    if not isinstance(name, str) or not _NAME.fullmatch(name):
        fail("name", "use lowercase letters, digits and _ (start with a letter, at most 63 characters)")
    if not isinstance(spec, dict):
        fail("definition", f"expected a mapping, got {type(spec).__name__}")
        problems.raise_any()
    for key in (k for k in spec if k not in AUDIENCE_KEYS):
        fail(str(key), f"unknown key; known: {', '.join(AUDIENCE_KEYS)}")
    kind = spec.get("type", "rule")
    if kind not in TYPES:
        fail("type", f"unknown type {kind!r}; known: {', '.join(TYPES)}")
    label = spec.get("label", name)
    if not isinstance(label, str):
        fail("label", "expected text")
    source = spec.get("source", "profile")
    if source not in ("profile", "predictions"):
        fail("source", f"unknown source {source!r}; known: profile, predictions")
    consent = spec.get("consent", "email")
    if consent not in CONSENTS:
        fail("consent", f"expected one of {', '.join(CONSENTS)}, got {consent!r}")
    per_brand_ok = kind == "rule" and source == "profile"
    scopes = spec.get("scopes", ["all", "brands"] if per_brand_ok else ["all"])
    if not isinstance(scopes, list) or not scopes or any(s not in SCOPES for s in scopes):
        fail("scopes", f"expected a non-empty list out of {', '.join(SCOPES)}, got {scopes!r}")
    elif "brands" in scopes and not per_brand_ok and kind in TYPES:
        fail("scopes", "only rule audiences on the profile source can run per brand")
    kw: dict[str, Any] = {"name": name, "label": label, "type": kind, "source": source,
                          "scopes": tuple(dict.fromkeys(scopes)) if isinstance(scopes, list) else (),
                          "consent": consent}
    if kind == "rule":
        if "rule" not in spec:
            fail("rule", "missing")
        elif source in ("profile", "predictions"):  # a rule is judged against its source's fields
            kw["rule"] = problems.check(parse_rule, spec["rule"], audience=name, source=source)
    elif "rule" in spec and kind in TYPES:
        fail("rule", f"not used by type {kind}")
    if kind == "cross_brand":
        pattern = spec.get("pattern")
        if pattern not in PATTERNS:
            fail("pattern", f"expected one of {', '.join(PATTERNS)}, got {pattern!r}")
        kw["pattern"] = pattern
        min_brands = spec.get("min_brands", 2)
        if not isinstance(min_brands, int) or isinstance(min_brands, bool) or min_brands < 1:
            fail("min_brands", f"expected a whole number from 1, got {min_brands!r}")
        kw["min_brands"] = min_brands
    elif kind in TYPES:
        for key in ("pattern", "min_brands"):
            if key in spec:
                fail(key, "only for type cross_brand")
    problems.raise_any()
    return Audience(**kw)


def _has_event(node: Node) -> bool:
    if isinstance(node, EventCondition):
        return True
    if isinstance(node, Not):
        return _has_event(node.item)
    if isinstance(node, (All, AnyOf)):
        return any(_has_event(n) for n in node.items)
    return False
