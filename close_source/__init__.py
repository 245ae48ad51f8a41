"""close_source: a dlt source for Close CRM, generated from one declarative catalog.

    import dlt
    from close_source import close_source

    pipeline = dlt.pipeline("close_crm", destination="duckdb", dataset_name="close")
    # the key from SOURCES__CLOSE__API_KEY or .dlt/secrets.toml
    pipeline.run(close_source(), loader_file_format="parquet")
    pipeline.run(close_source().with_resources("leads", "calls"), loader_file_format="parquet")

Data flows one way: catalog -> api (client) -> read (export | lists | Event Log) -> shape (rows,
Arrow) -> run (plan, state, resources) -> dlt. Every table is a resource named after it.
"""

from close_source.api.client import DEFAULT_BASE_URL
from close_source.source import close_source

__all__ = ["close_source", "DEFAULT_BASE_URL"]
