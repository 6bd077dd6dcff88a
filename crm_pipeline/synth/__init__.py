"""Synthetic retail data with known ground truth, for the demo, tests and benchmarks.

`generate(out, people, brands, days, seed, end_date=...)` writes
`out/landing/<brand>/<entity>/<file>` (csv, one csv.gz, one jsonl, parquet) and `out/truth/`:
records.csv (brand, entity, source_key, person_id, file, row_number per landed row),
files.csv (file, brand, entity, format, rows, first_record), bad_rows.csv, exact_duplicates.csv
and people.csv. Text formats: see `timestamps`, `variations` and `writers`.
"""

from crm_pipeline.synth.generate import generate

__all__ = ["generate"]
