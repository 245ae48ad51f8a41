"""What a run sets up in the process (dlt defaults, Arrow's allocator, log filters, eager
imports) and puts back when it ends: importing close_source changes nothing."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from importlib.abc import MetaPathFinder

import pyarrow as pa
from dlt.common.configuration.container import Container
from dlt.common.configuration.providers import DictionaryProvider
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

EXTRACT_FILE_ROWS = 50_000  # rows of a table's parquet file in the extract, at most
EXTRACT_BUFFER_ROWS = 1_000  # rows of a table dlt's extract holds before writing them


class RunDefaults(DictionaryProvider):
    """Our defaults for dlt settings, consulted after every other provider (environment,
    .dlt/*.toml), so a user's own setting wins.

    `insert-from-staging`: a table replaced in full is loaded into the staging dataset first
    and swapped in with one transaction (delete + insert), so readers see it as before or as
    after, never half-loaded; dlt's default, `truncate-and-insert`, empties it when the load
    begins. Merges go through staging on every SQL destination anyway. Staging tables are
    emptied once a load is complete, so they do not keep a second copy of the data.

    A first load (the dataset does not exist yet) has nothing to keep visible, and the copy
    from staging costs a quarter of its time (bench/): it loads the tables directly.

    Two load workers: parallel load jobs multiply memory, not speed (bench/); `load_workers`
    for a destination that wants another number (`run/load_memory.py`: DuckDB, one).

    `copy_csv`: normalize writes CSV files for PostgreSQL's COPY (`run/postgres_copy.py`), read
    from the local disk: without gzip (dlt's level 9 took 7 of 10 s at 20,000 leads), and a
    table's Arrow rows are written every 1,000 (dlt holds up to 5,000 of every table's: ~40 MB
    more at 20,000 leads; bench/).

    The extract writes a table's Arrow items once it holds `EXTRACT_BUFFER_ROWS` rows of it,
    not dlt's 5,000: the batchers' items are cut by their shared budget, and dlt held up to
    5,000 rows of every table on top of it (Arrow data at most 43 MB instead of 17 at 100,000
    leads, the peak 396 -> 371 MB, the extract no slower: one run each). Each write is a row
    group, whose metadata (~0.1-1 KB a column) a parquet writer keeps until its file is
    closed: a table's next file is started every `EXTRACT_FILE_ROWS` rows, so that memory does
    not grow with the organisation (bench/WHOLE_RUN.md).
    """

    NAME = "close-sync defaults"

    def __init__(self, first_load: bool, load_workers: int = 2, copy_csv: bool = False) -> None:
        super().__init__()
        strategy = "truncate-and-insert" if first_load else "insert-from-staging"
        self._config_doc = {
            "destination": {name: {"replace_strategy": strategy}
                            for name in ("duckdb", "postgres")},
            "load": {"truncate_staging_dataset": True, "workers": load_workers},
            # not under "extract": the extract writes in its source's section (`sources.close`)
            "data_writer": {"file_max_items": EXTRACT_FILE_ROWS,
                            "buffer_max_items": EXTRACT_BUFFER_ROWS},
        }
        if copy_csv:
            self._config_doc["normalize"] = {"data_writer": {"disable_compression": True,
                                                             "buffer_max_items": 1000}}

    @property
    def name(self) -> str:
        return self.NAME

    @property
    def supports_secrets(self) -> bool:
        return False


class ArrowHintNoise(logging.Filter):
    """dlt warns whenever declared hints refine an Arrow type (json over string, a not-null
    key): that is exactly what the hints are for. It also warns, per table, that Arrow batches
    are converted for jsonl and insert_values: BigQuery's loader format, and PostgreSQL's
    through a destination other than ours, both chosen on purpose (pipeline.py)."""

    NOISE = ("when merging arrow schema with dlt schema", "A ArrowToJsonlWriter writer is used",
             "A ArrowToInsertValuesWriter writer is used",
             # a full load replaces tables that incremental runs merged into, tombstones and all
             'The "hard_delete" column hint')

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in self.NOISE)


@contextmanager
def run_environment(first_load: bool = False, load_workers: int = 2,
                    copy_csv: bool = False) -> Iterator[None]:
    """The process as a run needs it, for the run's duration."""
    import_lazy_modules()
    providers = Container()[PluggableRunContext].providers
    defaults = RunDefaults(first_load, load_workers, copy_csv)
    providers[RunDefaults.NAME] = defaults  # appended: consulted after the user's settings
    noise = ArrowHintNoise()
    logging.getLogger("dlt").addFilter(noise)
    pool = pa.default_memory_pool()
    # Arrow's default allocator keeps freed memory; the system one gives it back (bench/)
    pa.set_memory_pool(pa.system_memory_pool())
    return_freed_memory()
    trim = FreedMemoryTrim()
    trim.start()
    try:
        yield
    finally:
        trim.stop()
        pa.set_memory_pool(pool)
        logging.getLogger("dlt").removeFilter(noise)
        with suppress(ValueError):
            providers.providers.remove(defaults)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def return_freed_memory() -> None:
    """glibc's allocator raises its mmap threshold (to 32 MB) each time a large block is freed,
    after which large blocks come from the heap and stay with the process when freed: the
    steps of a run (decoding, Arrow batches, INSERT statements) left each other a few hundred
    MB. Fixed thresholds give blocks over 256 KB back when freed, and trim the heap's free top
    past 4 MB. Kept after the run (a process-wide setting with no way to read it back); other
    platforms' allocators are left alone."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, 256 * 1024)
    mallopt(M_TRIM_THRESHOLD, 4 * 2**20)


class FreedMemoryTrim(threading.Thread):
    """glibc's `malloc_trim(0)` every `period` seconds while a run lasts.

    Memory freed in the middle of glibc's heaps stays with the process: only the top of a heap
    is trimmed, and each thread that allocates gets a heap of its own (the extract's workers,
    the reference readers, the export's read-ahead). A whole run at 30,000 leads held 60-80 MB
    of such free memory, a fifth of its peak; `malloc_trim(0)` gives the free pages back
    (madvise), a few ms a call: the run's peak fell by ~50 MB (bench/whole_run.py,
    bench/WHOLE_RUN.md). Nothing on other platforms' allocators."""

    def __init__(self, period: float = 1.0) -> None:
        super().__init__(name="close-sync-malloc-trim", daemon=True)
        self.period = period
        self.trimmed = threading.Event()  # set after each trim
        self._stopped = threading.Event()
        self._trim = _malloc_trim()

    def run(self) -> None:
        while self._trim is not None and not self._stopped.wait(self.period):
            self._trim(0)
            self.trimmed.set()

    def stop(self) -> None:
        self._stopped.set()
        self.join()


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def import_lazy_modules() -> None:
    """Import in the main thread what the extract's worker threads would import on first use.

    dlt runs parallelized resources in a thread pool; the first `pa.array` in a worker imports
    pandas (pyarrow's pandas shim) and `pyarrow.pandas_compat`, date parsing `_strptime`, and a
    second thread meeting the half-imported module fails with "partially initialized module
    'pandas' has no attribute 'DataFrame'". Found by recording the imports made outside the
    main thread during a full sync (tests/end_to_end/test_lazy_imports.py).
    """
    import _strptime  # noqa: F401
    import zoneinfo  # noqa: F401

    pa.array([0])  # initialises pyarrow's pandas shim: imports pandas and pandas_compat, if any


class _NoPandas(MetaPathFinder):
    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas":
            raise ModuleNotFoundError("not for pyarrow's shim in a close-sync process",
                                      name=name)


def keep_pandas_out() -> None:
    """A `close-sync` process hands pyarrow no pandas objects, yet pyarrow imports pandas
    (~40 MB of the process's memory, bench/) the first time it converts a list, only to ask
    whether the list is one. That first question is answered "no pandas" here; pyarrow still
    imports pandas when it is asked for pandas by name (`to_pandas`, `from_pandas`), and any
    other import of pandas works as usual. Not done for the Python API: its caller's process
    may hand pyarrow pandas objects."""
    if "pandas" in sys.modules:
        return
    finder = _NoPandas()
    sys.meta_path.insert(0, finder)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(finder)
