"""`close_source(heal=...)`, what `close-sync verify --heal` runs: a normal sync of the tables
that also reads again, by id, the objects whose rows differ from Close, or reads a table in
full, through the normal load path (state, soft deletes and history stay consistent).

One organisation per warehouse, loaded by two pipelines, both keeping versions of leads: hard
deletes and soft deletes. Each warehouse is then corrupted behind its pipeline's back, by SQL,
as verify would find it: a lead and a call missing, a made-up lead (with an address) and call,
a lead with an old `date_updated` and another name, a Created activity missing, contacts and
users emptied, and (soft deletes) the row of a lead deleted in Close with its `_deleted_at`
cleared. Close changes meanwhile (a lead deleted, one renamed): the heal run applies its Event
Log window as every run does. One run with `heal=` those ids makes every table equal Close
again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import dlt
import pytest

from close_fake import FakeClose, FakeOrg, generate_org
from close_fake import changes as c
from close_fake import org as o
from tests import destinations as dest
from tests.conftest import warehouse
from tests.helpers import new_pipeline, rows, sync
from tests.history_checks import version_mismatches
from tests.invariant import every_table_mismatches, mismatches

HISTORY = {"history": ["leads"]}
MADE_UP_LEAD = "lead_madeUpByHandNotInClose0000000000000000000"
MADE_UP_CALL = "acti_madeUpByHandNotInClose0000000000000000000"


@dataclass
class Healed:
    org: FakeOrg
    hard: dlt.Pipeline
    soft: dlt.Pipeline
    ids: dict[str, str]  # what each corruption was done to
    before: dict[str, Any] = field(default_factory=dict)  # what differed before the heal
    versions: dict[str, list[Any]] = field(default_factory=dict)  # versions before, after
    log: list[str] = field(default_factory=list)  # the heal runs' log lines
    requests: list[Any] = field(default_factory=list)  # the heal runs' requests to Close


@contextmanager
def logged(lines: list[str]) -> Iterator[None]:
    """The connector's INFO lines of the block (caplog is per test, the fixture per module)."""

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger, handler = logging.getLogger("close_source"), Keep(logging.INFO)
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _activities(org: FakeOrg, kind: str, not_of: set[str]) -> list[str]:
    return [a["id"] for a in org.all(o.ACTIVITY) if a["_type"] == kind
            and a["lead_id"] not in not_of]


def corrupt(pipeline: dlt.Pipeline, ids: dict[str, str]) -> None:
    """What verify finds in a warehouse something or someone changed behind the pipeline."""
    ds = pipeline.dataset_name
    dest.execute(
        pipeline,
        f"DELETE FROM {ds}.leads WHERE id = '{ids['missing']}'",
        f"DELETE FROM {ds}.leads__addresses WHERE lead_id = '{ids['missing']}'",
        f"INSERT INTO {ds}.leads (id, name, date_created, date_updated) VALUES "
        f"('{MADE_UP_LEAD}', 'Nobody', '2020-01-01', '2020-01-01')",
        f"INSERT INTO {ds}.leads__addresses (lead_id, _pos, city) VALUES "
        f"('{MADE_UP_LEAD}', 0, 'Nowhere')",
        f"UPDATE {ds}.leads SET date_updated = '2001-01-01', name = 'Stale name' "
        f"WHERE id = '{ids['stale']}'",
        f"DELETE FROM {ds}.calls WHERE id = '{ids['call']}'",
        f"INSERT INTO {ds}.calls (id, lead_id, date_created, date_updated) VALUES "
        f"('{MADE_UP_CALL}', '{ids['stale']}', '2020-01-01', '2020-01-01')",
        f"DELETE FROM {ds}.created_activities WHERE id = '{ids['created']}'",
        f"DELETE FROM {ds}.contacts__emails",
        f"DELETE FROM {ds}.contacts__phones",
        f"DELETE FROM {ds}.contacts__urls",
        f"DELETE FROM {ds}.contacts",
        f"DELETE FROM {ds}.users",
    )


def heal_of(ids: dict[str, str]) -> dict[str, list[str] | None]:
    """What verify passes: the differing ids per table (the lead deleted in Close among them),
    or None for a table to read in full."""
    return {"leads": [ids["missing"], MADE_UP_LEAD, ids["stale"], ids["gone"]],
            "calls": [ids["call"], MADE_UP_CALL], "created_activities": [ids["created"]],
            "contacts": None, "users": None}


def lead_versions(pipeline: dlt.Pipeline, ids: dict[str, str]) -> list[Any]:
    wanted = ", ".join(f"'{ids[k]}'" for k in ("missing", "stale"))
    return rows(pipeline, f"SELECT id, _valid_from, _valid_to, _deleted FROM "
                          f"{pipeline.dataset_name}.leads_history WHERE id IN ({wanted}) "
                          f"ORDER BY id, _valid_from")


# DuckDB: heal on PostgreSQL goes through the same load path, and test_verify.py heals there
@pytest.fixture(scope="module", params=["duckdb"])
def healed(request, tmp_path_factory) -> Healed:
    workdir: Path = tmp_path_factory.mktemp(f"heal_{request.param}")
    org = generate_org(seed=126, leads=8)
    where = warehouse(request, request.param)
    with FakeClose(org) as fake:
        hard = sync(fake, workdir, pipeline=new_pipeline(workdir, "hard", where), **HISTORY)
        soft = sync(fake, workdir, pipeline=new_pipeline(workdir, "soft", where),
                    deletes="soft", **HISTORY)
        leads = [lead["id"] for lead in org.all(o.LEAD)]
        gone, renamed, missing, stale = leads[:4]
        ids = {"gone": gone, "missing": missing, "stale": stale,
               "call": _activities(org, "Call", {gone})[0],
               "created": _activities(org, "Created", {gone})[0]}
        org.advance(timedelta(minutes=10))
        c.delete(org, o.LEAD, gone)
        org.advance(timedelta(minutes=10))  # the next windows of `soft` begin after the delete
        c.update(org, o.LEAD, renamed, {"name": "Renamed in Close"})
        org.advance(timedelta(minutes=1))
        sync(fake, workdir, pipeline=soft, deletes="soft", **HISTORY)  # marks `gone`
        assert rows(soft, f"SELECT count(*) FROM close.leads WHERE id = '{gone}' "
                          "AND _deleted_at IS NOT NULL") == [(1,)]
        healed = Healed(org, hard, soft, ids)
        healed.versions["before"] = [lead_versions(hard, ids), lead_versions(soft, ids)]
        corrupt(hard, ids)
        corrupt(soft, ids)
        dest.execute(soft, f"UPDATE close.leads SET _deleted_at = NULL WHERE id = '{gone}'")
        healed.before = {"hard": every_table_mismatches(org, hard),
                         "soft": every_table_mismatches(org, soft, soft=True),
                         "hard versions": version_mismatches(hard, ["leads"]),
                         "soft versions": version_mismatches(soft, ["leads"], soft=True)}
        requests = len(fake.requests)
        with logged(healed.log):
            sync(fake, workdir, pipeline=hard, heal=heal_of(ids), **HISTORY)
            sync(fake, workdir, pipeline=soft, deletes="soft", heal=heal_of(ids), **HISTORY)
        healed.requests = fake.requests[requests:]
        healed.versions["after"] = [lead_versions(hard, ids), lead_versions(soft, ids)]
    return healed


def test_the_corruptions_are_what_verify_would_find(healed):
    """Each corruption shows before the heal (else the heal tests could not fail)."""
    ids = healed.ids
    for kind in ("hard", "soft"):
        found = "\n".join(sum(healed.before[kind].values(), []))
        for text in (ids["missing"], MADE_UP_LEAD, f"leads {ids['stale']} name", ids["call"],
                     MADE_UP_CALL, ids["created"], "contacts: missing", "users: missing"):
            assert text in found, (kind, text)
    assert ids["gone"] in "\n".join(healed.before["soft"]["leads"])  # revived
    assert any(ids["missing"] in problem for problem in healed.before["hard versions"])
    assert any(MADE_UP_LEAD in problem for problem in healed.before["soft versions"])


def test_every_table_equals_close_again(healed):
    assert not every_table_mismatches(healed.org, healed.hard)
    assert not every_table_mismatches(healed.org, healed.soft, soft=True)


def test_a_made_up_row_is_deleted_with_its_child_rows_or_marked_with_soft_deletes(healed):
    hard, soft = healed.hard, healed.soft
    assert rows(hard, f"SELECT count(*) FROM close.leads WHERE id = '{MADE_UP_LEAD}'") == [(0,)]
    assert rows(hard, "SELECT count(*) FROM close.leads__addresses "
                      f"WHERE lead_id = '{MADE_UP_LEAD}'") == [(0,)]
    assert rows(hard, f"SELECT count(*) FROM close.calls WHERE id = '{MADE_UP_CALL}'") == [(0,)]
    for made_up, table in ((MADE_UP_LEAD, "leads"), (MADE_UP_CALL, "calls")):
        assert rows(soft, f"SELECT count(*) FROM close.{table} WHERE id = '{made_up}' "
                          "AND _deleted_at IS NOT NULL") == [(1,)]


def test_a_revived_soft_deleted_row_is_marked_again(healed):
    gone = healed.ids["gone"]
    assert rows(healed.soft, f"SELECT count(*) FROM close.leads WHERE id = '{gone}' "
                             "AND _deleted_at IS NOT NULL") == [(1,)]
    assert rows(healed.hard, f"SELECT count(*) FROM close.leads WHERE id = '{gone}'") == [(0,)]


def test_versions_stay_consistent(healed):
    """The healed leads keep the versions they had: a row read again shows the version the
    history has at its `date_updated`; a made-up row never had one; the delete ended one."""
    assert not version_mismatches(healed.hard, ["leads"])
    assert not version_mismatches(healed.soft, ["leads"], soft=True)
    assert healed.versions["after"] == healed.versions["before"]
    for pipeline in (healed.hard, healed.soft):
        assert rows(pipeline, "SELECT count(*) FROM close.leads_history "
                              f"WHERE id = '{MADE_UP_LEAD}'") == [(0,)]
        assert rows(pipeline, "SELECT _deleted FROM close.leads_history WHERE id = "
                              f"'{healed.ids['gone']}' AND _valid_to IS NOT NULL") == [(True,)]


def test_ids_are_read_by_id_and_whole_tables_in_full(healed):
    """Leads, calls and Created activities are read by id, not in full; the lead the
    window's delete settled is not read again; contacts and users (None) in full."""
    log = healed.log
    assert log.count("leads: 3 objects read again by id (verify --heal); 1 already settled "
                     "by the window's events") == 1  # hard deletes: `gone`'s delete event
    assert log.count("leads: 4 objects read again by id (verify --heal)") == 1  # soft
    assert log.count("calls: 2 objects read again by id (verify --heal)") == 2
    assert log.count("created_activities: 1 objects read again by id (verify --heal)") == 2
    for table in ("contacts", "users"):
        assert log.count(f"{table}: full read (verify --heal)") == 2, table
    endpoints = {request.endpoint for request in healed.requests}
    assert "/export/lead/" in endpoints and "/user/" in endpoints  # contacts, users in full
    for table in ("leads", "calls", "created_activities"):
        assert not any(line.startswith(f"{table}: full read") for line in log), table
    for listed in ("/lead/", "/activity/call/"):  # no list walk
        assert not any(request.endpoint == listed and "id__in" not in (request.body or {})
                       and "id__in" not in request.params for request in healed.requests)


def test_heal_of_an_every_run_table_brings_it_back(healed):
    """`heal={"users": None}`: the emptied table is whole again."""
    for pipeline in (healed.hard, healed.soft):
        assert not mismatches(healed.org, pipeline, "users")
        assert rows(pipeline, "SELECT count(*) FROM close.users") != [(0,)]
