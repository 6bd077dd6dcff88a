"""The daily partitions shared by the time-dependent stages (predictions, audiences)."""

import dagster as dg

# Days are as-of days: today's partition exists from the start of the day (UTC).
DAILY = dg.DailyPartitionsDefinition(start_date="2020-01-01", end_offset=1)
