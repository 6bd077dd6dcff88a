"""Great Expectations suites derived from the data contract: the second line of defence on staged data.

Staged rows have already passed the hard rules (the quarantine sits before staging), so a
failing expectation here means the standardizers or the quarantine let something through.
Every expectation comes from `crm_pipeline.contract` (required columns, `one_of` groups,
keys, `allowed` values, column types) plus a few column-name rules written down below;
each carries `notes` saying why, which Data Docs show next to the result.

Suites run on one pandas batch per entity through an in-memory GX context that is built
once per process. GX 1.x is called directly (`dagster-ge` only supports GX before 1.0),
and on pandas rather than SQL because GX's SQL datasource fails on DuckDB. On Spark the same
suites run on Spark DataFrames (`crm_pipeline.spark.expectations`), their results rendered by
the same `result_row`.
"""

from __future__ import annotations

import datetime as dt
import gc
import importlib
import importlib.util
import json
import math
import re
import sys
import threading
import time
import types
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@contextmanager
def _without_pyspark() -> Iterator[None]:
    """Great Expectations probes for pyspark when first imported (for its Spark engine). With the spark extra
    installed the probe is a fifth of the import's CPU (pyspark, its ML and Connect modules, scipy.sparse), paid
    by every run that validates a file. Validation on pandas batches never uses Spark: unless this process
    already imported pyspark (the Spark path imports it first), GX is imported with pyspark unavailable (it then
    treats it as not installed), and a later `import pyspark` works as usual (`enable_spark_engine` then gives
    it to GX). Imported already, pyspark warns (about its own pandas conversions) that it does not yet fully
    support pandas 3: that warning is kept out of the run's output."""
    if "pyspark" in sys.modules:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas",
                                    category=FutureWarning)
            yield
        return
    sys.modules["pyspark"] = None  # type: ignore[assignment]  (`import pyspark` raises ImportError)
    try:
        yield
    finally:
        if sys.modules.get("pyspark", False) is None:
            del sys.modules["pyspark"]


# Modules GX imports at load time only for expectations these suites never use: scipy.stats (the KL-divergence
# and KS-test expectations) and altair (their charts), together a third of the CPU of importing GX, paid by
# every run that validates a file, a small drop's included.
_UNUSED_BY_THE_SUITES = ("scipy.stats", "altair")


class _LoadedOnFirstUse(types.ModuleType):
    """A stand-in for a module: the real one is imported when an attribute is first read.
    (`importlib.util.LazyLoader` does not do here: on Python 3.11 `import altair` reads its `__spec__`, which
    loads it.)"""

    def __getattr__(self, attr: str) -> Any:
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        real = importlib.import_module(name)
        parent, _, child = name.rpartition(".")
        if parent and getattr(sys.modules.get(parent), child, None) is self:
            setattr(sys.modules[parent], child, real)
        return getattr(real, attr)


@contextmanager
def _loaded_on_first_use(names: Iterable[str]) -> Iterator[None]:
    """While importing GX, stand-ins (`_LoadedOnFirstUse`) for `names` sit in `sys.modules`: GX's modules keep
    them and load the real module only if they ever use it. Afterwards they are taken out again, so the rest of
    the process imports those modules as usual. A module already imported, or not installed, is left alone."""
    placed: dict[str, types.ModuleType] = {}
    for name in names:
        if name in sys.modules:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        stand_in = placed[name] = _LoadedOnFirstUse(name)
        stand_in.__spec__ = spec
        sys.modules[name] = stand_in
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, stand_in)
    try:
        yield
    finally:
        for name, stand_in in placed.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
            parent, _, child = name.rpartition(".")
            if parent and getattr(sys.modules.get(parent), child, None) is stand_in:
                delattr(sys.modules[parent], child)


with _without_pyspark(), _loaded_on_first_use(_UNUSED_BY_THE_SUITES):
    import great_expectations as gx
import great_expectations.execution_engine.pandas_execution_engine as gx_pandas_engine
import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
import pyarrow as pa
from great_expectations.constants import DATAFRAME_REPLACEMENT_STR
from great_expectations.core import ExpectationSuiteValidationResult
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)
from great_expectations.expectations.row_conditions import Column as RowColumn
from great_expectations.expectations.row_conditions import deserialize_row_condition
from great_expectations.validator.v1_validator import Validator

from crm_pipeline.contract.entities import ENTITIES, get_entity
from crm_pipeline.contract.model import Entity


def enable_spark_engine() -> None:
    """Make GX's Spark engine usable in this process; the Spark path calls it before it validates.

    GX binds pyspark's modules and classes when it is first imported. A process that imported pyspark before
    GX (a Spark run builds its session first) has them. One that validated on pandas first (a test run) got
    GX's "not installed" stand-in from `_without_pyspark`: GX's compatibility module is then run again, pyspark
    importable, and every GX module's name bound to the stand-in is bound to what that name now holds
    (`functions` is imported as `F`). A stand-in still referenced anywhere else raises here, before a run.
    """
    import pyspark.sql  # noqa: F401  (from now on `_without_pyspark` leaves pyspark alone)

    compat = sys.modules["great_expectations.compatibility.pyspark"]
    if compat.pyspark is sys.modules["pyspark"]:
        return
    old = dict(vars(compat))
    stand_in = compat.SPARK_NOT_IMPORTED  # (used in no comprehension: that would keep it in a closure cell)
    importlib.reload(compat)
    real = {**vars(compat), "F": compat.functions}
    replaced = {}  # what else the reload replaced: a placeholder class GX defines for an old pyspark, say
    for name, value in old.items():
        if value is not stand_in and not name.startswith("__") and real.get(name, value) is not value:
            replaced[id(value)] = real[name]
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] != "great_expectations" or module is compat:
            continue
        for attr, value in list(vars(module).items()):
            if value is stand_in and attr in real:
                setattr(module, attr, real[attr])
            elif id(value) in replaced:
                setattr(module, attr, replaced[id(value)])
    left = [r for r in gc.get_referrers(stand_in) if r is not old and not isinstance(r, types.FrameType)]
    if left:
        raise RuntimeError(f"GX keeps its pyspark stand-in where enable_spark_engine does not rebind it ({left!r:.300}); "
                           "import pyspark before crm_pipeline.quality.expectations")


# Lineage the quality stage adds to every staged row; `_brand` scopes keys.
LINEAGE_COLUMNS = ("_file_id", "_row_number", "_brand")

# Formats of standardized values. The email pattern also rejects capitals: staged emails are lowercased.
# Whitespace is spelled out rather than `\s`: with `\s` in a class, pandas' Arrow strings fall back
# from RE2 to Python's `re`, five times slower on a million emails.
EMAIL_REGEX = r"^[^@ \t\r\n\fA-Z]+@[^@ \t\r\n\fA-Z]+\.[^@ \t\r\n\fA-Z]+$"
E164_REGEX = r"^\+[1-9]\d{6,14}$"
COUNTRY_REGEX = r"^[A-Z]{2}$"
CURRENCY_REGEX = r"^[A-Z]{3}$"

# Values the standardizers cannot map (an unknown country spelling, a phone no library reads)
# are kept raw and flagged rather than quarantined, so format checks on them tolerate a few.
STANDARDIZED_MOSTLY = 0.95

EARLIEST_TIMESTAMP = dt.datetime(1990, 1, 1, tzinfo=dt.timezone.utc)
EARLIEST_DATE = dt.datetime(1900, 1, 1)  # birth dates go further back than any shop's records


@dataclass(frozen=True)
class Reference:
    """A reference the quality stage resolved into a precomputed boolean column."""

    flag: str  # True when `column` is empty or names a row of `target` in the same brand
    column: str
    target: str
    mostly: float
    why: str


# Referential integrity is not in the contract's column list: the quality stage computes these
# flags with one join per reference in SQL, and the suites check them.
REFERENCES: dict[str, tuple[Reference, ...]] = {
    "orders": (
        Reference(
            "_customer_known", "customer_id", "customers", STANDARDIZED_MOSTLY,
            "an order's customer_id should name an account in the brand's customers files; a few may "
            "land before their customer file, so this tolerates 5%",
        ),
    ),
    "order_items": (
        Reference(
            "_order_known", "order_id", "orders", 1.0,
            "order lines without an order (orphan_order_item) or with a quarantined one (order_quarantined) "
            "are held back, so any here is a pipeline bug",
        ),
        Reference(
            "_product_known", "sku", "products", STANDARDIZED_MOSTLY,
            "a line's sku should be in the catalogue; a new product may precede its catalogue file, "
            "so this tolerates 5%",
        ),
    ),
}

# Column-name rules for what the contract states only in prose.
NON_ZERO_INTEGERS = {"quantity": "a line sells (or, negative, returns) at least one unit"}
MIN_INTEGERS = {"line_number": (1, "order lines are numbered 1, 2, ... within the order")}

RESULT_COLUMNS = (
    "file", "suite", "expectation", "success", "unexpected_count", "unexpected_percent",
    "sample_values", "evaluated_rows", "sample_rows", "exception",
)


def _is_country(name: str) -> bool:
    return name == "country" or name.endswith("_country")


def _is_phone(name: str) -> bool:
    return name == "phone" or name.endswith("_phone")


def _is_email(name: str) -> bool:
    return name == "email" or name.endswith("_email")


def _is_currency(name: str) -> bool:
    return name == "currency" or name.endswith("_currency")


def _why(expectation: gxe.Expectation, check: str, notes: str) -> gxe.Expectation:
    expectation.notes = notes
    expectation.meta = {"check": check}
    return expectation


def build_suite(entity: Entity, *, as_of: dt.date) -> gx.ExpectationSuite:
    """The expectation suite for one entity's staged rows, derived from the contract.

    Timestamps must fall between 1990-01-01 and the end of `as_of` (UTC); dates (birth
    dates) between 1900-01-01 and `as_of`.
    """
    end_of_day = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)
    expectations: list[gxe.Expectation] = []
    # Collected in a list and handed to the constructor: ExpectationSuite.add_expectation on a suite
    # not yet in a context looks up GX's global "current" context and raises when there is none.
    add = expectations.append

    add(_why(
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[*entity.column_names, *LINEAGE_COLUMNS], exact_match=False,
        ),
        "columns", "staging writes every contract column (empty when a file lacked it) plus lineage",
    ))
    for name in entity.required_columns:
        add(_why(
            gxe.ExpectColumnValuesToNotBeNull(column=name),
            "required", f"the contract requires {name}; rows without it are quarantined",
        ))
    for group in entity.one_of:
        # "At least one of a, b, c holds a value": where all but the last are empty, the last is not.
        *others, last = group
        condition = RowColumn(others[0]).is_null()
        for other in others[1:]:
            condition = condition & RowColumn(other).is_null()
        expectation = _why(
            gxe.ExpectColumnValuesToNotBeNull(column=last, row_condition=condition),
            "one_of", f"every row needs at least one of {', '.join(group)} to be linked to a person",
        )
        expectation.meta["where_null"] = list(others)  # the condition, for splitting results per file
        add(expectation)
    add(_why(
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["_brand", *entity.key]),
        "key", f"{' + '.join(entity.key)} identifies a row within a brand; repeats are deduplicated before staging",
    ))

    for column in entity.columns:
        name = column.name
        if column.allowed and column.type == "string":
            add(_why(
                gxe.ExpectColumnValuesToBeInSet(column=name, value_set=list(column.allowed)),
                "allowed", f"the contract allows only {', '.join(column.allowed)} (lowercased by staging)",
            ))
        if column.type == "boolean":
            add(_why(
                gxe.ExpectColumnValuesToBeInSet(column=name, value_set=[True, False]),
                "type", f"staging parses {', '.join(column.allowed or ())} into true/false",
            ))
        if column.type == "decimal":
            add(_why(
                gxe.ExpectColumnValuesToBeBetween(column=name, min_value=0),
                "range", "money amounts are never negative; a return is a negative quantity, not a negative price",
            ))
        if column.type == "integer" and name in NON_ZERO_INTEGERS:
            add(_why(
                gxe.ExpectColumnValuesToNotBeInSet(column=name, value_set=[0]),
                "range", NON_ZERO_INTEGERS[name],
            ))
        if column.type == "integer" and name in MIN_INTEGERS:
            low, why = MIN_INTEGERS[name]
            add(_why(gxe.ExpectColumnValuesToBeBetween(column=name, min_value=low), "range", why))
        if column.type == "timestamp":
            add(_why(
                gxe.ExpectColumnValuesToBeBetween(
                    column=name, min_value=EARLIEST_TIMESTAMP, max_value=end_of_day, strict_max=True,
                ),
                "time", f"{name} cannot be after the as-of day ({as_of.isoformat()}, UTC) nor before 1990",
            ))
        if column.type == "date":
            add(_why(
                gxe.ExpectColumnValuesToBeBetween(
                    column=name, min_value=EARLIEST_DATE, max_value=dt.datetime.combine(as_of, dt.time()),
                ),
                "time", f"{name} cannot be after the as-of day ({as_of.isoformat()}) nor before 1900",
            ))
        if column.type == "json":
            add(_why(
                gxe.ExpectColumnValuesToBeJsonParseable(column=name),
                "format", "the contract stores JSON object text",
            ))
        if column.type != "string":
            continue
        if _is_email(name):
            add(_why(
                gxe.ExpectColumnValuesToMatchRegex(column=name, regex=EMAIL_REGEX),
                "format", "malformed emails are quarantined and staging lowercases the rest",
            ))
        elif _is_phone(name):
            add(_why(
                gxe.ExpectColumnValuesToMatchRegex(column=name, regex=E164_REGEX, mostly=STANDARDIZED_MOSTLY),
                "format", "staging writes phones in E.164; numbers it cannot read are kept raw, so 5% may differ",
            ))
        elif _is_country(name):
            add(_why(
                gxe.ExpectColumnValuesToMatchRegex(column=name, regex=COUNTRY_REGEX, mostly=STANDARDIZED_MOSTLY),
                "format",
                "staging writes ISO 3166-1 alpha-2; unknown spellings are kept raw and flagged, so 5% may differ",
            ))
        elif _is_currency(name):
            add(_why(
                gxe.ExpectColumnValuesToMatchRegex(column=name, regex=CURRENCY_REGEX, mostly=STANDARDIZED_MOSTLY),
                "format", "currencies are ISO 4217 codes such as USD; no hard rule checks them, so a few may differ",
            ))

    for ref in REFERENCES.get(entity.name, ()):
        add(_why(
            gxe.ExpectColumnValuesToBeInSet(column=ref.flag, value_set=[True], mostly=ref.mostly),
            "reference", f"{ref.column} must exist in {ref.target}: {ref.why}",
        ))
    return gx.ExpectationSuite(
        name=entity.name,
        expectations=expectations,
        meta={"notes": f"{entity.description} Derived from the data contract; as-of {as_of.isoformat()}."},
    )


def build_suites(*, as_of: dt.date) -> dict[str, gx.ExpectationSuite]:
    """One suite per contract entity."""
    return {name: build_suite(entity, as_of=as_of) for name, entity in ENTITIES.items()}


# ---------------------------------------------------------------- validation


@dataclass
class ValidationRun:
    """One entity batch validated: the readable results and GX's own result (for Data Docs)."""

    entity: str
    file_label: str
    as_of: dt.date
    results: pd.DataFrame
    gx_result: ExpectationSuiteValidationResult
    suite: gx.ExpectationSuite
    seconds: float

    @property
    def success(self) -> bool:
        return bool(self.results["success"].all())


_LOCK = threading.Lock()  # a GX context is not thread-safe; Dagster steps normally run in separate processes
_CONTEXTS: dict[str, Any] = {}  # per engine ("pandas", "spark"): one in-memory context, built on first use


def _new_context() -> Any:
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),  # tqdm bars otherwise flood the run logs
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _context(engine: str = "pandas") -> Any:
    """The context whose datasource "staged" takes `engine`'s dataframes. One context per engine: a suite is
    registered by its entity's name, and the Spark engine's copy of a suite is adapted (see `spark.expectations`)."""
    context = _CONTEXTS.get(engine)
    if context is None:
        context = _new_context()
        if engine == "spark":
            context.data_sources.add_spark("staged")
        else:
            # GX hashes every pandas batch under 1 GB for a "pandas_data_fingerprint" batch marker, a
            # quarter of the validation time on a million rows; the marker is cosmetic, so skip it.
            if hasattr(gx_pandas_engine, "HASH_THRESHOLD"):
                gx_pandas_engine.HASH_THRESHOLD = 0
            context.data_sources.add_pandas("staged")
        _CONTEXTS[engine] = context
    return context


# Per engine and entity: the as-of day, suite and validation definition last registered in the context.
# Registering them costs a third of a small file's validation, and most runs validate many
# files of one day, so they are registered again only when the day changes.
_PREPARED: dict[tuple[str, str], tuple[Any, dt.date, Any, Any]] = {}
SuiteAdapter = Callable[[gx.ExpectationSuite], gx.ExpectationSuite]


def _prepared(context: Any, entity: Entity, as_of: dt.date, engine: str = "pandas",
              adapt: SuiteAdapter | None = None) -> tuple[Any, Any]:
    known = _PREPARED.get((engine, entity.name))
    if known is not None and known[0] is context and known[1] == as_of:
        return known[2], known[3]
    suite = build_suite(entity, as_of=as_of)
    suite = context.suites.add_or_update(adapt(suite) if adapt else suite)
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=entity.name, data=_batch_definition(context, entity.name), suite=suite)
    )
    _PREPARED[(engine, entity.name)] = (context, as_of, suite, definition)
    return suite, definition


def _batch_definition(context: Any, entity: str) -> Any:
    source = context.data_sources.get("staged")
    try:
        asset = source.get_asset(entity)
    except LookupError:
        asset = source.add_dataframe_asset(entity)
    try:
        return asset.get_batch_definition("whole")
    except KeyError:
        return asset.add_batch_definition_whole_dataframe("whole")


def _prepare(entity: Entity, df: pd.DataFrame) -> pd.DataFrame:
    """The batch GX sees: a 0..n-1 index (unexpected rows come back as positions) and dates as
    naive datetimes, so one comparison works whether staging kept dates or datetimes.

    Text in one Arrow chunk: picking a few rows out of a chunked column (the sample rows of every
    expectation and file) concatenates the whole column first, once per pick. A shallow copy
    otherwise: pandas' copy-on-write leaves the caller's frame untouched.
    """
    df = df.reset_index(drop=True)
    for name in df.columns:
        if isinstance(df[name].dtype, pd.StringDtype) and df[name].dtype.storage == "pyarrow":
            values = pa.array(df[name].array)
            if isinstance(values, pa.ChunkedArray) and values.num_chunks > 1:
                df[name] = pd.array(values.combine_chunks(), dtype=df[name].dtype)
    if "_brand" in df.columns:  # a few brands: as categories, the key's uniqueness check reads codes, not text
        df["_brand"] = df["_brand"].astype("category")
    for column in entity.columns:
        if column.type == "date" and column.name in df.columns:
            values = pd.to_datetime(df[column.name], errors="coerce")
            if getattr(values.dt, "tz", None) is not None:
                values = values.dt.tz_convert(None)
            df[column.name] = values
    return df


def _sample_rows(batch: pd.DataFrame, positions: list[Any], columns: list[str]) -> list[dict[str, Any]]:
    """Lineage and key of the first unexpected rows.

    GX can return these itself (`unexpected_index_column_names`), but it builds them with a
    Python loop over every unexpected row before keeping five: minutes on a million-row batch.
    """
    if not positions or not columns:
        return []
    picked = batch[columns].iloc[[int(p) for p in positions[:5]]]  # columns first: a take copies each column
    return [_plain(r) for r in picked.to_dict(orient="records")]


def _plain(value: Any) -> Any:
    """A JSON-safe rendering of a sample value (numpy scalars, timestamps, NaN)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        # In UTC, as the warehouse's timestamps mean: DuckDB hands them over in its connection's zone (local).
        value = value.astimezone(dt.timezone.utc)
    if isinstance(value, (dt.datetime, dt.date, pd.Timestamp)):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _label(config: Any) -> str:
    kwargs = config.kwargs
    if "column" in kwargs:
        target = kwargs["column"]
    elif "column_list" in kwargs:
        target = ", ".join(kwargs["column_list"])
    else:
        target = ""
    label = f"{config.type}({target})"
    condition = kwargs.get("row_condition")
    if condition:
        # Stored configurations hold the condition as a dict; its object form reads "customer_id IS NULL".
        if isinstance(condition, dict):
            condition = deserialize_row_condition(condition)
        label += f" where {condition!r}"
    return label


def _exception_message(info: dict[str, Any]) -> str:
    """GX reports an expectation's own error flat, but a failed metric nested under its metric id."""
    if "raised_exception" in info:
        return str(info.get("exception_message") or "") if info.get("raised_exception") else ""
    messages = [str(v.get("exception_message") or "") for v in info.values() if isinstance(v, dict)]
    return "; ".join(dict.fromkeys(m for m in messages if m))


def _row(
    file_label: str, suite: str, result: Any, batch: pd.DataFrame, index_columns: list[str], ref_columns: dict[str, str]
) -> dict[str, Any]:
    """`result_row` for a pandas batch: GX gives the unexpected rows' positions, their lineage is read here."""
    positions = list((result.result or {}).get("partial_unexpected_index_list") or [])
    return result_row(file_label, suite, result, index_rows=_sample_rows(batch, positions, index_columns),
                      rows=len(batch), ref_columns=ref_columns)


def result_row(
    file_label: str, suite: str, result: Any, *, index_rows: list[dict[str, Any]], rows: int,
    ref_columns: dict[str, str], samples: list[Any] | None = None,
) -> dict[str, Any]:
    """One expectation's result as a row of RESULT_COLUMNS, whichever engine computed it.

    `index_rows`: lineage and key of its first unexpected rows; `rows`: the batch's rows, shown
    for a table-level expectation; `samples`: its first unexpected values, GX's partial list when not given.
    """
    config = result.expectation_config
    details = result.result or {}
    exception = _exception_message(result.exception_info or {})
    samples = list(details.get("partial_unexpected_list") or [] if samples is None else samples)[:5]
    column = config.kwargs.get("column")
    if column in ref_columns:
        # A False flag says nothing; show the unresolved reference (order_id, sku ...) instead.
        samples = [r.get(ref_columns[column]) for r in index_rows]
    mismatched = (details.get("details") or {}).get("mismatched") or {}
    if mismatched.get("missing"):
        samples = list(mismatched["missing"])[:5]
    unexpected = details.get("unexpected_count")
    percent = details.get("unexpected_percent")
    return {
        "file": file_label,
        "suite": suite,
        "expectation": _label(config),
        "success": bool(result.success),
        "unexpected_count": int(unexpected) if unexpected is not None else 0,
        "unexpected_percent": float(percent) if percent is not None else 0.0,
        "sample_values": json.dumps([_plain(v) for v in samples], ensure_ascii=False),
        "evaluated_rows": int(details.get("element_count", rows)),
        "sample_rows": json.dumps([_plain(r) for r in index_rows], ensure_ascii=False),
        "exception": exception,
    }


def validation_run(
    entity: Entity, file_label: str, as_of: dt.date, gx_result: ExpectationSuiteValidationResult, suite: Any,
    row: Callable[[Any], dict[str, Any]], started: float,
) -> ValidationRun:
    """The run of one batch: `row` renders each expectation's result (`result_row`), in suite order."""
    table = pd.DataFrame([row(r) for r in _in_suite_order(gx_result, suite)], columns=list(RESULT_COLUMNS))
    return ValidationRun(
        entity=entity.name, file_label=file_label, as_of=as_of, results=table, gx_result=gx_result,
        suite=suite, seconds=time.perf_counter() - started,
    )


def _run_name(file_label: str) -> str:
    """The label as a single path segment: Data Docs store each run under a folder of that name."""
    return re.sub(r"[^\w.@=+-]+", "_", file_label).strip("_") or "batch"


def run_validation(
    entity_name: str, df: pd.DataFrame, *, as_of: dt.date, file_label: str
) -> ValidationRun:
    """Validate one staged batch of `entity_name` against its suite; results plus GX's raw result."""
    entity = get_entity(entity_name)
    started = time.perf_counter()
    batch = _prepare(entity, df)
    gx_result, suite = run_suite(entity, batch, as_of, file_label, "SUMMARY")
    refs, index_columns = sample_columns(entity, batch.columns)
    return validation_run(entity, file_label, as_of, gx_result, suite,
                          lambda r: _row(file_label, entity.name, r, batch, index_columns, refs), started)


def run_validation_by_file(
    entity_name: str, df: pd.DataFrame, *, as_of: dt.date, files: dict[int, str], label: str
) -> list[ValidationRun]:
    """Validate the staged rows of several files (`_file_id` in `files`) in one GX run; results per file.

    GX costs mostly per run and per expectation, not per row, so one run over a batch of newly
    landed files is far cheaper than one run per file. Each expectation's result is split by the
    file of each unexpected row, and every split is checked against GX's own totals for the batch
    (rows, missing values, unexpected rows, percent, verdict). Should one not add up, the files
    are validated one by one instead, as is a file without staged rows. Every run's `results`
    carries `file_id`; the first run is the batch's, when there is one.
    """
    entity = get_entity(entity_name)
    started = time.perf_counter()
    mine = df["_file_id"].isin(list(files))
    batch = _prepare(entity, df if mine.all() else df[mine])  # a filter copies every column: only when needed
    present, codes = np.unique(batch["_file_id"].to_numpy(dtype="int64"), return_inverse=True)
    present = [int(f) for f in present]
    runs, rows = [], None
    if present:
        gx_result, suite = run_suite(entity, batch, as_of, label, "COMPLETE")
        refs, index_columns = sample_columns(entity, batch.columns)
        rows = []
        for result in _in_suite_order(gx_result, suite):
            split = _split_by_file(entity.name, result, batch, codes, present, files, index_columns, refs)
            if split is None:
                rows = None
                break
            rows.extend(split)
        if rows is not None:
            position = {f: i for i, f in enumerate(files)}
            rows.sort(key=lambda r: position[r["file_id"]])  # per file, in suite order (a stable sort)
            _drop_full_lists(gx_result)
            runs.append(ValidationRun(
                entity=entity.name, file_label=label, as_of=as_of,
                results=pd.DataFrame(rows, columns=["file_id", *RESULT_COLUMNS]), gx_result=gx_result,
                suite=suite, seconds=time.perf_counter() - started,
            ))
    for file_id in [f for f in files if rows is None or f not in present]:
        own = df[df["_file_id"] == file_id].sort_values("_row_number", kind="stable")  # samples in row order
        run = run_validation(entity_name, own, as_of=as_of, file_label=files[file_id])
        run.results.insert(0, "file_id", file_id)
        runs.append(run)
    return runs


def _split_by_file(
    suite: str, result: Any, batch: pd.DataFrame, codes: np.ndarray, present: list[int], files: dict[int, str],
    index_columns: list[str], refs: dict[str, str],
) -> list[dict[str, Any]] | None:
    """One expectation's batch result as one row per file; None when the split cannot be checked."""
    config, details = result.expectation_config, result.result or {}
    whole = _row("", suite, result, batch, index_columns, refs)
    if whole["exception"]:
        return None
    per_file_rows = np.bincount(codes, minlength=len(present))
    if details.get("unexpected_count") is None:  # a table-level expectation: the same verdict for every file
        if details.get("element_count") is not None:
            return None
        return [{**whole, "file_id": f, "file": files[f], "evaluated_rows": int(per_file_rows[i])}
                for i, f in enumerate(present)]
    kwargs = config.kwargs
    positions = np.asarray([int(p) for p in details.get("unexpected_index_list") or []], dtype=np.int64)
    unexpected = int(details["unexpected_count"])
    if len(positions) != unexpected:
        return None
    columns = list(kwargs.get("column_list") or [kwargs["column"]])
    domain = np.ones(len(batch), dtype=bool)
    if kwargs.get("row_condition"):
        where_null = (config.meta or {}).get("where_null")
        if not where_null:
            return None
        domain = batch[list(where_null)].isna().all(axis=1).to_numpy()
    missing = None
    if details.get("missing_count") is not None:
        missing = batch[columns].isna().all(axis=1).to_numpy() & domain
    mostly = 1.0 if kwargs.get("mostly") is None else kwargs["mostly"]
    # The split must reproduce GX's own numbers for the whole batch before it is trusted per file.
    if int(domain.sum()) != details.get("element_count"):
        return None
    if missing is not None and int(missing.sum()) != details["missing_count"]:
        return None
    percent, success = _verdict(int(domain.sum()), None if missing is None else int(missing.sum()), unexpected, mostly)
    expected_percent = details.get("unexpected_percent")
    if success != bool(result.success) or (percent is None) != (expected_percent is None) or (
            percent is not None and not math.isclose(percent, expected_percent, rel_tol=1e-9, abs_tol=1e-9)):
        return None
    in_domain = np.bincount(codes, weights=domain, minlength=len(present)).astype(int)
    missed = None if missing is None else np.bincount(codes, weights=missing, minlength=len(present)).astype(int)
    owner = codes[positions] if len(positions) else np.empty(0, dtype=np.int64)
    row_numbers = batch["_row_number"].to_numpy(dtype="int64")
    column = kwargs.get("column")
    out = []
    for i, file_id in enumerate(present):
        mine = np.flatnonzero(owner == i)
        # The batch is in no particular order: a file's samples are its first unexpected rows by row number.
        mine = mine[np.argsort(row_numbers[positions[mine]], kind="stable")]
        percent, success = _verdict(int(in_domain[i]), None if missed is None else int(missed[i]), len(mine), mostly)
        index_rows = _sample_rows(batch, positions[mine[:5]].tolist(), index_columns)
        if column in refs:
            samples = [r.get(refs[column]) for r in index_rows]
        elif not len(mine):  # most files pass most expectations: no pick (a copy of the columns) for nothing
            samples = []
        else:  # GX lists only the first 200 unexpected values of a batch: take a file's own from the batch
            picked = batch[columns].iloc[positions[mine[:5]]]
            samples = picked[columns[0]].tolist() if "column" in kwargs else picked.to_dict(orient="records")
        out.append({
            **whole, "file_id": file_id, "file": files[file_id], "success": success, "unexpected_count": len(mine),
            "unexpected_percent": percent if percent is not None else 0.0,
            "sample_values": json.dumps([_plain(v) for v in samples], ensure_ascii=False),
            "evaluated_rows": int(in_domain[i]), "sample_rows": json.dumps(index_rows, ensure_ascii=False),
        })
    return out


def _verdict(rows: int, missing: int | None, unexpected: int, mostly: float) -> tuple[float | None, bool]:
    """GX's unexpected percent and success for a column map expectation (missing values do not count)."""
    considered = rows - (missing or 0)
    if considered <= 0:
        return None, True
    return unexpected / considered * 100, (considered - unexpected) / considered >= mostly


def _drop_full_lists(gx_result: ExpectationSuiteValidationResult) -> None:
    """Keep GX's result at SUMMARY size (first unexpected values only) for Data Docs."""
    for result in gx_result.results:
        for key in ("unexpected_list", "unexpected_index_list", "unexpected_index_query"):
            (result.result or {}).pop(key, None)


def sample_columns(entity: Entity, columns: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Reference flags -> the column they check, and which of the batch's `columns` show unexpected rows."""
    # Unexpected rows are reported with their lineage and key, so a data engineer can find them.
    refs = {r.flag: r.column for r in REFERENCES.get(entity.name, ())}
    present = set(columns)
    index_columns = [c for c in dict.fromkeys([*LINEAGE_COLUMNS[:2], *entity.key, *refs.values()]) if c in present]
    return refs, index_columns


def _in_suite_order(gx_result: ExpectationSuiteValidationResult, suite: Any) -> list[Any]:
    order = {e.id: i for i, e in enumerate(suite.expectations)}
    return sorted(gx_result.results, key=lambda r: order.get(r.expectation_config.id, len(order)))


def run_suite(entity: Entity, batch: Any, as_of: dt.date, label: str, result_format: str, *, engine: str = "pandas",
              adapt: SuiteAdapter | None = None, index_columns: list[str] | None = None) -> tuple[Any, Any]:
    """`entity`'s suite (as of `as_of`, changed by `adapt`) run by GX on `engine`'s dataframe `batch`: GX's result and
    the suite. With `index_columns`, GX itself reports those columns of the first unexpected rows."""
    # No "unexpected index query" (the positions again, as text): nothing here reads it, and on pandas GX filters
    # the whole batch once more per expectation to write it.
    result_format = {"result_format": result_format, "partial_unexpected_count": 5,
                     "return_unexpected_index_query": False}
    if index_columns:
        result_format["unexpected_index_column_names"] = list(index_columns)
    with _LOCK:
        context = _context(engine)
        suite, definition = _prepared(context, entity, as_of, engine, adapt)
        gx_result = _run_definition(definition, suite, batch, result_format, RunIdentifier(run_name=_run_name(label)))
        # GX's execution engine keeps the last batch of each asset (a whole staged frame) for as long as the
        # context lives, here the process: at 1M people 2.7 GiB of the RSS after quality, held through every
        # later stage of the run.
        for source in context.data_sources.all().values():
            batches = source.get_execution_engine().batch_manager
            batches.reset_batch_cache()
            batches.batch_data_cache.clear()
    return gx_result, suite


def _run_definition(definition: Any, suite: Any, batch: Any, result_format: dict, run_id: RunIdentifier
                    ) -> ExpectationSuiteValidationResult:
    """What `ValidationDefinition.run` does for a registered definition (`_prepared`), without storing the result.

    `run` first checks that the definition and its suite match the context's stores, then serializes the whole
    result into the context's results store (which `run_suite` emptied again at once): CPU spent for nothing here
    (547,164 order lines at 100k people: 0.27 -> 0.25 s of the suite's run). The same GX `Validator` validates the
    same suite on the same batch, and the result carries the same `meta` as `run` gives it."""
    validator = Validator(batch_definition=definition.batch_definition, batch_parameters={"dataframe": batch},
                          result_format=result_format)
    result = validator.validate_expectation_suite(suite)
    result.meta.update({"validation_id": definition.id, "checkpoint_id": None, "run_id": run_id,
                        "validation_time": run_id.run_time,
                        "batch_parameters": {"dataframe": DATAFRAME_REPLACEMENT_STR}})
    return result


def validate_frame(
    entity_name: str,
    df: pd.DataFrame,
    *,
    as_of: dt.date,
    file_label: str,
    docs_dir: Path | None = None,
) -> pd.DataFrame:
    """Validate one staged batch; one row per expectation (see RESULT_COLUMNS).

    With `docs_dir`, also adds the run to the Data Docs site there.
    """
    run = run_validation(entity_name, df, as_of=as_of, file_label=file_label)
    if docs_dir is not None:
        build_data_docs([run], Path(docs_dir))
    return run.results


# ---------------------------------------------------------------- Data Docs


def build_data_docs(runs: Iterable[ValidationRun], target_dir: Path, *, keep: int = 20) -> Path:
    """Render suites and validation results as a static HTML site; returns its index.html.

    Results persist as JSON under `target_dir/_store/`, so runs of other entities (and other
    processes) stay listed; the newest `keep` results per suite are kept, older pages removed.
    """
    target_dir = Path(target_dir).resolve()
    store_dir = target_dir / "_store"
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    config.stores["expectations_store"]["store_backend"] = {
        "class_name": "TupleFilesystemStoreBackend", "base_directory": str(store_dir / "expectations"),
    }
    config.stores["validation_results_store"]["store_backend"] = {
        "class_name": "TupleFilesystemStoreBackend", "base_directory": str(store_dir / "validations"),
    }
    with _LOCK:
        context = gx.get_context(mode="ephemeral", project_config=config)
        context.add_data_docs_site(
            "crm_pipeline",
            {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(target_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        results_store = context.validation_results_store
        fresh: dict[Any, None] = {}  # this build's suites and results, in order
        for run in runs:
            # A fresh suite: GX refuses expectations that already belong to another context's suite.
            context.suites.add_or_update(build_suite(get_entity(run.entity), as_of=run.as_of))
            fresh[ExpectationSuiteIdentifier(name=run.entity)] = None
            run_time = run.gx_result.meta.get("run_id")
            key = ValidationResultIdentifier(
                expectation_suite_identifier=ExpectationSuiteIdentifier(name=run.entity),
                run_id=RunIdentifier(
                    run_name=_run_name(run.file_label),
                    run_time=getattr(run_time, "run_time", None) or dt.datetime.now(dt.timezone.utc),
                ),
                batch_identifier=run.entity,
            )
            results_store.set(key, run.gx_result)
            fresh[key] = None
        _prune(results_store, keep)
        # Only the pages of this build's suites and results are rendered: the others' pages are already there
        # (rendering every kept result again took seconds of each small drop). The index still lists every kept
        # result and removes the pages of pruned ones. A folder without an index yet is built whole.
        only = list(fresh) if (target_dir / "index.html").exists() else None
        context.build_data_docs(site_names=["crm_pipeline"], resource_identifiers=only)
    return target_dir / "index.html"


def _prune(results_store: Any, keep: int) -> None:
    by_suite: dict[str, list[Any]] = {}
    for key in results_store.list_keys():
        by_suite.setdefault(key.expectation_suite_identifier.name, []).append(key)
    for keys in by_suite.values():
        keys.sort(key=lambda k: k.run_id.run_time, reverse=True)
        for key in keys[keep:]:
            results_store.remove_key(key)
