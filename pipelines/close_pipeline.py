"""Runnable pipeline: `python pipelines/close_pipeline.py run|status|demo ...`.

The same CLI as the `close-sync` console script (which lives in `close_source.cli` so that an
installed package carries it). For use from your own code:

    import dlt
    from close_source import close_source

    pipeline = dlt.pipeline("close_crm", destination="duckdb", dataset_name="close")
    pipeline.run(close_source().with_resources("leads", "calls"), loader_file_format="parquet")
"""

import sys

from close_source.cli import main

if __name__ == "__main__":
    sys.exit(main())
