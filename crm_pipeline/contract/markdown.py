"""Render the contract as Markdown: docs/data-contract.md is this function's output."""

from __future__ import annotations

from crm_pipeline.contract.entities import ENTITIES
from crm_pipeline.contract.layout import FORMATS, IN_PROGRESS_SUFFIXES
from crm_pipeline.contract.violations import BAD_ROW_KINDS, MORE_RULES

_INTRO = """# The data contract

Generated from `crm_pipeline/contract/` by `crm-pipeline contract --markdown`; a test keeps
this page identical to the code, so edit the code, not this page.

## Where files land
`landing/<brand>/<entity>/<file>` where `<brand>` is a lowercase slug (`a-z`, `0-9`, `_`, `-`),
`<entity>` is one of the entities below, and the file ends in {formats}.
A file whose place or type fits no entity is rejected with a reason, never guessed at.
Files whose names start with `.` or `~` or end in {temp} are still being written and are left
alone until renamed; so is any file whose size or modification time is still changing.

Text files are UTF-8 (with or without BOM) or UTF-16 with BOM; a file that is not valid in its
encoding is rejected with the byte offset of the first bad byte. CSV files have a header row;
header names match case-insensitively. A file missing a required column is rejected; a missing
optional column is empty; extra columns are kept (in `_extra`) and reported. Keys are unique
within a brand. Timestamps are ISO 8601 by preference (`2025-03-04T13:22:05Z`, offsets allowed).

## Bad rows
A row that breaks a hard rule is quarantined with the rule's name, never silently dropped:

| rule | meaning |
|---|---|
{rules}
"""


def render_markdown() -> str:
    parts = [_INTRO.format(
        formats=", ".join(f"`{s}`" for s in FORMATS),
        temp=", ".join(f"`{s}`" for s in IN_PROGRESS_SUFFIXES),
        rules="\n".join(f"| `{name}` | {meaning} |" for name, meaning in {**BAD_ROW_KINDS, **MORE_RULES}.items()),
    )]
    for entity in ENTITIES.values():
        parts.append(f"## `{entity.name}`\n{entity.description}\n")
        key = " + ".join(f"`{k}`" for k in entity.key)
        parts.append(f"Key: {key}." + ("" if entity.person_linked else " Not tied to a person.") + "\n")
        for group in entity.one_of:
            parts.append("At least one of " + ", ".join(f"`{c}`" for c in group)
                         + " must be present and hold a value on every row.\n")
        parts.append("| column | type | required | allowed values | notes |\n|---|---|---|---|---|")
        for c in entity.columns:
            allowed = ", ".join(f"`{v}`" for v in c.allowed) if c.allowed else ""
            parts.append(f"| `{c.name}` | {c.type} | {'yes' if c.required else ''} | {allowed} | {c.description} |")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"
