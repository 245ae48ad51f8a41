"""The source state: where each table was synced to, read and written in one place.

dlt commits the source state atomically with the load it belongs to, so a run that fails
leaves the previous state in place and the next run repeats its window (merges are
idempotent). Layout (`sources.close` in the pipeline state):

- ``tables``: per table read from the Event Log (or by date, created activities), its
  watermark (the newest event `date_updated` applied, Close's clock, and the time the run
  began) and the names of the objects its rows copy, as last synced (see `names`);
- ``full_load``: the last full load's method, T0 and export id (information);
- ``custom_columns``: per naming mode and table, the frozen custom-field columns
  (`shape/custom_columns.py` makes them; only this module reads and writes them here);
- ``run``: the id of the run that wrote the state and of the run whose state it continued
  from, so a load package an earlier run left is loaded only into the destination state it
  was made for (`run/destination.py`);
- ``privacy``: the exclusions and hashing the tables were written with (`Privacy.marker`: the
  key's fingerprint, never the key), so a run with others is stopped (`run/privacy_changes.py`);
- ``version``: `VERSION`; `migrate` brings older states to it.

Each table keeps its own watermark, so runs of different table subsets can interleave in any
order: a run reads the Event Log once, from the oldest window it needs, and applies to each
table only what is new to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

VERSION = 3
SOURCE = "close"  # the @dlt.source's name: its state is `sources.close` in the pipeline's
TABLES = "tables"
FULL_LOAD = "full_load"
CUSTOM_COLUMNS = "custom_columns"  # {naming mode: {table: {field id: its columns}}}
RUN = "run"  # {"id": the run that wrote the state, "parent": the run it continued from}
PRIVACY = "privacy"
LEGACY_EVENTS = "events"  # version 1: one watermark shared by every table
RESCAN = timedelta(minutes=5)  # events become visible late and consolidation moves them
HORIZON = timedelta(days=29)  # the Event Log keeps 30 days (Close API: Event Log)

State = MutableMapping[str, Any]


@dataclass(frozen=True)
class Watermark:
    """Where the Event Log was applied to for a table: the newest event, the run's start, and
    the start of the table's last full read while it is within the re-scan (`floor`)."""

    newest_event: datetime
    read_until: datetime
    floor: datetime | None = None

    @property
    def window_start(self) -> datetime:
        """5 minutes before the newest event (late-visible, consolidated events), but never
        before a full read's T0: that read already shows every earlier change, and replaying
        older snapshots onto it would undo what changed without events since (a rename)."""
        start = self.newest_event - RESCAN
        return max(start, self.floor) if self.floor is not None else start

    def too_old(self, now: datetime) -> bool:
        return now - self.read_until > HORIZON

    def advanced(self, newest_event: datetime, read_until: datetime) -> Watermark:
        """After an incremental run; the floor is kept while the re-scan still reaches it."""
        keep = self.floor is not None and self.floor > newest_event - RESCAN
        return Watermark(newest_event, read_until, self.floor if keep else None)

    def to_state(self) -> dict[str, str]:
        kept = {"newest_event": self.newest_event.isoformat(),
                "read_until": self.read_until.isoformat()}
        if self.floor is not None:
            kept["floor"] = self.floor.isoformat()
        return kept

    @classmethod
    def from_state(cls, kept: Any) -> Watermark | None:
        if not isinstance(kept, Mapping) or "newest_event" not in kept:
            return None
        floor = kept.get("floor")
        return cls(datetime.fromisoformat(kept["newest_event"]),
                   datetime.fromisoformat(kept["read_until"]),
                   datetime.fromisoformat(floor) if floor else None)

    @classmethod
    def at(cls, moment: datetime, exact: bool = False,
           events_from: datetime | None = None) -> Watermark:
        """A full read that began at `moment` (T0): later changes are replayed from there.
        `exact`: T0 is on the Event Log's own clock (an export's creation time), so no event
        before it needs replaying; a T0 from the `Date` header keeps the 5-minute re-scan,
        which also absorbs a skew between the two clocks, and replays from `events_from` (the
        newest event when the run began) if that is older: a header ahead of the events would
        skip what changed during the read; the events after it are the run's own, few."""
        if exact:
            return cls(moment, moment, moment)
        return cls(min(moment, events_from or moment), moment)


def migrate(state: State, loaded_tables: Iterable[str]) -> None:
    """Bring an older state to this version, in place.

    Version 1 kept one watermark for every table: each table loaded by then gets it. Versions
    1 and 2 kept a format number of their own inside the custom columns (1, the only one).
    """
    if state.get("version") == VERSION:
        return
    legacy = state.pop(LEGACY_EVENTS, None)
    if isinstance(legacy, Mapping) and (watermark := Watermark.from_state(legacy)) is not None:
        tables = state.setdefault(TABLES, {})
        for table in loaded_tables:
            tables.setdefault(table, {})["watermark"] = watermark.to_state()
    columns = state.get(CUSTOM_COLUMNS)
    if isinstance(columns, dict) and columns.pop("version", 1) != 1:
        del state[CUSTOM_COLUMNS]  # a format this code does not know: columns are made anew
    state["version"] = VERSION


def watermark(state: Mapping[str, Any], table: str) -> Watermark | None:
    return Watermark.from_state((state.get(TABLES) or {}).get(table, {}).get("watermark"))


def watermarks(state: Mapping[str, Any]) -> dict[str, Watermark]:
    found = {}
    for table in state.get(TABLES) or {}:
        if (mark := watermark(state, table)) is not None:
            found[table] = mark
    return found


def save_watermark(state: State, tables: Iterable[str], mark: Watermark) -> None:
    kept = state.setdefault(TABLES, {})
    for table in tables:
        kept.setdefault(table, {})["watermark"] = mark.to_state()


def forget(state: State, tables: Iterable[str]) -> None:
    """The tables' data no longer follows from their watermark (a restore without T0)."""
    kept = state.setdefault(TABLES, {})
    for table in tables:
        kept.pop(table, None)


def run_id(state: Mapping[str, Any] | None) -> str | None:
    return ((state or {}).get(RUN) or {}).get("id")


def parent_run(state: Mapping[str, Any] | None) -> str | None:
    return ((state or {}).get(RUN) or {}).get("parent")


def save_run(state: State, this_run: str, parent: str | None,
             close_time: datetime | None = None, history: Sequence[str] = ()) -> None:
    state[RUN] = {"id": this_run, "parent": parent,
                  "close_time": close_time.astimezone(UTC).isoformat() if close_time else None,
                  "history": list(history)}


def run_history(state: Mapping[str, Any] | None) -> list[str]:
    """The tables whose versions the run that wrote the state kept."""
    return list(((state or {}).get(RUN) or {}).get("history") or [])


def run_close_time(state: Mapping[str, Any] | None) -> str | None:
    """Close's time as the run that wrote the state began."""
    return ((state or {}).get(RUN) or {}).get("close_time")


def privacy(state: Mapping[str, Any]) -> dict[str, Any] | None:
    kept = state.get(PRIVACY)
    return dict(kept) if isinstance(kept, Mapping) else None


def save_privacy(state: State, marker: Mapping[str, Any]) -> None:
    state[PRIVACY] = dict(marker)


def record_full_load(state: State, method: str, t0: datetime | None, **extra: Any) -> None:
    state[FULL_LOAD] = {"method": method,
                        "t0": (t0 or datetime.now(UTC)).astimezone(UTC).isoformat(), **extra}


def loaded_export_id(state: Mapping[str, Any]) -> str | None:
    """The export the last committed full load came from, if it came from one."""
    return (state.get(FULL_LOAD) or {}).get("export_id")


# ---- names the rows copy ------------------------------------------------------------------
#
# Users, statuses, pipelines, sequences and templates have no events a sync can rely on for a
# rename (users and pipelines have none at all), but they are read in full every run. Each
# table remembers a digest of the names it was last synced with, per object it names; a
# digest that differs now is a rename the table has not followed yet.




def names_seen(state: Mapping[str, Any], table: str) -> dict[str, dict[str, str]] | None:
    """{source table: {object id: digest}} as `table` last synced, None if never recorded."""
    kept = (state.get(TABLES) or {}).get(table, {}).get("names")
    return kept if isinstance(kept, dict) else None


def save_names(state: State, table: str, names: Mapping[str, Mapping[str, str]]) -> None:
    state.setdefault(TABLES, {}).setdefault(table, {})["names"] = {
        source: dict(digests) for source, digests in names.items()}


def renamed_at(state: Mapping[str, Any], table: str) -> dict[str, datetime]:
    """`source:id` -> when its latest rename was seen, kept while a window can replay older
    events (their snapshots carry the old name)."""
    kept = (state.get(TABLES) or {}).get(table, {}).get("renamed_at") or {}
    return {key: datetime.fromisoformat(value) for key, value in kept.items()}


def save_renamed_at(state: State, table: str, renames: Mapping[str, datetime],
                    keep_after: datetime) -> None:
    state.setdefault(TABLES, {}).setdefault(table, {})["renamed_at"] = {
        key: moment.isoformat() for key, moment in renames.items() if moment >= keep_after}


def custom_columns(state: Mapping[str, Any], mode: str) -> dict[str, dict[str, Any]]:
    """{table: {field id: its columns}} as the tables last synced with them, for one naming."""
    return dict((state.get(CUSTOM_COLUMNS) or {}).get(mode) or {})


def save_custom_columns(state: State, mode: str,
                        tables: Mapping[str, Mapping[str, Any]]) -> None:
    """The columns of the tables this run wrote; other tables keep what they last synced
    with, so a later run of them still sees what changed since."""
    saved = state.setdefault(CUSTOM_COLUMNS, {}).setdefault(mode, {})
    saved.update({table: dict(fields) for table, fields in tables.items()})
