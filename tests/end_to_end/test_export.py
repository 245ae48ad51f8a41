"""Full loads through the Export API: same rows as the list endpoints, every file layout and
custom-value style, resumed downloads, fallback, T0 (backups: test_backup_restore.py)."""

from __future__ import annotations

from typing import Any

import dlt
import pytest

from close_fake import ExportSettings, FakeClose, FakeOrg, generate_org
from close_source.catalog import BY_TABLE, CATALOG
from close_source.read.export import exported_tables
from close_source.timestamps import to_utc
from tests.helpers import rows, sync
from tests.oracle import expected_objects

EXPORTED = sorted(exported_tables())
CHILD_TABLES = [f"{e.table}__{name}" for e in CATALOG if e.table in EXPORTED
                for name in e.child_lists]


@pytest.fixture(scope="module")
def org() -> FakeOrg:
    return generate_org(seed=41, leads=25)


@pytest.fixture(scope="module")
def by_lists(org: FakeOrg, tmp_path_factory: pytest.TempPathFactory) -> dlt.Pipeline:
    with FakeClose(org) as fake:
        return sync(fake, tmp_path_factory.mktemp("lists"), resources=EXPORTED,
                    full_load="lists")


def table_rows(pipeline: dlt.Pipeline, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    with pipeline.sql_client() as client, client.execute_query(
        f"SELECT * FROM close.{table}"
    ) as cursor:
        names = [column[0] for column in cursor.description]
        data = cursor.fetchall()
    keep = [i for i, name in enumerate(names) if not name.startswith("_dlt")]
    order = sorted(keep, key=lambda i: names[i])
    return [names[i] for i in order], sorted((tuple(row[i] for i in order) for row in data),
                                             key=repr)


def assert_same_tables(left: dlt.Pipeline, right: dlt.Pipeline) -> None:
    for table in [*EXPORTED, *CHILD_TABLES]:
        left_columns, left_rows = table_rows(left, table)
        right_columns, right_rows = table_rows(right, table)
        assert left_columns == right_columns, table
        assert left_rows == right_rows, table


def test_a_full_load_uses_the_export_and_lands_the_same_rows_as_the_lists(
        org, by_lists, tmp_path):
    with FakeClose(org) as fake:
        by_export = sync(fake, tmp_path, resources=EXPORTED)
    paths = [r.endpoint for r in fake.requests]
    assert "/export/lead/" in paths
    assert not {"/lead/", "/contact/", "/activity/call/"} & set(paths), "lists were read too"
    assert fake.export_key_leaks == 0, "the API key was sent to the download host"
    assert_same_tables(by_export, by_lists)
    for table in EXPORTED:
        assert rows(by_export, f"SELECT count(*) FROM close.{table}") == [
            (len(expected_objects(org, table)),)], table


@pytest.mark.parametrize("layout", ["array", "jsonl"])
@pytest.mark.parametrize("custom_style", ["keys", "dict", "both"])
def test_every_layout_and_custom_value_style_gives_the_same_rows(
        org, by_lists, tmp_path, layout, custom_style):
    settings = ExportSettings(layout=layout, custom_style=custom_style,
                              contact_lead_id=custom_style == "keys")
    with FakeClose(org, export=settings) as fake:
        by_export = sync(fake, tmp_path, resources=EXPORTED)
    assert "/export/lead/" in [r.endpoint for r in fake.requests]
    assert_same_tables(by_export, by_lists)


def test_a_broken_download_is_resumed_not_restarted(org, by_lists, tmp_path):
    settings = ExportSettings(fail="broken_download", download_failures=2)
    with FakeClose(org, export=settings) as fake:
        by_export = sync(fake, tmp_path, resources=EXPORTED)
    downloads = [r for r in fake.requests if r.path.startswith("/export-files/")]
    assert len(downloads) == 3
    assert [bool(r.params.get("range") or r.fault) for r in downloads]  # resumed attempts
    assert "/lead/" not in [r.endpoint for r in fake.requests], "fell back instead of resuming"
    assert_same_tables(by_export, by_lists)


@pytest.mark.parametrize("fail", ["error", "stuck", "expired_url", "broken_download"])
def test_a_failed_export_falls_back_to_the_list_endpoints(org, by_lists, tmp_path, fail, caplog):
    with FakeClose(org, export=ExportSettings(fail=fail)) as fake:
        pipeline = sync(fake, tmp_path, resources=EXPORTED, export_timeout=0.3, max_attempts=2)
    assert "/lead/" in [r.endpoint for r in fake.requests]
    assert "loading" in caplog.text and "from list endpoints instead" in caplog.text
    assert_same_tables(pipeline, by_lists)
    assert pipeline.state["sources"]["close"]["full_load"]["method"] == "lists"


def test_without_fallback_a_failed_export_loads_nothing(org, tmp_path):
    with FakeClose(org, export=ExportSettings(fail="error")) as fake, \
            pytest.raises(Exception, match="ended with status 'error'"):
        sync(fake, tmp_path, resources=EXPORTED, export_fallback=False)
    database = tmp_path / "test_close.duckdb"
    if database.exists():
        import duckdb

        with duckdb.connect(str(database), read_only=True) as db:
            assert db.sql("SELECT table_name FROM information_schema.tables "
                          "WHERE table_schema = 'close'").fetchall() == []


def test_t0_is_the_export_creation_time_on_closes_clock(org, tmp_path):
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path, resources=["leads"])
        state = pipeline.state["sources"]["close"]["full_load"]
        job = fake.exports.job(state["export_id"])
    assert state["method"] == "export"
    assert job is not None
    assert to_utc(state["t0"]) == to_utc(job.public["date_created"])
    mark = pipeline.state["sources"]["close"]["tables"]["leads"]["watermark"]
    assert to_utc(mark["newest_event"]) == to_utc(job.public["date_created"])  # leads' own


def test_the_export_brings_what_lists_would_not_need_to(org, tmp_path):
    """Tables the export does not carry come from their list endpoints in the same run."""
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path, resources=["leads", "tasks", "email_threads"])
    endpoints = {r.endpoint for r in fake.requests}
    assert {"/export/lead/", "/task/", "/activity/emailthread/"} <= endpoints
    for table in ("tasks", "email_threads"):
        assert rows(pipeline, f"SELECT count(*) FROM close.{table}") == [
            (len(expected_objects(org, table)),)]
    assert BY_TABLE["tasks"].export_path is None


def test_a_second_full_load_is_an_exact_snapshot(tmp_path):
    """Replaced tables: deleted objects and emptied child lists disappear; a table the key
    can no longer read keeps what it had."""
    org = generate_org(seed=42, leads=6)
    with FakeClose(org) as fake:
        pipeline = sync(fake, tmp_path, resources=["leads", "contacts", "webhook_subscriptions"])
    gone = org.all("lead")[0]["id"]
    contact = next(c for c in org.all("contact") if c.get("emails") and c["lead_id"] != gone)
    org.remove("lead", gone)
    for child in [c for c in org.all("contact") if c["lead_id"] == gone]:
        org.remove("contact", child["id"])
    org.put("contact", {**contact, "emails": []})
    with FakeClose(org, forbidden={"/webhook/"}) as fake:
        sync(fake, tmp_path, resources=["leads", "contacts", "webhook_subscriptions"],
             pipeline=pipeline, sync_mode="full")
    assert set(r[0] for r in rows(pipeline, "SELECT id FROM close.leads")) == set(
        expected_objects(org, "leads"))
    assert rows(pipeline, "SELECT count(*) FROM close.contacts__emails "
                          f"WHERE contact_id = '{contact['id']}'") == [(0,)]
    assert rows(pipeline, "SELECT count(*) FROM close.webhook_subscriptions")[0][0] == len(
        expected_objects(org, "webhook_subscriptions")) > 0
