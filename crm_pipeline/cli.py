"""The `crm-pipeline` command: generate sample data, run the graph headless, inspect the contract."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path

from crm_pipeline.cli_identity import add_evaluate_febrl_arguments, add_identity_commands
from crm_pipeline.settings import SettingsError, load_settings


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2025-03-31") from None


def _today() -> date:
    return datetime.now(timezone.utc).date()


# The options naming a day the time-dependent stages compute for: each must fall within the daily partitions.
DAY_OPTIONS = {"as_of": "--as-of", "from_day": "--from", "to_day": "--to"}


def _day_outside_partitions(args: argparse.Namespace) -> str | None:
    """One sentence naming the allowed range, for the first day option outside the daily partitions."""
    days = {flag: getattr(args, name) for name, flag in DAY_OPTIONS.items() if getattr(args, name, None)}
    from_settings = args.func in (cmd_run, cmd_funnel) and args.as_of is None  # these default to the setting
    if not days and not from_settings:
        return None
    settings = load_settings(args.config)
    if from_settings and settings.as_of:
        days["as_of (settings)"] = settings.as_of
    first, last = settings.partition_start_date, _today()
    for flag, day in days.items():
        if not first <= day <= last:
            why = "set partition_start_date in the settings for older history" if day < first else \
                "a day after today has no partition yet"
            return f"{flag} {day} is outside the daily partitions, which run from {first} to {last} ({why})"
    return None


@contextmanager
def _config_in_environment(config: str | None):
    """--config as $CRM_CONFIG while the command runs: the Dagster definitions read their settings (the
    partitions' first day, the resources) when they are loaded, from the environment."""
    if not config:
        yield
        return
    before = os.environ.get("CRM_CONFIG")
    os.environ["CRM_CONFIG"] = str(config)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CRM_CONFIG", None)
        else:
            os.environ["CRM_CONFIG"] = before


@contextmanager
def _progress(args: argparse.Namespace):
    """Stage lines and file progress on standard error, unless --quiet.

    Written through a descriptor of their own: during a run Dagster points descriptors 1 and 2 at the run's
    compute-log file and copies that file back with `tail -F`, which it kills as the run ends, so a line written
    just before (the last stage's) could be lost. A duplicate taken before the run is not redirected: every line
    arrives, at once and in order."""
    from crm_pipeline.progress import ProgressPrinter

    if args.quiet:
        yield None
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a stream without a descriptor (a test's capture): not redirected
        yield ProgressPrinter(sys.stderr)
        return
    sys.stderr.flush()
    with os.fdopen(os.dup(fd), "w", buffering=1, encoding=sys.stderr.encoding or "utf-8") as stream:
        yield ProgressPrinter(stream, tty=sys.stderr.isatty())


@contextmanager
def _warehouse(args: argparse.Namespace):
    """A connection to the warehouse the settings (or --warehouse) name, released afterwards."""
    from crm_pipeline.warehouse.engine import make_engine

    settings = load_settings(args.config, warehouse_url=args.warehouse)
    engine = make_engine(settings.warehouse_url, **settings.engine_options)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def cmd_generate(args: argparse.Namespace) -> int:
    from crm_pipeline.synth import generate

    summary = generate(Path(args.out), people=args.people, brands=args.brands, days=args.days,
                       seed=args.seed, end_date=args.end_date or _today())
    print(f"wrote sample data to {args.out}")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from crm_pipeline.defs.headless import failed_checks, failed_steps, materialize_all
    from crm_pipeline.warehouse.engine import make_engine
    from crm_pipeline.warehouse.summary import pipeline_summary

    settings = load_settings(args.config, landing_dir=args.landing, warehouse_url=args.warehouse)
    as_of = args.as_of or settings.as_of or _today()
    with _progress(args) as progress:
        result = materialize_all(settings, as_of, progress=progress, full_refresh=args.full_refresh)
    engine = make_engine(settings.warehouse_url, **settings.engine_options)
    try:
        shown = sa.engine.make_url(settings.warehouse_url).render_as_string(hide_password=True)
        print(f"\ncrm_pipeline as of {as_of}  (warehouse {shown})")
        for label, value in pipeline_summary(engine):
            print(f"  {label:<36} {value}")
    finally:
        engine.dispose()
    for line in failed_checks(result):
        print(f"  check {line}", file=sys.stderr)
    if not result.success:
        for line in failed_steps(result):
            print(f"  step failed: {line}", file=sys.stderr)
        print(f"the run failed (run id {result.run_id}); its log is in the Dagster UI (`make ui`)", file=sys.stderr)
        return 1
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from crm_pipeline.defs.headless import failed_steps, refresh_day

    if args.to_day < args.from_day:
        print(f"--to {args.to_day} is before --from {args.from_day}", file=sys.stderr)
        return 2
    settings = load_settings(args.config, warehouse_url=args.warehouse)
    days = [args.from_day + timedelta(days=n) for n in range((args.to_day - args.from_day).days + 1)]
    with _progress(args) as progress:
        for day in days:  # one day after the other: the warehouse has one writer, and history runs forward
            result = refresh_day(settings, day, progress=progress)
            print(f"{day}  {'ok' if result.success else 'FAILED'}  (run {result.run_id})")
            if not result.success:
                for line in failed_steps(result):
                    print(f"  step failed: {line}", file=sys.stderr)
                return 1
    print(f"refreshed profiles, predictions and audiences for {len(days)} day(s)")
    return 0


def cmd_cdnow(args: argparse.Namespace) -> int:
    from crm_pipeline.synth.transaction_log import read_cdnow, write_landing

    landing = Path(args.out) / "landing"
    written = write_landing(read_cdnow(args.file), landing, brand=args.brand)
    print(f"wrote {args.file} as landing files to {landing}")
    for entity, rows in written.items():
        print(f"  {entity}: {rows:,} rows")
    return 0


def cmd_dq_report(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from crm_pipeline.markdown import to_markdown
    from crm_pipeline.quality.report import countries_before_after, quality_by_brand_entity

    with _warehouse(args) as conn:
        if not sa.inspect(conn).has_table("file_quality"):
            print("no quality results yet: run `crm-pipeline run` first", file=sys.stderr)
            return 1
        quality = quality_by_brand_entity(conn, args.brand)
        countries = countries_before_after(conn, args.brand)
    print(f"## Data quality{' for ' + args.brand if args.brand else ''}\n")
    print(to_markdown(quality))
    print("\n## Countries before and after standardization\n")
    print(to_markdown(countries))
    return 0


def cmd_evaluate_identity(args: argparse.Namespace) -> int:
    if args.febrl:
        from crm_pipeline.cli_identity import cmd_evaluate_identity_febrl

        return cmd_evaluate_identity_febrl(args)
    if not args.truth:
        print("crm-pipeline: evaluate identity needs --truth DIR (the generator's truth/ folder) "
              "or --febrl FILE [FILE ...]", file=sys.stderr)
        return 2
    from crm_pipeline.identity.evaluate import evaluate_identity
    from crm_pipeline.markdown import to_markdown

    with _warehouse(args) as conn:
        scores = evaluate_identity(conn, args.truth)
    print(to_markdown(scores))
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from crm_pipeline.profiles.lookup import find_contact, render_profile

    with _warehouse(args) as conn:
        contact_id = find_contact(conn, email=args.email, contact_id=args.contact_id, phone=args.phone)
        if contact_id is None:
            print("no contact found for " + (args.email or args.contact_id or args.phone), file=sys.stderr)
            return 1
        print(render_profile(conn, contact_id, limit=args.limit))
    return 0


def cmd_evaluate_predictions(args: argparse.Namespace) -> int:
    import json

    import sqlalchemy as sa

    from crm_pipeline.markdown import to_markdown
    from crm_pipeline.predict.run import evaluation_table

    with _warehouse(args) as conn:
        known = sa.inspect(conn).has_table("model_runs")
        table = evaluation_table(conn, args.as_of) if known else None
        fits = conn.execute(sa.text("SELECT model, params FROM model_runs WHERE as_of = :d AND "
                                    "model IN ('bgnbd', 'gamma_gamma') ORDER BY model"), {"d": args.as_of}).all() \
            if known else []
    if table is None or table.empty:
        print(f"no model runs as of {args.as_of}: run `crm-pipeline run --as-of {args.as_of}` first", file=sys.stderr)
        return 1
    print(to_markdown(table.round(4)))
    for model, params in fits:  # the fitted parameters, to compare with published fits
        print(f"{model} parameters: " + ", ".join(f"{k} {v:.4g}" for k, v in json.loads(params).items()))
    return 0


def cmd_audiences_list(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from crm_pipeline.audiences.export import list_audiences
    from crm_pipeline.markdown import to_markdown

    with _warehouse(args) as conn:
        if not sa.inspect(conn).has_table("audience_sizes"):
            print("no audiences yet: run `crm-pipeline run` first", file=sys.stderr)
            return 1
        if args.as_of is None:
            args.as_of = conn.execute(sa.text("SELECT MAX(as_of) FROM audience_sizes")).scalar()
        if args.as_of is None:
            print("no audiences yet: run `crm-pipeline run` first", file=sys.stderr)
            return 1
        listing = list_audiences(conn, args.as_of)
    print(f"Audiences as of {args.as_of}\n")
    print(to_markdown(listing[["audience", "size", "previous_size", "change", "entered", "exited", "note"]]))
    return 0


def cmd_audiences_export(args: argparse.Namespace) -> int:
    from crm_pipeline.audiences.export import export_audience

    with _warehouse(args) as conn:
        written = export_audience(conn, args.name, args.as_of or _today(), fmt=args.format,
                                  out=args.out or sys.stdout.buffer)
    print(f"exported {written} member(s) of {args.name}" + (f" to {args.out}" if args.out else ""), file=sys.stderr)
    return 0


def cmd_audiences_validate(args: argparse.Namespace) -> int:
    from crm_pipeline.audiences.config import validate_file

    problems = validate_file(args.file)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"{args.file}: valid")
    return 1 if problems else 0


def cmd_erase(args: argparse.Namespace) -> int:
    from crm_pipeline.erasure.erase import erase
    from crm_pipeline.erasure.plan import ErasureRefused
    from crm_pipeline.erasure.report import render_erasure
    from crm_pipeline.warehouse.engine import make_engine

    settings = load_settings(args.config, warehouse_url=args.warehouse)
    engine = make_engine(settings.warehouse_url, **settings.engine_options)
    kind = "email" if args.email else "contact id" if args.contact_id else "phone"
    try:
        removed = erase(engine, email=args.email, contact_id=args.contact_id, phone=args.phone,
                        requested_at=datetime.now(timezone.utc), exports_dir=args.exports_dir,
                        max_contacts=args.max_contacts)
    except ErasureRefused as exc:
        print(f"crm-pipeline erase: refused, nothing was changed: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(render_erasure(removed, kind))
    return 0


def cmd_funnel(args: argparse.Namespace) -> int:
    from crm_pipeline.markdown import to_markdown
    from crm_pipeline.scoring.config import load_scoring_config
    from crm_pipeline.scoring.lifecycle import funnel

    settings = load_settings(args.config, warehouse_url=args.warehouse)
    config = load_scoring_config(settings.scoring_config or None)
    as_of = args.as_of or settings.as_of or _today()
    with _warehouse(args) as conn:
        moves = funnel(conn, config, as_of=as_of, days=args.days, brand=args.brand)
    print(f"Lifecycle moves, {args.days or config.funnel_days} days to {as_of}, {args.brand or 'all brands'}\n")
    print(to_markdown(moves))
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
    run.add_argument("--quiet", action="store_true", help="no stage lines or file progress, only the summary")
    run.add_argument("--full-refresh", action="store_true",
                     help="rebuild every incremental stage from all history (gives the same tables as the "
                          "incremental runs)")
    run.set_defaults(func=cmd_run)

    backfill = sub.add_parser("backfill", help="the daily refresh (profiles, predictions, audiences) for a range "
                                               "of past days, oldest first")
    backfill.add_argument("--from", dest="from_day", type=_day, required=True, help="first day")
    backfill.add_argument("--to", dest="to_day", type=_day, required=True, help="last day (inclusive)")
    backfill.add_argument("--warehouse", help="SQLAlchemy URL (default: settings)")
    backfill.add_argument("--quiet", action="store_true", help="no stage lines, only one line per day")
    backfill.set_defaults(func=cmd_backfill)

    cdnow = sub.add_parser("cdnow", help="write a CDNOW-style transaction log (customer, YYYYMMDD, units, amount) "
                                         "as landing files in the contract")
    cdnow.add_argument("file", help="e.g. CDNOW_sample.txt: master id, customer id, YYYYMMDD, quantity, amount")
    cdnow.add_argument("--out", required=True, help="folder for landing/")
    cdnow.add_argument("--brand", default="cdnow", help="the brand the files land under (default cdnow)")
    cdnow.set_defaults(func=cmd_cdnow)

    dq = sub.add_parser("dq", help="data quality")
    dq_sub = dq.add_subparsers(dest="dq_command", required=True)
    report = dq_sub.add_parser("report", help="per brand and entity: rows, pass rate, top rules, countries")
    report.add_argument("--brand", help="only this brand")
    report.add_argument("--warehouse", help="SQLAlchemy URL (default: settings)")
    report.set_defaults(func=cmd_dq_report)

    profile = sub.add_parser("profile", help="print a person's 360 profile and latest timeline entries")
    who = profile.add_mutually_exclusive_group(required=True)
    who.add_argument("--email")
    who.add_argument("--contact-id")
    who.add_argument("--phone")
    profile.add_argument("--limit", type=int, default=20, help="timeline entries to show")
    profile.add_argument("--warehouse", help="SQLAlchemy URL (default: settings)")
    profile.set_defaults(func=cmd_profile)

    audiences = sub.add_parser("audiences", help="list, export and validate audiences")
    aud_sub = audiences.add_subparsers(dest="audiences_command", required=True)
    listing = aud_sub.add_parser("list", help="names, sizes and change since the previous day")
    listing.add_argument("--as-of", type=_day, help="default: the latest day computed")
    listing.add_argument("--warehouse")
    listing.set_defaults(func=cmd_audiences_list)
    export = aud_sub.add_parser("export", help="write an audience's members for a marketing tool")
    export.add_argument("name", help="e.g. customers_lapsing or brand_a:customers_lapsing")
    export.add_argument("--format", choices=["csv", "parquet", "hashed"], default="csv")
    export.add_argument("--out", help="file to write (default: standard output)")
    export.add_argument("--as-of", type=_day, help="default: today")
    export.add_argument("--warehouse")
    export.set_defaults(func=cmd_audiences_export)
    validate = aud_sub.add_parser("validate", help="check an audiences YAML file without running it")
    validate.add_argument("file")
    validate.set_defaults(func=cmd_audiences_validate)

    evaluate = sub.add_parser("evaluate", help="measure a stage against ground truth")
    evaluate_sub = evaluate.add_subparsers(dest="evaluate_command", required=True)
    identity = evaluate_sub.add_parser("identity", help="pairwise precision, recall, F1 and cluster counts")
    identity.add_argument("--truth", help="the generator's truth/ folder")
    identity.add_argument("--warehouse", help="SQLAlchemy URL (default: settings)")
    add_evaluate_febrl_arguments(identity)
    identity.set_defaults(func=cmd_evaluate_identity)
    predictions = evaluate_sub.add_parser("predictions", help="held-out metrics of the models against baselines")
    predictions.add_argument("--as-of", type=_day, required=True)
    predictions.add_argument("--warehouse", help="SQLAlchemy URL (default: settings)")
    predictions.set_defaults(func=cmd_evaluate_predictions)

    erasure = sub.add_parser("erase", help="remove a person everywhere (GDPR / CCPA) and keep them out of later loads")
    erase_who = erasure.add_mutually_exclusive_group(required=True)
    erase_who.add_argument("--email")
    erase_who.add_argument("--contact-id")
    erase_who.add_argument("--phone")
    erasure.add_argument("--exports-dir", help="folder of audience export files to rewrite without the person")
    erasure.add_argument("--max-contacts", type=int, default=3,
                         help="refuse when the identifier resolves to more contacts than this (default 3)")
    erasure.add_argument("--warehouse", help="SQLAlchemy URL (default: settings)")
    erasure.set_defaults(func=cmd_erase)

    funnel_cmd = sub.add_parser("funnel", help="moves between lifecycle stages over the last days")
    funnel_cmd.add_argument("--brand", help="one brand (default: across all brands)")
    funnel_cmd.add_argument("--days", type=int, help="days in the window (default: scoring.yaml funnel_days, 90)")
    funnel_cmd.add_argument("--as-of", type=_day, help="the window's last day (default: settings, else today)")
    funnel_cmd.add_argument("--warehouse", help="SQLAlchemy URL (default: settings)")
    funnel_cmd.set_defaults(func=cmd_funnel)

    add_identity_commands(sub)
    contract = sub.add_parser("contract", help="print the data contract")
    contract.add_argument("--markdown", action="store_true", help="as Markdown (the docs page)")
    contract.set_defaults(func=cmd_contract)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with _config_in_environment(args.config):
            outside = _day_outside_partitions(args)
            if outside:
                print(f"crm-pipeline: {outside}", file=sys.stderr)
                return 2
            return args.func(args)
    except SettingsError as exc:
        print(f"crm-pipeline: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
