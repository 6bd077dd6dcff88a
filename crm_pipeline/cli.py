"""The `crm-pipeline` command: generate sample data, run the graph headless, inspect the contract."""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, timezone
from pathlib import Path

from crm_pipeline.settings import SettingsError, load_settings


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2025-03-31") from None


def _today() -> date:
    return datetime.now(timezone.utc).date()


def cmd_generate(args: argparse.Namespace) -> int:
    from crm_pipeline.synth import generate

    summary = generate(Path(args.out), people=args.people, brands=args.brands, days=args.days,
                       seed=args.seed, end_date=args.end_date or _today())
    print(f"wrote sample data to {args.out}")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from crm_pipeline.defs.headless import materialize_all
    from crm_pipeline.warehouse.engine import make_engine
    from crm_pipeline.warehouse.summary import pipeline_summary

    settings = load_settings(args.config, landing_dir=args.landing, warehouse_url=args.warehouse)
    as_of = args.as_of or settings.as_of or _today()
    result = materialize_all(settings, as_of)
    if not result.success:
        print("the run failed; see the Dagster run log above", file=sys.stderr)
        return 1
    engine = make_engine(settings.warehouse_url)
    try:
        print(f"\ncrm_pipeline as of {as_of}  (warehouse {settings.warehouse_url})")
        for label, value in pipeline_summary(engine):
            print(f"  {label:<18} {value}")
    finally:
        engine.dispose()
    return 0


def cmd_contract(args: argparse.Namespace) -> int:
    from crm_pipeline.contract.markdown import render_markdown

    sys.stdout.write(render_markdown())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crm-pipeline", description=__doc__)
    parser.add_argument("--config", help="settings YAML (default: $CRM_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write a realistic multi-brand sample data set with ground truth")
    gen.add_argument("--people", type=int, default=10_000)
    gen.add_argument("--brands", type=int, default=3)
    gen.add_argument("--days", type=int, default=730)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--end-date", type=_day, default=None, help="last day of activity (default: today)")
    gen.add_argument("--out", required=True, help="folder for landing/ and truth/")
    gen.set_defaults(func=cmd_generate)

    run = sub.add_parser("run", help="materialize the whole asset graph headless")
    run.add_argument("--landing", help="the landing folder (default: settings)")
    run.add_argument("--as-of", type=_day, help="the day to compute for (default: today)")
    run.add_argument("--warehouse", help="SQLAlchemy URL (default: a DuckDB file under .crm/)")
    run.set_defaults(func=cmd_run)

    contract = sub.add_parser("contract", help="print the data contract")
    contract.add_argument("--markdown", action="store_true", help="as Markdown (the docs page)")
    contract.set_defaults(func=cmd_contract)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SettingsError as exc:
        print(f"crm-pipeline: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
