"""`close-sync verify`: a synced warehouse equals Close at both levels; every way of corrupting
it is reported exactly (at `counts` where a count can see it, always at `ids`), `--heal` fixes
it through a normal sync, and what Close changed since the last run is reported apart.

One organisation per destination, synced once with soft deletes and `history = ["leads"]`,
shared by the tests in order: exact -> corrupted, reported, healed -> changed in Close without a
sync. The docs' SQL examples run on it first (it holds every table they name).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import dlt
import pytest

from close_fake import FakeClose, FakeOrg, generate_org
from close_fake import changes as c
from close_fake import org as o
from close_fake.churn import random_changes
from close_source.api.client import CloseClient
from close_source.pipeline import loader_file_format
from close_source.run.lock import run_lock
from close_source.run.verify import CHANGED, DIFFERS, EXACT, NOT_COUNTED, Report, verify
from close_source.source import close_source
from tests import destinations as dest
from tests.cli_runs import KEY, assert_one_line_user_error, close_sync, pipeline_of
from tests.conftest import WAREHOUSES
from tests.docs_pages import code_blocks, statements
from tests.helpers import rows, sync
from tests.invariant import every_table_mismatches

HISTORY = ["leads"]


@dataclass
class Synced:
    org: FakeOrg
    fake: FakeClose
    pipeline: dlt.Pipeline
    workdir: Path
    dsn: str | None
    revived: str  # a note deleted in Close, kept with `_deleted_at` by the sync

    def verify(self, level: str, tables: tuple[str, ...] = ()) -> Report:
        with CloseClient(KEY, self.fake.base_url) as client:
            return verify(self.pipeline, client, level, tables)

    def cli(self, *args: str) -> tuple[int, str, str]:
        argv = ["verify", *args] + (["--destination", "postgres"] if self.dsn else [])
        env = {"SOURCES__CLOSE__API_KEY": KEY, "SOURCES__CLOSE__BASE_URL": self.fake.base_url,
               "SOURCES__CLOSE__DELETES": "soft", "SOURCES__CLOSE__HISTORY": json.dumps(HISTORY)}
        if self.dsn:
            env["DESTINATION__POSTGRES__CREDENTIALS"] = self.dsn
        else:  # the file the test's pipeline loaded (by default it is where it was created)
            env["DESTINATION__DUCKDB__CREDENTIALS"] = str(dest.duckdb_file(self.pipeline))
        done = close_sync(argv, self.workdir, **env)
        assert "Traceback" not in done.stderr, done.stderr
        return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module", params=WAREHOUSES)
def synced(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Synced]:
    workdir = tmp_path_factory.mktemp(f"verify-{request.param}")
    dsn = request.getfixturevalue("postgres_server").new_database() \
        if request.param == "postgres" else None
    org = generate_org(seed=26, leads=25)
    with FakeClose(org, api_key=KEY) as fake:
        pipeline = pipeline_of(workdir, dsn)
        sync(fake, workdir, pipeline=pipeline, deletes="soft", history=HISTORY)
        org.advance(timedelta(minutes=10))
        note = next(a for a in org.all(o.ACTIVITY) if a["_type"] == "Note")
        c.delete(org, o.ACTIVITY, note["id"])
        org.advance(timedelta(minutes=10))
        sync(fake, workdir, pipeline=pipeline, deletes="soft", history=HISTORY)
        yield Synced(org, fake, pipeline, workdir, dsn, note["id"])


def by_table(report: Report) -> dict[str, tuple[str, dict[str, int | None], int]]:
    return {result.table: (result.verdict, result.drift, result.since_last_run)
            for result in report.tables}


def test_a_synced_warehouse_is_exact_at_both_levels(synced: Synced) -> None:
    counted = by_table(synced.verify("counts"))
    assert counted["leads"][0] == counted["opportunities"][0] == EXACT
    assert counted["contacts"][0] == counted["notes"][0] == NOT_COUNTED
    assert counted["users"][0] == counted["custom_fields"][0] == EXACT  # small: by key
    report = synced.verify("ids")
    assert {result.verdict for result in report.tables} == {EXACT}, by_table(report)
    assert report.exit_code == 0
    notes = next(result for result in report.tables if result.table == "notes")
    assert notes.close_objects == notes.warehouse_rows == \
        len([a for a in synced.org.all(o.ACTIVITY) if a["_type"] == "Note"])
    code, out, _ = synced.cli("--level", "ids")
    assert code == 0, out
    assert "Every table compared equals Close" in out
    leads = next(line.split() for line in out.splitlines() if line.startswith("leads "))
    assert leads[1:3] == [str(len(synced.org.all(o.LEAD)))] * 2


# The docs' SQL examples: ```sql blocks run on DuckDB, ```postgresql blocks on PostgreSQL.
FENCES = {"duckdb": "sql", "postgres": "postgresql"}
# statements that may find no rows here (a fragment of each: why)
MAY_BE_EMPTY = {
    "'lead_…'": "a placeholder for the reader's lead id",
    "_deleted_at IS NOT NULL": "no lead of this organisation was deleted",
    "verdict = 'differs'": "every table equals Close here",
    "custom_next_demo >= now()": "the fake's demo dates may all lie in the past",
    "seconds_in_from_status IS NOT NULL": "a lead here changed status once at most (values: "
                                          "test_stage_history)",
}


def test_every_sql_example_of_the_docs_runs(synced: Synced) -> None:
    """Each statement of each example runs as written (`close.` is the dataset) and finds rows,
    unless it is one that may find none here. A verify run first, so `_verify_runs` is there as
    a user's would be."""
    code, out, _ = synced.cli("--tables", "users")
    assert code == 0, out
    kind = "postgres" if synced.dsn else "duckdb"
    examples = code_blocks(FENCES[kind])
    assert len(examples) >= (10 if kind == "duckdb" else 2), examples
    failed, empty = [], []
    for name, example in examples:
        for statement in statements(example):
            try:
                found = rows(synced.pipeline, statement)
            except Exception as error:  # noqa: BLE001 - every failing example is reported
                failed.append(f"{name}: {statement}\n  {str(error).splitlines()[0]}")
                continue
            if not found and not any(fragment in statement for fragment in MAY_BE_EMPTY):
                empty.append(f"{name}: {statement}")
    assert failed == [], "\n".join(failed)
    assert empty == [], "examples that found no rows:\n" + "\n".join(empty)


def test_the_report_as_json_in_verify_runs_and_against_max_age(synced: Synced) -> None:
    code, out, _ = synced.cli("--json", "--max-age", "1d", "--tables", "leads,users")
    document = json.loads(out)
    assert code == document["exit_code"] == 0, out
    assert [table["table"] for table in document["tables"]] == ["leads", "users"]
    leads = document["tables"][0]
    assert (leads["compared"], leads["verdict"], leads["missing"], leads["stale"]) == \
        ("count", EXACT, 0, None)
    assert leads["close_objects"] == leads["warehouse_rows"] == len(synced.org.all(o.LEAD))
    assert document["requests"] > 0
    assert document["last_run"]["too_old"] is False
    recorded = rows(synced.pipeline, "SELECT table_name, verdict, missing FROM close._verify_runs "
                                     "WHERE level = 'counts' AND table_name IN ('leads', 'users')")
    assert ("leads", EXACT, 0) in recorded and ("users", EXACT, 0) in recorded

    synced.org.advance(timedelta(hours=3))  # no sync since: the schedule stalled
    code, out, _ = synced.cli("--max-age", "2h", "--tables", "users")
    assert code == 1, out
    assert "older than --max-age 2.0h" in out


def test_user_errors_are_one_line(synced: Synced) -> None:
    assert_one_line_user_error(
        close_sync(["verify", "--max-age", "soon"], synced.workdir), "--max-age", "2h")
    assert_one_line_user_error(
        close_sync(["verify", "--tables", "leads,nope"], synced.workdir), "unknown table",
        "nope")
    with run_lock(synced.pipeline):
        code, _, err = synced.cli("--tables", "users")
    assert code == 2
    assert "close-sync: another close-sync run of pipeline close_crm is in progress" in err


def test_a_destination_holding_nothing_differs(synced: Synced, tmp_path: Path) -> None:
    """Nothing loaded proves nothing: every table is compared, and differs."""
    done = close_sync(["verify", "--tables", "users"], tmp_path,
                      SOURCES__CLOSE__API_KEY=KEY, SOURCES__CLOSE__BASE_URL=synced.fake.base_url)
    assert done.returncode == 1, done.stderr
    users = next(line.split() for line in done.stdout.splitlines() if line.startswith("users"))
    assert users[1:4] == ["0", str(len(synced.org.all(o.USER))), str(len(synced.org.all(o.USER)))]
    assert "Last run: none recorded in the destination." in done.stdout


def test_each_corruption_is_reported_then_healed(synced: Synced) -> None:
    pipeline, org = synced.pipeline, synced.org
    lead = sorted(lead["id"] for lead in org.all(o.LEAD))[3]
    contact = sorted(contact["id"] for contact in org.all(o.CONTACT))[5]
    opportunities = len(org.all(o.OPPORTUNITY))
    corrupt(pipeline, lead, contact, synced.revived)

    counted = by_table(synced.verify("counts"))
    assert counted["leads"] == (DIFFERS, {"missing": 1, "extra": 0, "stale": None}, 0)
    assert counted["opportunities"] == (DIFFERS, {"missing": opportunities, "extra": 0,
                                                  "stale": None}, 0)
    report = synced.verify("ids")
    found = {result.table: (result.drift, result.examples) for result in report.differing}
    assert found == {
        "leads": ({"missing": 1, "extra": 0, "stale": 0}, {"missing": [lead]}),
        "contacts": ({"missing": 0, "extra": 0, "stale": 1}, {"stale": [contact]}),
        "calls": ({"missing": 0, "extra": 1, "stale": 0}, {"extra": ["acti_made_up_by_test"]}),
        "notes": ({"missing": 0, "extra": 1, "stale": 0}, {"extra": [synced.revived]}),
        "opportunities": ({"missing": opportunities, "extra": 0, "stale": 0},
                          found["opportunities"][1]),
    }
    assert report.exit_code == 1

    code, out, err = synced.cli("--level", "ids", "--heal", "--json")
    assert out.startswith("{"), (code, out, err[-3000:])
    document = json.loads(out)
    assert code == 0, (out, err)
    assert document["before_heal"]["exit_code"] == 1
    assert set(document["healed"]) == {"leads", "contacts", "calls", "notes", "opportunities"}
    assert {table["verdict"] for table in document["tables"]} == {EXACT}
    assert not every_table_mismatches(org, pipeline, soft=True)
    assert rows(pipeline, f"SELECT _deleted_at IS NOT NULL FROM close.notes "
                          f"WHERE id = '{synced.revived}'") == [(True,)]
    assert synced.verify("ids").exit_code == 0


def corrupt(pipeline: dlt.Pipeline, lead: str, contact: str, revived: str) -> None:
    """A row deleted, a row added, a row with an old `date_updated`, a table emptied, a
    soft-deleted row revived."""
    columns = list(pipeline.default_schema.get_table_columns("calls"))
    made_up = {"id": "'acti_made_up_by_test'", "_dlt_id": "'made-up'"}
    copied = ", ".join(made_up.get(name, name) for name in columns)
    dest.execute(
        pipeline,
        f"DELETE FROM close.leads WHERE id = '{lead}'",
        f"INSERT INTO close.calls ({', '.join(columns)}) SELECT {copied} FROM close.calls "
        f"WHERE id = (SELECT min(id) FROM close.calls)",
        "UPDATE close.contacts SET date_updated = TIMESTAMPTZ '2001-01-01 00:00:00+00' "
        f"WHERE id = '{contact}'",
        "DELETE FROM close.opportunities",
        f"UPDATE close.notes SET _deleted_at = NULL WHERE id = '{revived}'",
    )


def test_changes_in_close_without_a_sync_are_no_drift(synced: Synced) -> None:
    synced.org.advance(timedelta(minutes=10))
    random_changes(synced.org, random.Random(26), 30, step=timedelta(seconds=5))
    synced.org.advance(timedelta(seconds=30))
    for level in ("counts", "ids"):
        report = synced.verify(level)
        assert not report.differing, by_table(report)
        assert report.exit_code == 0
        assert any(result.verdict == CHANGED for result in report.tables)
    # a run that read them and died before loading: verify says why the tables lag
    synced.pipeline.activate()
    synced.pipeline.extract(close_source(api_key=KEY, base_url=synced.fake.base_url,
                                         deletes="soft", history=HISTORY),
                            loader_file_format=loader_file_format(synced.pipeline))
    synced.pipeline.normalize()
    code, out, _ = synced.cli("--tables", "users")
    assert code == 0, out
    assert "A run stopped before its data was loaded: the next run loads it first" in out
    sync(synced.fake, synced.workdir, pipeline=synced.pipeline, deletes="soft", history=HISTORY)
    report = synced.verify("ids")
    assert {result.verdict for result in report.tables} == {EXACT}, by_table(report)
    assert not report.pending
