"""A fake Close CRM API: a seeded in-memory organisation served over real loopback HTTP.

Used by the connector's tests, `close-sync demo` and the benchmarks:

    import httpx
    from close_fake import FakeClose, generate_org

    with FakeClose(generate_org(seed=1, leads=100)) as fake:
        httpx.get(fake.base_url + "lead/", auth=(fake.api_key, ""))
"""

from .churn import random_changes
from .events import EventSettings
from .exports.file import write_export_file
from .exports.generated import write_generated_export
from .exports.settings import ExportSettings
from .generate import GeneratedChunks, generate_config, generate_org
from .http.faults import Faults, RateLimit
from .http.pipeline import RequestRecord
from .http.server import DEFAULT_API_KEY, FakeClose
from .org import FakeOrg

__all__ = [
    "DEFAULT_API_KEY",
    "EventSettings",
    "ExportSettings",
    "FakeClose",
    "FakeOrg",
    "Faults",
    "GeneratedChunks",
    "RateLimit",
    "RequestRecord",
    "generate_config",
    "generate_org",
    "random_changes",
    "write_export_file",
    "write_generated_export",
]
