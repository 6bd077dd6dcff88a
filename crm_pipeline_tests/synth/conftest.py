"""A small generated landing folder shared by the synth tests (generation takes about a second)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.json as pj
import pyarrow.parquet as pq
import pytest

from crm_pipeline.contract.entities import ENTITIES
from crm_pipeline.synth import generate

END_DATE = dt.date(2025, 6, 30)


def read_landed(path: Path, entity: str) -> pd.DataFrame:
    """A landed file as text columns, missing values as ''."""
    name = path.name
    if name.endswith(".parquet"):
        df = pq.read_table(path).to_pandas()
    elif name.endswith(".jsonl"):
        schema = pa.schema([(c, pa.string()) for c in ENTITIES[entity].column_names])
        df = pj.read_json(path, parse_options=pj.ParseOptions(explicit_schema=schema)).to_pandas()
    else:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    return df.fillna("").astype(str)


def landed_with_people(out: Path, entity: str) -> pd.DataFrame:
    """The good (not planted) rows of every landed file of `entity`, with the truth's brand and person_id."""
    records = pd.read_csv(out / "truth" / "records.csv", dtype=str, keep_default_na=False)
    records = records[(records["entity"] == entity) & (records["person_id"] != "")]
    frames = []
    for path in sorted((out / "landing").glob(f"*/{entity}/*")):
        frame = read_landed(path, entity)
        frame["file"] = path.relative_to(out / "landing").as_posix()
        frame["row_number"] = (pd.RangeIndex(len(frame)) + 1).astype(str)
        frames.append(frame)
    landed = pd.concat(frames, ignore_index=True)
    bad = pd.read_csv(out / "truth" / "bad_rows.csv", dtype=str, keep_default_na=False)   # planted defects
    landed = landed.merge(bad[["file", "row_number"]], how="left", indicator=True)
    landed = landed[landed["_merge"] == "left_only"].drop(columns="_merge")
    return landed.merge(records[["file", "row_number", "brand", "person_id"]], on=["file", "row_number"])


@pytest.fixture(scope="session")
def synth_out(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth")
    summary = generate(out, people=3000, brands=3, days=730, seed=11, end_date=END_DATE)
    return out, summary


@pytest.fixture(scope="session")
def landed(synth_out) -> dict[str, tuple[str, str, pd.DataFrame]]:
    """relative path -> (brand, entity, frame) for every landed file."""
    landing = synth_out[0] / "landing"
    files = {}
    for p in sorted(landing.rglob("*")):
        if p.is_file():
            rel = p.relative_to(landing).as_posix()
            brand, entity, _ = rel.split("/")
            files[rel] = (brand, entity, read_landed(p, entity))
    return files


@pytest.fixture(scope="session")
def truth(synth_out) -> dict[str, pd.DataFrame]:
    folder = synth_out[0] / "truth"
    return {name: pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False)
            for name in ("records", "files", "bad_rows", "people", "exact_duplicates")}
