"""The shapes of the data contract: a column, an entity. Pure data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

# Logical types a contract column may have; the quality stage parses raw text into these.
TYPES = ("string", "integer", "decimal", "timestamp", "date", "boolean", "json")


@dataclass(frozen=True)
class Column:
    """One column users write files against."""

    name: str
    type: str = "string"
    required: bool = False
    allowed: tuple[str, ...] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"column {self.name!r}: unknown type {self.type!r}; expected one of {TYPES}")


@dataclass(frozen=True)
class Entity:
    """One kind of file: its columns, natural key and row-level requirements.

    `one_of` lists groups of columns of which at least one must be present in the
    file header and, per row, at least one must hold a value (e.g. an order needs a
    customer_id or an email).
    """

    name: str
    description: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    one_of: tuple[tuple[str, ...], ...] = ()
    person_linked: bool = True
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {c.name: c for c in self.columns}
        if len(by_name) != len(self.columns):
            raise ValueError(f"entity {self.name!r}: duplicated column names")
        for name in self.key + tuple(n for group in self.one_of for n in group):
            if name not in by_name:
                raise ValueError(f"entity {self.name!r}: {name!r} is not one of its columns")
        object.__setattr__(self, "_by_name", by_name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Columns that must be in every file's header and hold a value on every row."""
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        return self._by_name[name]

    def has_column(self, name: str) -> bool:
        return name in self._by_name

    def missing_header_columns(self, header: list[str] | tuple[str, ...]) -> list[str]:
        """Required columns absent from a file header, plus unmet `one_of` groups (as `a|b`)."""
        present = set(header)
        missing = [c for c in self.required_columns if c not in present]
        missing += ["|".join(g) for g in self.one_of if not present.intersection(g)]
        return missing

    def extra_header_columns(self, header: list[str] | tuple[str, ...]) -> list[str]:
        """Header columns the contract does not know; kept, and reported, by ingestion."""
        return [c for c in header if c not in self._by_name]

    def source_key(self, row: dict[str, str]) -> str:
        """The natural key as written in the file, parts joined by ':' for a composite key."""
        return ":".join(str(row[k]) for k in self.key)
