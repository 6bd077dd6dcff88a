"""`crm-pipeline identity review` and the FEBRL option of `crm-pipeline evaluate identity`."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

# FEBRL files carry no dates of their own; the evaluation computes the graph for this day.
FEBRL_AS_OF = date(2026, 6, 30)


def add_identity_commands(subparsers) -> None:
    """`identity review [--limit N] [--must-link A B | --cannot-link A B] [--note TEXT]`."""
    identity = subparsers.add_parser("identity", help="clerical review of identity matches")
    identity_sub = identity.add_subparsers(dest="identity_command", required=True)
    review = identity_sub.add_parser("review", help="list borderline pairs; mark one must-link or cannot-link")
    decision = review.add_mutually_exclusive_group()
    decision.add_argument("--must-link", nargs=2, metavar=("NODE_A", "NODE_B"), help="these two are one person")
    decision.add_argument("--cannot-link", nargs=2, metavar=("NODE_A", "NODE_B"), help="these two are not")
    review.add_argument("--note", help="why (kept with the decision and in merge_log)")
    review.add_argument("--limit", type=int, default=20, help="pairs to list (default 20)")
    review.add_argument("--warehouse", help="SQLAlchemy URL (default: settings)")
    review.add_argument("--config", help="settings YAML")
    review.set_defaults(func=cmd_identity_review)


def add_evaluate_febrl_arguments(parser: argparse.ArgumentParser) -> None:
    """`evaluate identity --febrl FILE [FILE ...] [--work DIR]`: one brand per file, through the pipeline."""
    parser.add_argument("--febrl", nargs="+", metavar="FILE",
                        help="FEBRL-style CSV file(s): mapped onto customer files (one brand per file), run "
                             "through the whole pipeline into a fresh warehouse, and scored against rec_id")
    parser.add_argument("--work", help="folder for the landing files, warehouse and Dagster instance "
                                       "(default: a temporary folder, removed afterwards)")


def cmd_identity_review(args: argparse.Namespace) -> int:
    from crm_pipeline.identity.review import borderline_pairs, record_decision
    from crm_pipeline.settings import load_settings
    from crm_pipeline.warehouse.engine import make_engine

    settings = load_settings(args.config, warehouse_url=args.warehouse)
    engine = make_engine(settings.warehouse_url)
    try:
        pair, kind = (args.must_link, "must_link") if args.must_link else (args.cannot_link, "cannot_link")
        if pair:
            as_of = settings.as_of or datetime.now(timezone.utc).date()
            try:
                a, b = record_decision(engine, pair[0], pair[1], kind, now=datetime.now(timezone.utc),
                                       as_of=as_of, note=args.note)
            except ValueError as exc:
                print(exc, file=sys.stderr)
                return 2
            print(f"{kind.replace('_', '-')} recorded for {min(pair)} ({a}) and {max(pair)} ({b}); "
                  "the next run honours it")
            return 0
        with engine.connect() as conn:
            pairs = borderline_pairs(conn, args.limit)
        if pairs.empty:
            print("no borderline pairs (run the pipeline first, or the model found none)")
        else:  # plain columns: node ids hold "|", which a Markdown table would split
            print(pairs.to_string(index=False))
            print("\nmark a pair: crm-pipeline identity review --must-link NODE_A NODE_B  (or --cannot-link)")
        return 0
    finally:
        engine.dispose()


def evaluate_febrl(files: list[str | Path], work: str | Path) -> dict:
    """Map FEBRL files (brand_a, brand_b ... in order) into `work`, materialize every asset headless on a
    fresh Dagster instance and warehouse there, and score the people records against the truth."""
    from crm_pipeline.defs.headless import instance_at, materialize_all
    from crm_pipeline.identity.evaluate import PEOPLE, blocking_recall, evaluate_identity
    from crm_pipeline.identity.febrl import febrl_to_landing
    from crm_pipeline.settings import load_settings
    from crm_pipeline.warehouse.engine import make_engine

    work = Path(work)
    brands = {f"brand_{chr(ord('a') + i)}": Path(f) for i, f in enumerate(files)}
    febrl_to_landing(brands, work)
    settings = load_settings(None, env={}, landing_dir=str(work / "landing"), home_dir=str(work / "home"),
                             warehouse_url=f"duckdb:///{work / 'warehouse.duckdb'}")
    started = time.perf_counter()
    with instance_at(work / "dagster") as instance:
        result = materialize_all(settings, FEBRL_AS_OF, instance=instance)
    seconds = time.perf_counter() - started
    if not result.success:
        raise RuntimeError(f"the pipeline run failed on {', '.join(map(str, files))}")
    engine = make_engine(settings.warehouse_url)
    try:
        with engine.connect() as conn:
            scores = evaluate_identity(conn, work / "truth").set_index("scope").loc[PEOPLE]
            blocked = blocking_recall(conn, work / "truth")
    finally:
        engine.dispose()
    return {"records": int(scores["records"]), "people": int(scores["people"]), "contacts": int(scores["contacts"]),
            "precision": float(scores["precision"]), "recall": float(scores["recall"]), "f1": float(scores["f1"]),
            "blocking_recall": blocked, "seconds": round(seconds, 1)}


def cmd_evaluate_identity_febrl(args: argparse.Namespace) -> int:
    from crm_pipeline.markdown import to_markdown

    import pandas as pd

    missing = [f for f in args.febrl if not Path(f).is_file()]
    if missing:
        print(f"no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.work:
        scores = evaluate_febrl(args.febrl, args.work)
    else:
        with tempfile.TemporaryDirectory(prefix="crm-febrl-") as work:
            scores = evaluate_febrl(args.febrl, work)
    print(to_markdown(pd.DataFrame([{"files": " + ".join(Path(f).name for f in args.febrl), **scores}])))
    return 0
