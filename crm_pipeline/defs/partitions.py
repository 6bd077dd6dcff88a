"""The daily partitions shared by the time-dependent stages (predictions, scoring, audiences).

The first day comes from the settings (`partition_start_date`, default 1990-01-01), read when Dagster loads
the code, so retailers can load and backfill years of history. Days are as-of days: today's partition
exists from the start of the day (UTC) and is the last one.
"""

import dagster as dg

from crm_pipeline.settings import load_settings

DAILY = dg.DailyPartitionsDefinition(start_date=load_settings().partition_start_date.isoformat(), end_offset=1)
