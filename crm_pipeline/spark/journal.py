"""A Spark stage's crash-safe commit: new table content written aside, made live by one manifest rename.

Spark's Parquet tables have no transactions. A stage that rewrites several tables writes their new content under
`<warehouse>/<folder>/<table>` first; writing `<folder>/COMMITTED.json` (the manifest: what the journal replaces)
by an atomic rename is the commit. Applying it overwrites live tables from the journal only, so a run that dies
while applying is finished by the next run, which applies the same manifest again. A journal without a manifest
is a run that died before its commit: nothing of it is live, and the next run discards it (`start`).

The file operations work on local folders with the standard library, and on other file systems (HDFS, s3a ...)
through the session's Hadoop FileSystem (untested here: this machine reaches no cluster).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

MANIFEST = "COMMITTED.json"


class Journal:
    """One run's journal folder, its manifest and reads of the live tables and of the journaled ones."""

    def __init__(self, warehouse, folder: str) -> None:
        self.warehouse = warehouse
        self.spark = warehouse.spark
        self.root = f"{warehouse.location}/{folder}"

    def start(self) -> None:
        remove(self.spark, self.root)  # a run that died before its commit: nothing of it is live

    def commit(self, manifest: dict) -> None:
        write_atomically(self.spark, f"{self.root}/{MANIFEST}", json.dumps(manifest))

    def committed(self) -> dict | None:
        """The manifest of a committed journal not yet applied, else None."""
        text = read_text(self.spark, f"{self.root}/{MANIFEST}")
        return None if text is None else json.loads(text)

    def close(self) -> None:
        """Forget an applied journal: the manifest first, so a half-removed folder is never taken as committed."""
        remove(self.spark, f"{self.root}/{MANIFEST}")
        remove(self.spark, self.root)

    def live(self, table: str):
        return self.spark.table(self.warehouse.qualified(table))

    def path(self, table: str) -> str:
        return f"{self.root}/{table}"

    def entries(self, table: str) -> list[str]:
        """The names in `table`'s journal folder (its `column=value` partition folders among them)."""
        return list_names(self.spark, self.path(table))

    def read(self, table: str):
        """`table`'s journaled rows in the live table's columns (none journaled: no rows)."""
        schema = self.live(table).schema
        if not self.entries(table):
            return self.spark.createDataFrame([], schema)
        return self.spark.read.schema(schema).parquet(self.path(table)).select(*schema.names)


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _local(path: str) -> Path:
    return Path(path.removeprefix("file://"))


def _hadoop(spark, path: str):
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path, jvm


def remove(spark, path: str) -> None:
    if _is_local(path):
        target = _local(path)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        return
    fs, hadoop_path, _ = _hadoop(spark, path)
    fs.delete(hadoop_path, True)


def read_text(spark, path: str) -> str | None:
    if _is_local(path):
        target = _local(path)
        return target.read_text() if target.exists() else None
    fs, hadoop_path, jvm = _hadoop(spark, path)
    if not fs.exists(hadoop_path):
        return None
    stream = fs.open(hadoop_path)
    try:
        return jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()


def write_atomically(spark, path: str, text: str) -> None:
    """`text` at `path`, written beside it and renamed into place: a reader finds all of it or none."""
    if _is_local(path):
        target = _local(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        temporary.write_text(text)
        os.replace(temporary, target)
        return
    fs, hadoop_path, jvm = _hadoop(spark, path)
    temporary = jvm.org.apache.hadoop.fs.Path(f"{path}.{uuid.uuid4().hex}.tmp")
    stream = fs.create(temporary, True)
    try:
        stream.write(text.encode())
    finally:
        stream.close()
    if not fs.rename(temporary, hadoop_path):
        raise OSError(f"could not commit the journal at {path}")


def list_names(spark, path: str) -> list[str]:
    if _is_local(path):
        target = _local(path)
        return [p.name for p in target.iterdir()] if target.is_dir() else []
    fs, hadoop_path, _ = _hadoop(spark, path)
    if not fs.exists(hadoop_path):
        return []
    return [status.getPath().getName() for status in fs.listStatus(hadoop_path)]
