"""Close -> warehouse with Dagster: one asset per Close table, synced every hour.

    pip install -e '/path/to/close-dlt[dagster]' dagster-webserver   # close-dlt's clone
    export SOURCES__CLOSE__API_KEY=api_...            # or .dlt/secrets.toml, as for close-sync
    export CLOSE_PIPELINES_DIR=/var/lib/close-dlt     # kept between runs (run lock, resumes)
    dagster dev -f definitions.py

The warehouse is DuckDB (`close_crm.duckdb` in the working directory, or
DESTINATION__DUCKDB__CREDENTIALS) unless CLOSE_DESTINATION names another dlt destination
(`postgres`, `bigquery`), configured as for close-sync.
"""

import os

import dagster as dg

from close_source.dagster import close_assets

close = close_assets(destination=os.environ.get("CLOSE_DESTINATION"),
                     pipelines_dir=os.environ.get("CLOSE_PIPELINES_DIR"))

# every table, hourly: each continues from its own Event Log watermark
close_hourly = dg.ScheduleDefinition(name="close_hourly", target=dg.AssetSelection.assets(close),
                                     cron_schedule="7 * * * *")

defs = dg.Definitions(assets=[close], schedules=[close_hourly])
