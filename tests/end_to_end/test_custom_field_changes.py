"""`custom_field_changes`: every custom field definition added, renamed, retyped, whose choices
changed, or deleted, recorded once, by the run that syncs `custom_fields` and sees it first;
a warning for each change of what a column holds; `close-sync status` lists the last run's.

The expected rows are written out by hand from the README's rules.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dlt
import pytest

from close_fake import FakeClose, FakeOrg, generate_org
from close_fake import mutations as m
from close_source.pipeline import loader_file_format, run_sync
from close_source.source import close_source
from tests.cli_runs import close_sync
from tests.comments import TABLE, comments_of
from tests.conftest import WAREHOUSES, warehouse
from tests.helpers import as_json, new_pipeline, rows, sync
from tests.invariant import every_table_mismatches

SYNCED = ["leads", "contacts", "custom_fields"]
JOB_ROLE = 'Job Role ("owner\'s")'  # quotes of both kinds: in SQL literals and comments
COLUMNS = ("change_id", "seen_at", "object_type", "field_id", "change", "old_name", "new_name",
           "old_type", "new_type", "old_choices", "new_choices", "table_name", "column_name",
           "column_effect")


def field_id(org: FakeOrg, kind: str, name: str) -> str:
    return next(d["id"] for d in org.all(f"custom_field.{kind}") if d["name"] == name)


def recorded(pipeline: dlt.Pipeline) -> dict[str, dict[str, Any]]:
    """Every row of the table, by key; choices decoded."""
    found = {}
    for row in rows(pipeline, f"SELECT {', '.join(COLUMNS)} FROM close.custom_field_changes"):
        change = dict(zip(COLUMNS, row, strict=True))
        for name in ("old_choices", "new_choices"):
            change[name] = as_json(change[name]) if change[name] is not None else None
        found[change["change_id"]] = change
    return found


@contextmanager
def change_warnings() -> Iterator[list[str]]:
    """The warning lines the changes log while the block runs."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.module == "definition_changes" and record.levelno >= logging.WARNING:
                lines.append(record.getMessage())

    handler, logger = Keep(), logging.getLogger("close_source.progress")
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


@dataclass
class Stage:
    new: list[dict[str, Any]]  # the rows the stage added
    warnings: list[str]
    clock: datetime  # Close's time when the stage's run began
    status: str = ""
    fields: set[tuple[Any, ...]] = field(default_factory=set)  # custom_fields after it
    comments: dict[str, dict[str | None, str | None]] = field(default_factory=dict)  # after it

    def one(self, change: str, name: str, object_type: str = "lead") -> dict[str, Any]:
        found = [row for row in self.new if row["change"] == change and row["object_type"] ==
                 object_type and name in (row["old_name"], row["new_name"])]
        assert len(found) == 1, (change, name, self.new)
        return found[0]


@dataclass
class History:
    kind: str
    pipeline: dlt.Pipeline
    ids: dict[str, str]
    stages: dict[str, Stage] = field(default_factory=dict)
    problems: dict[str, dict[str, list[str]]] = field(default_factory=dict)


def leave_a_package(fake: FakeClose, pipeline: dlt.Pipeline) -> None:
    """What a run killed after extracting leaves: a normalized package, not loaded."""
    pipeline.activate()
    source = close_source(api_key=fake.api_key, base_url=fake.base_url, tables=SYNCED,
                          full_load="lists")
    pipeline.extract(source, loader_file_format=loader_file_format(pipeline))
    pipeline.normalize()
    assert pipeline.has_pending_data


def status_of(workdir: Path) -> str:
    """`close-sync status` of the test pipeline, as a user runs it."""
    result = close_sync(["status", "--pipeline-name", "test_close"], workdir,
                        DLT_DATA_DIR=str(workdir),
                        DESTINATION__DUCKDB__CREDENTIALS=str(workdir / "test_close.duckdb"))
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module", params=WAREHOUSES)
def history(request, tmp_path_factory) -> History:
    """Syncs of leads, contacts and custom_fields, the definitions changed in between:

    1. `first`: the first sync; 2. `changes`: one of each kind (Industry renamed with a choice
    added, Products losing one, Employees and Notes retyped, Account Owner made multi-valued,
    Lead Source and the shared Region deleted, Tier added, the contact field Role renamed);
    3. `quiet`: nothing changed; 4. `subset`: Trial Ends deleted, only leads synced;
    5. `replayed`: ARR Estimate retyped, a run killed after extracting, then the next run.
    """
    kind = request.param
    org = generate_org(seed=7, leads=4)
    workdir: Path = tmp_path_factory.mktemp(f"field_changes_{kind}")
    ids = {name: field_id(org, "lead", name) for name in (
        "Industry", "Products", "Employees", "Notes (long)", "Account Owner", "Lead Source",
        "Trial Ends", "ARR Estimate")}
    ids["Role"] = field_id(org, "contact", "Role")
    ids["Region"] = field_id(org, "shared", "Region")
    pipeline = new_pipeline(workdir, warehouse=warehouse(request, kind))
    found = History(kind, pipeline, ids)

    def run(stage: str, resources: list[str] = SYNCED, killed_first: bool = False) -> None:
        org.advance(timedelta(minutes=10))
        clock = org.clock().replace(microsecond=0)  # the `Date` header's
        before = recorded(pipeline) if stage != "first" else {}
        with FakeClose(org, tick=False) as fake, change_warnings() as warnings:
            if killed_first:
                leave_a_package(fake, pipeline)
                found.stages[f"{stage} (killed)"] = Stage([], list(warnings), clock)
                del warnings[:]
            sync(fake, workdir, pipeline=pipeline, resources=resources, full_load="lists")
        after = recorded(pipeline)
        new = [row for key, row in after.items() if key not in before]
        found.stages[stage] = Stage(new, warnings, clock,
                                    status_of(workdir) if kind == "duckdb" else "",
                                    set(rows(pipeline, "SELECT object_type, id, name, "
                                                       "column_name FROM close.custom_fields")),
                                    comments_of(pipeline))
        found.problems[stage] = every_table_mismatches(org, pipeline, tables=resources)

    run("first")
    m.update_field(org, ids["Industry"], name="Vertical",
                   choices=["Apparel", "Cars", "Cosmetics", "IT", "Biotech"])
    m.update_field(org, ids["Products"], choices=["Choice 1", "Choice 2", "CRM", "Sequences"])
    m.update_field(org, ids["Employees"], type_="text")
    m.update_field(org, ids["Notes (long)"], type_="text")
    m.update_field(org, ids["Account Owner"], multi=True)
    m.delete_field(org, ids["Lead Source"])
    m.delete_field(org, ids["Region"])
    ids["Tier"] = m.add_field(org, "lead", "Tier", "choices", choices=["Gold", "Silver"])["id"]
    m.rename_field(org, ids["Role"], JOB_ROLE)
    run("changes")
    run("quiet")
    m.delete_field(org, ids["Trial Ends"])
    run("subset", ["leads"])
    m.update_field(org, ids["ARR Estimate"], type_="text")
    run("replayed", killed_first=True)
    return found


def test_the_first_run_records_every_field_as_added(history):
    first = history.stages["first"]
    assert len(first.new) == len(first.fields) > 20
    assert {(r["object_type"], r["field_id"], r["new_name"], r["column_name"])
            for r in first.new} == first.fields
    assert {r["change"] for r in first.new} == {"added"}
    industry = first.one("added", "Industry")
    assert industry["old_name"] is industry["old_type"] is industry["old_choices"] is None
    assert (industry["new_type"], industry["new_choices"]) == (
        "choices", ["Apparel", "Cars", "Cosmetics", "IT"])
    assert industry["column_effect"] == "new column custom_industry"
    assert first.one("added", "Products")["new_type"] == "choices[]"
    assert first.warnings == []


def test_each_kind_of_change_gives_its_row_and_what_the_column_does_now(history):
    changes, ids = history.stages["changes"], history.ids
    assert len(changes.new) == 11, changes.new
    vertical = changes.one("renamed", "Vertical")
    assert vertical["field_id"] == ids["Industry"]
    assert (vertical["old_name"], vertical["table_name"], vertical["column_name"],
            vertical["column_effect"]) == ("Industry", "leads", "custom_industry",
                                           "column custom_industry keeps its name")
    choices = changes.one("choices_changed", "Vertical")
    assert (choices["old_choices"], choices["new_choices"]) == (
        ["Apparel", "Cars", "Cosmetics", "IT"], ["Apparel", "Cars", "Cosmetics", "IT", "Biotech"])
    assert choices["column_effect"] == "column custom_industry kept; no value changes"
    products = changes.one("choices_changed", "Products")
    assert products["new_choices"] == ["Choice 1", "Choice 2", "CRM", "Sequences"]
    assert products["column_effect"] == \
        "column custom_products kept; its values are read again as Close has them now"
    employees = changes.one("retyped", "Employees")
    assert (employees["old_type"], employees["new_type"], employees["column_name"],
            employees["column_effect"]) == (
        "number", "text", "custom_employees_text",
        "values now in custom_employees_text; custom_employees stays, no longer filled")
    assert changes.one("retyped", "Notes (long)")["column_effect"] == \
        "values stay in custom_notes_long (same column type)"
    owner = changes.one("retyped", "Account Owner")
    assert (owner["old_type"], owner["new_type"], owner["column_name"]) == (
        "user", "user[]", "custom_account_owner_list")
    source = changes.one("deleted", "Lead Source")
    assert (source["old_type"], source["new_name"], source["new_type"], source["column_name"],
            source["column_effect"]) == ("text", None, None, "custom_lead_source",
                                         "column custom_lead_source stays, no longer filled")
    for object_type, table in (("lead", "leads"), ("contact", "contacts")):
        region = changes.one("deleted", "Region", object_type)
        assert (region["field_id"], region["table_name"]) == (ids["Region"], table)
    tier = changes.one("added", "Tier")
    assert (tier["new_type"], tier["new_choices"], tier["column_effect"]) == (
        "choices", ["Gold", "Silver"], "new column custom_tier")
    job_role = changes.one("renamed", JOB_ROLE, "contact")
    assert (job_role["old_name"], job_role["column_name"]) == ("Role", "custom_role")
    assert {row["seen_at"].astimezone(UTC) for row in changes.new} == {changes.clock}
    assert history.problems["changes"] == {}


def test_a_change_of_what_a_column_holds_warns_once_and_a_rename_not(history):
    warnings = history.stages["changes"].warnings
    assert sorted(warnings) == sorted([
        "custom field 'Account Owner' (lead) retyped user -> user[]; leads: values now in "
        "custom_account_owner_list; custom_account_owner stays, no longer filled",
        "custom field 'Employees' (lead) retyped number -> text; leads: values now in "
        "custom_employees_text; custom_employees stays, no longer filled",
        "custom field 'Notes (long)' (lead) retyped textarea -> text; leads: values stay in "
        "custom_notes_long (same column type)",
        "custom field 'Lead Source' (lead) deleted; leads: column custom_lead_source stays, "
        "no longer filled",
        "custom field 'Region' (lead) deleted; leads: column custom_region stays, no longer "
        "filled",
        "custom field 'Region' (contact) deleted; contacts: column custom_region stays, no "
        "longer filled",
        "custom field 'Products' (lead) choices changed (removed 'Dialer'); leads: column "
        "custom_products kept; its values are read again as Close has them now",
    ])
    assert not [line for line in warnings if "Vertical" in line or "Role" in line]


def test_the_columns_comments_follow_the_definitions(history):
    """The run that sees a definition change rewrites its column's comment: a rename (its
    quotes in the name kept), new choices, a retype (the old column says where the values
    went), a deletion, a new field; a column of a table not synced keeps its comment."""
    ids = history.ids
    first, changes = history.stages["first"].comments, history.stages["changes"].comments
    assert first["leads"]["custom_industry"] == (
        f'Close custom field "Industry" ({ids["Industry"]}), type choices: Apparel, Cars, '
        'Cosmetics, IT.')
    leads, contacts = changes["leads"], changes["contacts"]
    assert leads["custom_industry"] == (
        f'Close custom field "Vertical" ({ids["Industry"]}), type choices: Apparel, Cars, '
        'Cosmetics, IT, Biotech.')
    assert contacts["custom_role"] == (f'Close custom field "{JOB_ROLE}" ({ids["Role"]}), '
                                       'type choices: Account Executive, CEO, Sales Rep.')
    assert leads["custom_employees"] == (
        f'Close custom field "Employees" ({ids["Employees"]}), type text: this column holds '
        'its values from before its type changed; they continue in custom_employees_text, and '
        'this one is no longer filled.')
    assert leads["custom_employees_text"] == \
        f'Close custom field "Employees" ({ids["Employees"]}), type text.'
    assert leads["custom_account_owner_list"].endswith(
        "type user (several values, a JSON array of user ids, users.id).")
    assert leads["custom_lead_source"] == (
        f'Close custom field "Lead Source" ({ids["Lead Source"]}), deleted in Close: no longer '
        'filled. It was type text.')
    assert contacts["custom_region"].startswith(f'Close custom field "Region" ({ids["Region"]}), '
                                                "deleted in Close")
    assert leads["custom_tier"].endswith("type choices: Gold, Silver.")
    assert leads[TABLE] == first["leads"][TABLE] and leads[TABLE]
    # Trial Ends deleted, only leads synced: leads' comment follows
    subset = history.stages["subset"].comments
    assert "deleted in Close" in subset["leads"]["custom_trial_ends"]
    assert subset["contacts"] == changes["contacts"]
    quiet = history.stages["quiet"].comments  # the same (and `_deleted`, now merged into)
    assert {(table, column): quiet[table][column] for table, held in changes.items()
            for column in held} == {(table, column): comment for table, held in changes.items()
                                    for column, comment in held.items()}
    assert quiet["leads"]["_deleted"].startswith("dlt's delete marker")


def test_a_run_without_changes_adds_no_row_and_no_warning(history):
    for stage in ("quiet", "subset"):
        assert history.stages[stage].new == history.stages[stage].warnings == [], stage
    assert history.problems["quiet"] == history.problems["subset"] == {}


def test_a_change_seen_while_custom_fields_was_not_synced_is_recorded_by_its_next_sync(history):
    replayed = history.stages["replayed"]
    trial = replayed.one("deleted", "Trial Ends")
    assert trial["seen_at"].astimezone(UTC) == replayed.clock


def test_a_run_killed_after_extracting_records_its_changes_once(history):
    killed, replayed = history.stages["replayed (killed)"], history.stages["replayed"]
    assert sorted(row["change"] for row in replayed.new) == ["deleted", "retyped"]
    assert replayed.one("retyped", "ARR Estimate")["column_name"] == "custom_arr_estimate_text"
    assert len(killed.warnings) == 2 and replayed.warnings == []
    changes = rows(history.pipeline, "SELECT object_type, field_id, change, count(*) FROM "
                                     "close.custom_field_changes GROUP BY 1, 2, 3 "
                                     "HAVING count(*) > 1")
    assert changes == []
    assert history.problems["replayed"] == {}


@pytest.mark.parametrize("history", ["duckdb"], indirect=True)  # read alike from any
def test_status_lists_the_changes_of_the_last_run(history):
    status = history.stages["changes"].status
    listed = status.split("Custom field changes the last run found", 1)[1].split("\n\n")[0]
    lines = [line.strip() for line in listed.splitlines()[1:] if line.strip()]
    assert len(lines) == 11
    assert "custom field 'Industry' (lead) renamed to 'Vertical'; leads: column custom_industry " \
        "keeps its name" in lines
    assert "custom field 'Tier' (lead) added; leads: new column custom_tier" in lines
    for stage in ("quiet", "subset", "replayed"):  # the last run found none
        assert "Custom field changes" not in history.stages[stage].status, stage
    first = history.stages["first"].status
    assert "and 11 more: SELECT * FROM close.custom_field_changes" in first


# ---- restores ---------------------------------------------------------------------------------


def test_a_restore_records_first_sight_only_into_a_dataset_without_definitions(tmp_path):
    """A restore into an empty dataset records every field as added, at the backup's time;
    into one that holds definitions, nothing (it goes back in time); the next run records
    what changed since the backup, unless it is recorded already."""
    org = generate_org(seed=7, leads=2)
    industry = field_id(org, "lead", "Industry")
    backup = tmp_path / "backup"
    (tmp_path / "live").mkdir()
    backed_up_at = org.clock().replace(microsecond=0)  # when the backup's run began
    with FakeClose(org, tick=False) as fake:
        sync(fake, tmp_path / "live", resources=["custom_fields"], backup_dir=str(backup),
             sync_mode="full")
    pipeline = new_pipeline(tmp_path)

    def restore() -> None:
        pipeline.activate()
        run_sync(pipeline, close_source(restore_from=str(backup), tables=["custom_fields"]))

    restore()
    first = recorded(pipeline)
    assert {row["change"] for row in first.values()} == {"added"} and len(first) > 20
    assert {row["seen_at"].astimezone(UTC) for row in first.values()} == {backed_up_at}
    org.advance(timedelta(minutes=10))
    m.rename_field(org, industry, "Vertical")
    with FakeClose(org, tick=False) as fake:
        sync(fake, tmp_path, pipeline=pipeline, resources=["custom_fields"])
        with change_warnings() as warnings:
            restore()
        assert len(recorded(pipeline)) == len(first) + 1 and warnings == []
        sync(fake, tmp_path, pipeline=pipeline, resources=["custom_fields"])
    renames = [row for row in recorded(pipeline).values() if row["change"] == "renamed"]
    assert [(row["old_name"], row["new_name"]) for row in renames] == [("Industry", "Vertical")]


def test_a_full_refresh_keeps_the_changes_and_records_only_what_changed(tmp_path):
    """A reload cannot bring back the changes Close made: `--full-refresh` keeps them, and
    records what changed since the last run (compared with `custom_fields` as it was)."""
    org = generate_org(seed=7, leads=2)
    with FakeClose(org, tick=False) as fake:
        pipeline = sync(fake, tmp_path, resources=["custom_fields"])
        m.rename_field(org, field_id(org, "lead", "Industry"), "Vertical")
        sync(fake, tmp_path, pipeline=pipeline, resources=["custom_fields"])
        assert sorted({row["change"] for row in recorded(pipeline).values()}) == \
            ["added", "renamed"]
        before = recorded(pipeline)
        m.rename_field(org, field_id(org, "lead", "Vertical"), "Sector")
        sync(fake, tmp_path, pipeline=pipeline, resources=["custom_fields"], full_refresh=True)
    after = recorded(pipeline)
    assert set(before) < set(after)
    added = [after[key] for key in set(after) - set(before)]
    assert [(row["change"], row["old_name"], row["new_name"]) for row in added] == [
        ("renamed", "Vertical", "Sector")]
    # the table dropped and made again has its comments again
    described = comments_of(pipeline)["custom_fields"]
    assert described[TABLE].startswith("Custom field definitions") and all(described.values())
