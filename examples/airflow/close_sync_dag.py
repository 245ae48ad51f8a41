"""Close -> warehouse every hour with Airflow 3: one task, `close-sync run`'s run path.

Copy this file into Airflow's dags folder; install close-dlt where the tasks run (`pip install
close-dlt`, with `[postgres]` or `[bigquery]` for those warehouses). Settings as for close-sync:
SOURCES__CLOSE__API_KEY (or dlt's Airflow Variable `dlt_secrets_toml`, which holds a
secrets.toml), any other `SOURCES__CLOSE__*`, the warehouse's `DESTINATION__*`, and:

    CLOSE_PIPELINES_DIR   a directory that outlives the task (a volume shared by the workers):
                          the run lock and a load an earlier run left unfinished live there
    CLOSE_DESTINATION     duckdb (default), postgres, bigquery or another dlt destination

dlt's own Airflow helper (`PipelineTasksGroup`) is not used: it runs each task in a fresh
temporary directory and a bare `pipeline.run`, so no run lock and no resumed load.
"""

import logging
import os
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task


@dag(schedule="7 * * * *", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
     max_active_runs=1,  # runs of one pipeline never overlap (a second would stop at the lock)
     tags=["close", "dlt"], default_args={"retries": 2, "retry_delay": timedelta(minutes=5)})
def close_sync():
    @task(task_id="sync")
    def sync_close() -> dict[str, int]:
        """Every table, each from its own Event Log watermark; rows written per table to XCom."""
        # imported here: the scheduler parses this file often, only the task needs them
        from close_source.logs import run_lines
        from close_source.pipeline import make_pipeline
        from close_source.sync import rows_loaded, sync

        pipeline = make_pipeline(os.environ.get("CLOSE_DESTINATION"),
                                 pipelines_dir=os.environ.get("CLOSE_PIPELINES_DIR"))
        # the task's log as a cron log: a line per stage, the warnings, the summary line
        with run_lines(logging.getLogger("close_sync")):
            sync(pipeline)
        return rows_loaded(pipeline)

    sync_close()


close_sync()
