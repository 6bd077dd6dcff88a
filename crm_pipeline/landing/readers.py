"""Readers for landed files: every value comes back as text, exactly as written.

CSV goes through pyarrow (multi-threaded); JSON lines and Parquet through an
in-memory DuckDB used purely as a file parser, whatever the warehouse is. Each
reader returns an Arrow table of string columns in the file's own column order,
or raises FileRejected naming the file and, where it can, the row.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

from crm_pipeline.landing.decoding import detect_and_decode
from crm_pipeline.landing.errors import FileRejected


@dataclass(frozen=True)
class ReadResult:
    table: pa.Table  # string columns, in the file's order
    encoding: str


def read_landed_file(path: Path, fmt: str, label: str) -> ReadResult:
    """Read `path` as `fmt` (csv, csv.gz, jsonl, parquet); `label` names it in errors."""
    if fmt == "parquet":
        return ReadResult(_read_parquet(path, label), "binary")
    data = path.read_bytes()
    if fmt == "csv.gz":
        data = _gunzip(data, label)
    if not data or data.isspace():  # not `data.strip()`: that copies the whole file to find one character
        raise FileRejected(label, "empty file: no header row")
    encoding, text = detect_and_decode(label, data)
    if fmt in ("csv", "csv.gz"):
        return ReadResult(_read_csv(text, label), encoding)
    if fmt == "jsonl":
        return ReadResult(_read_jsonl(text, label), encoding)
    raise FileRejected(label, f"unsupported format {fmt!r}")


def _gunzip(data: bytes, label: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as exc:
        raise FileRejected(label, f"not a complete gzip file ({exc}); it may be truncated") from None


def _read_csv(text: bytes, label: str) -> pa.Table:
    header = _csv_header(text, label)
    if text.count(b'"') % 2:
        # Quotes come in pairs in valid CSV (an embedded quote is doubled): an odd count means
        # the file ends inside a quoted value, i.e. it was cut off.
        raise FileRejected(label, "truncated CSV: the file ends inside a quoted value")
    options = dict(
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )
    try:
        return pacsv.read_csv(io.BytesIO(text), read_options=pacsv.ReadOptions(use_threads=True), **options)
    except pa.ArrowInvalid as exc:
        raise FileRejected(label, _csv_error(text, header, options, exc)) from None


def _csv_header(text: bytes, label: str) -> list[str]:
    first_line = text.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")
    header = next(csv.reader([first_line]))
    header = [name.strip() for name in header]
    if not any(header):
        raise FileRejected(label, "empty header row")
    blank = [i + 1 for i, name in enumerate(header) if not name]
    if blank:
        raise FileRejected(label, f"header has unnamed column(s) at position(s) {blank}")
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise FileRejected(label, f"header repeats column(s) {', '.join(duplicated)}")
    return header


def _csv_error(text: bytes, header: list[str], options: dict, exc: Exception) -> str:
    """Re-read serially to learn which data row broke the parse (threads do not know row numbers)."""
    bad: list[pacsv.InvalidRow] = []

    def remember(row: pacsv.InvalidRow) -> str:
        bad.append(row)
        return "error"

    parse = pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=remember)
    try:
        pacsv.read_csv(io.BytesIO(text), read_options=pacsv.ReadOptions(use_threads=False),
                       parse_options=parse, convert_options=options["convert_options"])
    except pa.ArrowInvalid:
        pass
    if bad and bad[0].number is not None:
        row = bad[0]
        what = "truncated CSV: " if row.number == _record_count(text) else ""
        return (f"{what}row {row.number - 1} has {row.actual_columns} field(s), "
                f"the header has {row.expected_columns}")
    return f"unreadable CSV ({exc})"


def _record_count(text: bytes) -> int:
    """Physical records including the header, ignoring a trailing newline (used to spot a cut last row)."""
    return text.rstrip(b"\r\n").count(b"\n") + 1


def _read_jsonl(text: bytes, label: str) -> pa.Table:
    with _temp_copy(text, ".jsonl") as tmp:
        con = duckdb.connect()
        try:
            source = f"read_json_objects('{tmp}', format='newline_delimited')"
            keys = [k for (k,) in con.execute(
                f"SELECT k FROM (SELECT unnest(json_keys(json)) AS k, row_number() OVER () AS n FROM {source}) "
                "GROUP BY k ORDER BY min(n)"
            ).fetchall()]
            if not keys:
                raise FileRejected(label, "no JSON objects in the file")
            columns = "{" + ", ".join(f"'{_sql_literal(k)}': 'VARCHAR'" for k in keys) + "}"
            return con.execute(
                f"SELECT * FROM read_json('{tmp}', format='newline_delimited', columns={columns})"
            ).to_arrow_table()
        except duckdb.Error as exc:
            line = _first_invalid_json_line(con, tmp)
            where = f"line {line} is not a JSON object" if line else _duckdb_message(exc, tmp)
            raise FileRejected(label, f"unreadable JSON lines: {where}") from None
        finally:
            con.close()


def _first_invalid_json_line(con: duckdb.DuckDBPyConnection, tmp: str) -> int | None:
    """The 1-based number of the first non-blank line that is not valid JSON (DuckDB's own count is off)."""
    try:
        found = con.execute(
            "SELECT i FROM (SELECT unnest(lines) AS line, generate_subscripts(lines, 1) AS i "
            f"FROM (SELECT string_split(content, chr(10)) AS lines FROM read_text('{tmp}'))) "
            "WHERE trim(line) <> '' AND (NOT json_valid(line) OR json_type(line::JSON) <> 'OBJECT') "
            "ORDER BY i LIMIT 1"
        ).fetchone()
    except duckdb.Error:
        return None
    return int(found[0]) if found else None


def _read_parquet(path: Path, label: str) -> pa.Table:
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone='UTC'")
        source = f"read_parquet('{_sql_literal(str(path))}')"
        described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        projections = []
        for name, kind, *_ in described:
            quoted = '"' + name.replace('"', '""') + '"'
            if kind.startswith(("STRUCT", "MAP")) or kind.endswith("]"):
                expr = f"to_json({quoted})::VARCHAR"
            elif kind.startswith("TIMESTAMP"):  # typed timestamps become ISO 8601 UTC text, like CSV drops
                expr = f"strftime({quoted}, '%Y-%m-%dT%H:%M:%S.%fZ')"
            else:
                expr = f"CAST({quoted} AS VARCHAR)"
            projections.append(f"{expr} AS {quoted}")
        return con.execute(f"SELECT {', '.join(projections)} FROM {source}").to_arrow_table()
    except duckdb.Error as exc:
        raise FileRejected(label, f"unreadable Parquet: {_duckdb_message(exc, str(path))}") from None
    finally:
        con.close()


class _temp_copy:
    """DuckDB reads from a path: hand it the normalized UTF-8 text as a private temp file."""

    def __init__(self, data: bytes, suffix: str) -> None:
        self.data, self.suffix, self.path = data, suffix, ""

    def __enter__(self) -> str:
        fd, self.path = tempfile.mkstemp(suffix=self.suffix, prefix="crm_")
        with os.fdopen(fd, "wb") as handle:
            handle.write(self.data)
        return _sql_literal(self.path)

    def __exit__(self, *exc: object) -> None:
        os.unlink(self.path)


def _sql_literal(value: str) -> str:
    return value.replace("'", "''")


def _duckdb_message(exc: Exception, path: str) -> str:
    """DuckDB's first error line without its temp-file path or error-class prefix."""
    first = str(exc).strip().splitlines()[0]
    first = first.replace(f'in file "{path}", ', "").replace(f'"{path}"', "the file").replace(path, "the file")
    return first.split(" Error: ", 1)[-1]
