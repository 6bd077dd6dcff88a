"""Put landed files and truth files on disk, byte-for-byte reproducible.

CSV: header row (names quoted), UTF-8 without BOM, missing values as empty fields; values
unquoted, except in files where some value holds a comma, quote or line break: there every
text value is quoted (RFC 4180, `""` escapes a quote; e.g. subscribers.preferences JSON).
`.csv.gz`: the same CSV gzip-compressed with mtime 0.
JSONL: one JSON object per line, all values strings, missing values `null`.
Parquet: all columns strings (the same text a CSV would hold), snappy-compressed.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from crm_pipeline.synth import reference as ref
from crm_pipeline.synth.columns import STR, const, ids, join, table_take
from crm_pipeline.synth.landed import LandedFile
from crm_pipeline.synth.population import Population


def _csv_bytes(table: pa.Table) -> bytes:
    """Unquoted CSV when no value needs quotes (smaller, faster); standard quoting otherwise."""
    sink = pa.BufferOutputStream()
    try:
        pcsv.write_csv(table, sink, pcsv.WriteOptions(quoting_style="none"))
    except pa.ArrowInvalid:
        sink = pa.BufferOutputStream()
        pcsv.write_csv(table, sink)
    return sink.getvalue().to_pybytes()


def _json_text(values: pa.Array) -> pa.Array:
    escaped = pc.replace_substring(pc.replace_substring(values, "\\", "\\\\"), '"', '\\"')
    return pc.fill_null(join('"', escaped, '"'), "null")


def jsonl_bytes(table: pa.Table) -> bytes:
    """JSON Lines built column-wise with Arrow kernels (no per-row Python)."""
    parts: list = ["{"]
    for i, name in enumerate(table.column_names):
        parts += [("," if i else "") + f'"{name}":', _json_text(table.column(name).combine_chunks())]
    parts.append("}\n")
    lines = join(*parts)
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1, offset=lines.offset * 4)
    data = lines.buffers()[2]
    return data.to_pybytes()[offsets[0]:offsets[-1]]


def write_landed(f: LandedFile, landing: Path) -> int:
    """Write one file; returns its size in bytes."""
    path = landing / f.brand / f.entity / f.name
    path.parent.mkdir(parents=True, exist_ok=True)
    table = f.table()
    if f.format == "parquet":
        pq.write_table(table, path, compression="snappy")
        return path.stat().st_size
    if f.format == "jsonl":
        data = jsonl_bytes(table)
    else:
        data = _csv_bytes(table)
        if f.format == "csv.gz":
            data = gzip.compress(data, compresslevel=6, mtime=0)
    path.write_bytes(data)
    return len(data)


def records_table(f: LandedFile, pop: Population) -> pa.Table:
    """truth/records.csv rows of one file: who is behind each row, under the key as written."""
    n = f.n_rows
    person = pop.person_id.take(pa.array(np.maximum(f.person, 0), mask=f.person < 0))
    return pa.table({
        "brand": const(f.brand, n), "entity": const(f.entity, n),
        "source_key": f.source_key(), "person_id": pc.fill_null(person, ""),
        "file": const(f.path, n), "row_number": pa.array(np.arange(1, n + 1, dtype=np.int64)),
    })


def write_truth(files: list[LandedFile], pop: Population, truth: Path) -> dict[str, int]:
    """records.csv (brand, entity, source_key, person_id, then the row's file and row_number;
    files in files.csv order, rows in file order), files.csv, bad_rows.csv, exact_duplicates.csv
    and people.csv."""
    truth.mkdir(parents=True, exist_ok=True)
    options = pcsv.WriteOptions(quoting_style="none")
    with pcsv.CSVWriter(truth / "records.csv", records_table(files[0], pop).schema, write_options=options) as w:
        for f in files:
            w.write_table(records_table(f, pop))
    paths = pa.array([f.path for f in files], STR)
    n_rows = np.array([f.n_rows for f in files], dtype=np.int64)
    manifest = pa.table({
        "file": paths, "brand": pa.array([f.brand for f in files], STR),
        "entity": pa.array([f.entity for f in files], STR), "format": pa.array([f.format for f in files], STR),
        "rows": pa.array(n_rows), "first_record": pa.array(np.cumsum(n_rows) - n_rows + 1),
    })
    pcsv.write_csv(manifest, truth / "files.csv", options)
    bad_file = np.concatenate([np.full(f.bad_rows.size, i) for i, f in enumerate(files)])
    bad = pa.table({
        "file": paths.take(pa.array(bad_file.astype(np.int64))),
        "row_number": pa.array(np.concatenate([f.bad_rows + 1 for f in files]).astype(np.int64)),
        "reason": pa.array(np.concatenate([np.asarray(f.bad_reasons, dtype=object) for f in files]), STR),
    })
    pcsv.write_csv(bad, truth / "bad_rows.csv", options)
    dup_file = np.concatenate([np.full(f.dup_rows.size, i) for i, f in enumerate(files)])
    dups = pa.table({
        "file": paths.take(pa.array(dup_file.astype(np.int64))),
        "row_number": pa.array(np.concatenate([f.dup_rows + 1 for f in files]).astype(np.int64)),
        "duplicate_of_row_number": pa.array(np.concatenate([f.dup_of + 1 for f in files]).astype(np.int64)),
    })
    pcsv.write_csv(dups, truth / "exact_duplicates.csv", options)
    people = pa.table({
        "person_id": pop.person_id,
        "first_name": table_take(ref.FIRST_NAMES, pop.first),
        "last_name": table_take(ref.LAST_NAMES, pop.last),
        "email": pop.email,
        "phone": pop.phone,
        "country": table_take(ref.COUNTRIES, pop.country),
        "household_id": ids("H", pop.household, max(7, len(str(pop.n)))),
        "second_email": pop.email2,
    })
    people_csv = _csv_bytes(people)
    (truth / "people.csv").write_bytes(people_csv)
    return {"bad_rows": bad.num_rows, "exact_duplicates": dups.num_rows}
