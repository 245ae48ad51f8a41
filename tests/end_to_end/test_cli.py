"""`close-sync` as a user runs it: a real process, its exit code, its stdout and stderr."""

from __future__ import annotations

import base64
import random
import socket
import time
from datetime import timedelta

import duckdb
import pytest

from close_fake import FakeClose, Faults, generate_org, random_changes
from close_source.catalog import CATALOG
from tests.cli_runs import assert_one_line_user_error, close_sync, pipeline_of
from tests.invariant import duplicate_keys, every_table_mismatches

SECRET = "api_S3cr3t_do_not_leak_4f1d2c3b"


@pytest.fixture(scope="module")
def fake():
    faults = Faults(seed=4, p_429=0.05, p_503=0.03, rate_reset=0.01)
    faults.fail_next("/user/", ["429", "503"])  # whatever the draws: retries get logged
    with FakeClose(generate_org(seed=31, leads=15), api_key=SECRET, faults=faults,
                   forbidden={"/webhook/"}) as server:
        yield server


def _env(fake: FakeClose, key: str = SECRET) -> dict[str, str]:
    return {"SOURCES__CLOSE__API_KEY": key, "SOURCES__CLOSE__BASE_URL": fake.base_url,
            "SOURCES__CLOSE__EXPORT_POLL_INTERVAL": "0.02"}


def test_bad_key_exits_2_with_the_setting_to_fix(fake, tmp_path):
    result = close_sync(["run"], tmp_path, **_env(fake, key="not-the-key"))
    assert_one_line_user_error(result, "SOURCES__CLOSE__API_KEY", "401")


def test_missing_key_exits_2(tmp_path):
    result = close_sync(["run"], tmp_path)
    assert_one_line_user_error(result, "SOURCES__CLOSE__API_KEY")


def test_a_closed_port_fails_fast_and_says_why(tmp_path):
    """Not 8 attempts over a minute then "ConnectError": a refused connection before Close
    ever answered is a wrong base_url or an outage."""
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    result = close_sync(["run"], tmp_path, SOURCES__CLOSE__API_KEY=SECRET,
                        SOURCES__CLOSE__BASE_URL=f"http://127.0.0.1:{port}/api/v1/")
    assert time.monotonic() - started < 15
    line = assert_one_line_user_error(
        result, f"cannot connect to 127.0.0.1:{port}: connection refused",
        "SOURCES__CLOSE__BASE_URL")
    assert SECRET not in result.stdout + result.stderr, line


@pytest.mark.parametrize(("url", "says"), [
    ("https://close-dlt-test.invalid/api/v1/",
     "cannot connect to close-dlt-test.invalid:443: unknown host (name resolution failed)"),
    ("https://127.0.0.1:{port}/api/v1/",  # TLS to the plain-HTTP fake
     "cannot connect to 127.0.0.1:{port}: TLS failed: wrong version number"),
])
def test_an_unknown_host_or_a_tls_failure_says_which(fake, tmp_path, url, says):
    result = close_sync(["run"], tmp_path, SOURCES__CLOSE__API_KEY=SECRET,
                        SOURCES__CLOSE__BASE_URL=url.format(port=fake.port))
    assert_one_line_user_error(result, says.format(port=fake.port))
    assert SECRET not in result.stdout + result.stderr


def test_plain_http_to_a_remote_host_exits_2(tmp_path):
    result = close_sync(["run"], tmp_path, SOURCES__CLOSE__API_KEY="k",
                        SOURCES__CLOSE__BASE_URL="http://api.close.com/api/v1/")
    assert_one_line_user_error(result, "SOURCES__CLOSE__BASE_URL")


def test_unknown_resource_exits_2(fake, tmp_path):
    result = close_sync(["run", "--resources", "leads,deals"], tmp_path, **_env(fake))
    assert_one_line_user_error(result, "deals", "known:")


def test_run_then_status_and_the_key_appears_nowhere(fake, tmp_path):
    result = close_sync(["-v", "run"], tmp_path, **_env(fake))
    assert result.returncode == 0, result.stderr
    status = close_sync(["status"], tmp_path, **_env(fake))
    assert status.returncode == 0, status.stderr

    # every table landed except the forbidden one, which is named in a warning
    database = tmp_path / "close_crm.duckdb"
    with duckdb.connect(str(database), read_only=True) as db:
        tables = {row[0] for row in db.sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'close'"
        ).fetchall()}
        assert db.sql("SELECT count(*) FROM close.leads").fetchall() == [(15,)]
        text_values = db.sql(
            "SELECT string_agg(CAST(COLUMNS(*) AS VARCHAR), '|') FROM close.leads"
        ).fetchall()
    assert {e.table for e in CATALOG} - {"webhook_subscriptions"} <= tables
    assert "skipping webhook_subscriptions" in result.stderr
    assert "Last run from this working directory:" in status.stdout and "leads" in status.stdout
    assert "Event Log applied up to" in status.stdout
    marks = dict(line.split() for line in status.stdout.split("applied up to", 1)[1]
                 .split("\n\n")[0].splitlines()[1:] if line.strip())
    assert {"leads", "calls", "created_activities"} <= set(marks)  # each table's own

    # an incremental run: events, objects fetched by id (a non-admin-like refetch of a merge)
    org = fake.org
    org.advance(timedelta(minutes=10))
    random_changes(org, random.Random(5), 20, step=timedelta(seconds=3))
    org.advance(timedelta(seconds=30))
    again = close_sync(["-v", "run"], tmp_path, **_env(fake))
    assert again.returncode == 0, again.stderr
    assert "Event Log:" in again.stderr

    # verify, by id, healing: every table equals Close; a table the key may not read is said
    checked = close_sync(["-v", "verify", "--level", "ids", "--heal"], tmp_path, **_env(fake))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Every table compared equals Close" in checked.stdout
    forbidden = close_sync(["verify", "--tables", "webhook_subscriptions"], tmp_path, **_env(fake))
    assert forbidden.returncode == 0, forbidden.stdout + forbidden.stderr
    assert "not readable (403 from Close: the sync skips it too)" in forbidden.stdout

    # the key, in clear or as the Basic auth header carries it, is in no output, file or table
    encoded = base64.b64encode(f"{SECRET}:".encode()).decode()
    assert fake.faults.injected["429"] > 0  # retries were logged, too
    for text in (result.stdout, result.stderr, status.stdout, status.stderr, again.stdout,
                 again.stderr, checked.stdout, checked.stderr, str(text_values)):
        assert SECRET not in text and encoded not in text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert SECRET.encode() not in content, path
            assert encoded.encode() not in content, path


def test_status_before_any_run(tmp_path):
    result = close_sync(["status"], tmp_path)
    assert result.returncode == 0
    assert "No sync has run yet" in result.stdout


def test_demo_shows_every_object_type(tmp_path):
    result = close_sync(["demo", "--leads", "12"], tmp_path)
    assert result.returncode == 0, result.stderr
    counts = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    for entry in CATALOG:
        assert counts.get(entry.table, 0) > 0, entry.table
    assert "Example query" in result.stdout and "SELECT" in result.stdout
    assert "close-sync verify --level ids" in result.stdout
    assert "  Every table compared equals Close." in result.stdout
    assert (tmp_path / "close_crm_demo.duckdb").exists()


def test_a_failing_run_keeps_what_earlier_runs_loaded(tmp_path):
    org = generate_org(seed=32, leads=10)
    with FakeClose(org, api_key=SECRET) as fake:
        first = close_sync(["run", "--resources", "leads,calls"], tmp_path, **_env(fake))
        assert first.returncode == 0, first.stderr
    failing = Faults(p_503=1.0, paths=["/activity/call/"])
    with FakeClose(org, api_key=SECRET, faults=failing) as fake:
        second = close_sync(["run", "--resources", "leads,calls", "--full-load", "lists",
                             "--full-refresh"], tmp_path, SOURCES__CLOSE__MAX_ATTEMPTS="2",
                            **_env(fake))
    assert_one_line_user_error(second, "activity/call/", "503")
    with duckdb.connect(str(tmp_path / "close_crm.duckdb"), read_only=True) as db:
        assert db.sql("SELECT count(*) FROM close.leads").fetchall() == [(10,)]
        calls = db.sql("SELECT count(*) FROM close.calls").fetchall()[0][0]
    assert calls == len([a for a in org.all("activity") if a["_type"] == "Call"]) > 0


# ---- destinations by configuration -----------------------------------------------------------


def test_postgres_by_configuration_alone(fake, tmp_path, postgres_server):
    import psycopg2

    dsn = postgres_server.new_database()
    result = close_sync(["run", "--destination", "postgres"], tmp_path, **_env(fake),
                        DESTINATION__POSTGRES__CREDENTIALS=dsn)
    assert result.returncode == 0, result.stderr
    assert "(postgres dataset close)" in result.stderr.splitlines()[-1]  # the summary line
    connection = psycopg2.connect(dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM close.leads")
            assert cursor.fetchone() == (len(fake.org.all("lead")),)
            cursor.execute("SELECT data_type FROM information_schema.columns WHERE "
                           "table_schema = 'close' AND table_name = 'leads' AND "
                           "column_name = 'custom_products'")
            assert cursor.fetchone() == ("jsonb",)
    finally:
        connection.close()
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize("destination", ["postgres", "bigquery"])
def test_missing_destination_credentials_name_the_setting(fake, tmp_path, destination):
    result = close_sync(["run", "--destination", destination], tmp_path, **_env(fake))
    assert_one_line_user_error(result, f"DESTINATION__{destination.upper()}__CREDENTIALS")


def test_wrong_destination_password_exits_2_without_echoing_it(fake, tmp_path, postgres_server):
    wrong = postgres_server.dsn("postgres").replace(postgres_server.password, "Wr0ngPassw0rd")
    result = close_sync(["run", "--destination", "postgres"], tmp_path, **_env(fake),
                        DESTINATION__POSTGRES__CREDENTIALS=wrong)
    assert_one_line_user_error(result, "password authentication failed",
                               "DESTINATION__POSTGRES__CREDENTIALS")
    assert "Wr0ngPassw0rd" not in result.stdout + result.stderr


def test_unknown_destination_exits_2(fake, tmp_path):
    result = close_sync(["run", "--destination", "nosuchdb"], tmp_path, **_env(fake))
    assert_one_line_user_error(result, "unknown destination 'nosuchdb'")


def test_a_full_refresh_after_a_first_load_reloads_every_table(tmp_path):
    """dlt's refresh drops the tables in the staging dataset too, and failed there on DuckDB
    (its `_dlt_version` was missing); every run after it failed as well."""
    org = generate_org(seed=34, leads=8)
    with FakeClose(org, api_key=SECRET) as fake:
        for args in (["run"], ["run", "--full-refresh"], ["run", "--full-refresh"], ["run"]):
            result = close_sync(args, tmp_path, **_env(fake))
            assert result.returncode == 0, (args, result.stderr[-2000:])
    pipeline = pipeline_of(tmp_path, None)
    assert not every_table_mismatches(org, pipeline)
    assert not duplicate_keys(pipeline)
