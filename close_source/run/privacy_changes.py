"""A dataset holds values one way: `exclude_columns` and `pii` may not change under it.

A field excluded now was loaded before: its column and values are in the tables, and in the
history a `--full-refresh` keeps (`field_changes`, `<table>_history`); hashing turned on, off
or with another key leaves raw values or other hashes beside the new ones, and joins on them
fail silently. So a run whose settings would mix them stops before it reads anything, and says
to load into a new dataset (or drop this one). An exclusion removed mixes nothing: its column
comes back, empty in the rows loaded before; a full reload fills them, and a warning says so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from close_source.catalog import CATALOG, owned_tables
from close_source.errors import ConfigError
from close_source.read.privacy import Privacy
from close_source.read.warehouse import Warehouse
from close_source.run import state as st
from close_source.settings import setting_name

log = logging.getLogger(__name__)

AS_BEFORE = "load into a new dataset (--dataset) or drop this one, then run again"


def check_privacy(source_state: Mapping[str, Any], warehouse: Warehouse, privacy: Privacy,
                  backup: Mapping[str, Any] | None = None) -> None:
    """A ConfigError when the dataset's tables were written with other exclusions or hashing
    than this run's (a dataset loaded before these settings existed had none), or when the
    backup a restore reads was hashed otherwise (its files keep that way)."""
    now = privacy.marker()
    if backup and backup.get("pii") == "hash" and backup.get("pii_key") != now["pii_key"]:
        raise ConfigError(f"{setting_name('pii')}: this backup's files were hashed with another "
                          f"pii_key or pii setting than this restore's: restore it with the "
                          f"pii = \"hash\" and pii_key it was made with")
    before = st.privacy(source_state)
    if before is None:
        if not _holds_data(warehouse):
            return
        before = Privacy().marker()
    if before == now:
        return
    if (before.get("pii"), before.get("pii_key")) != (now["pii"], now["pii_key"]):
        change = (f"pii changed from {before.get('pii')} to {now['pii']}"
                  if before.get("pii") != now["pii"] else "pii_key changed")
        raise ConfigError(f"{setting_name('pii')}: {change} since this dataset was loaded: its "
                          f"tables hold addresses and numbers as the old setting left them, "
                          f"and joins of old rows with new ones would fail; {AS_BEFORE}")
    was, excluded = _fields(before), _fields(now)
    if added := sorted(excluded - was):
        raise ConfigError(f"{setting_name('exclude_columns')} now excludes {', '.join(added)}, "
                          f"which this dataset was loaded with (in its tables and the history "
                          f"--full-refresh keeps); {AS_BEFORE}")
    if removed := sorted(was - excluded):
        log.warning("%s no longer excludes %s: the rows loaded before hold no values there "
                    "(a run with --full-refresh loads them)", setting_name("exclude_columns"),
                    ", ".join(removed))


def _fields(marker: Mapping[str, Any]) -> set[str]:
    return {f"{table}.{name}" for table, names in (marker.get("exclude_columns") or {}).items()
            for name in names}


def _holds_data(warehouse: Warehouse) -> bool:
    ours = {name for entry in CATALOG for name in owned_tables(entry)}
    return any(table in ours for table in warehouse.tables())
