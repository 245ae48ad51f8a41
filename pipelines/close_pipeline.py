"""Runnable pipeline: `python pipelines/close_pipeline.py run|status|demo ...`.

The same CLI as the `close-sync` console script (which lives in `close_source.cli` so that an
installed package carries it). For use from your own code, with what `close-sync run` adds
to a plain dlt pipeline (one run at a time, an interrupted load finished first, the loader
file format and replace strategy per destination):

    from close_source.pipeline import make_pipeline
    from close_source.sync import sync

    pipeline = make_pipeline("duckdb", dataset_name="close", pipeline_name="close_crm")
    sync(pipeline, tables=["leads", "calls"])
"""

from close_source.cli import entry

if __name__ == "__main__":
    entry()
