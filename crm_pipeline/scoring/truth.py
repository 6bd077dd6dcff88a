"""The preferred channel judged against the generator's truth (`truth/channels.csv`), kept in `model_runs`.

Each contact with a chosen channel (across brands) is matched to the person behind most of its order
records; accuracy is the share whose chosen channel is that person's true preferred channel (the
channel the generator's own propensities give most of their orders). Reported per evidence count,
so it shows how much evidence a reliable choice needs.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from crm_pipeline.predict.truth import contact_people
from crm_pipeline.warehouse.bulk import read_frame
from crm_pipeline.warehouse.predict_schema import create_predict_tables, model_runs

MODEL = "preferred_channel"


def evaluate_channels(conn: sa.Connection, truth_dir: Path | None, as_of: dt.date) -> dict:
    if truth_dir is None or not (Path(truth_dir) / "channels.csv").is_file():
        return {"status": "no_truth", "message": "no truth/channels.csv beside the landing folder"}
    chosen = read_frame(conn, sa.text(
        "SELECT contact_id, preferred_channel, evidence_count FROM channel_preferences "
        "WHERE as_of = :d AND brand = ''").bindparams(d=as_of))
    truth = pd.read_csv(Path(truth_dir) / "channels.csv", usecols=["person_id", "preferred_channel"],
                        dtype=str).rename(columns={"preferred_channel": "true_channel"})
    frame = chosen.merge(contact_people(conn, Path(truth_dir)), on="contact_id").merge(truth, on="person_id")
    decided = frame[frame["preferred_channel"] != "unknown"]
    hit = decided["preferred_channel"] == decided["true_channel"]
    by_evidence = hit.groupby(decided["evidence_count"].clip(upper=6)).agg(["size", "mean"])
    return {
        "status": "ok", "contacts_matched": int(len(frame)), "contacts_decided": int(len(decided)),
        "accuracy": round(float(hit.mean()), 4) if len(decided) else None,
        "accuracy_by_evidence": {f"{int(k)}{'+' if k == 6 else ''}": {"contacts": int(r["size"]),
                                                                        "accuracy": round(float(r["mean"]), 4)}
                                 for k, r in by_evidence.iterrows()},
        "true_channels": {str(k): int(v) for k, v in frame["true_channel"].value_counts().items()},
        "chosen_channels": {str(k): int(v) for k, v in decided["preferred_channel"].value_counts().items()},
    }


def record(conn: sa.Connection, as_of: dt.date, result: dict, settings: dict) -> None:
    """Replace the day's `preferred_channel` row in model_runs (the predict stage keeps its own rows)."""
    create_predict_tables(conn)
    conn.execute(model_runs.delete().where(model_runs.c.as_of == as_of, model_runs.c.model == MODEL))
    conn.execute(model_runs.insert(), [{
        "model": MODEL, "as_of": as_of, "time_unit": "day", "params": json.dumps(settings), "log_likelihood": None,
        "metrics": json.dumps(result), "status": "ok" if result["status"] == "ok" else "skipped",
        "message": (f"accuracy {result['accuracy']} on {result['contacts_decided']} contacts with a channel"
                    if result["status"] == "ok" else result["message"])}])
