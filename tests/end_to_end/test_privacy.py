"""Personal data on whole runs: `exclude_columns` keeps values out of every file a run leaves,
and `pii = "hash"` leaves no raw address or number in any table while joins still count the
same.

One small organisation, two runs (module-scoped): a full load through the export that also
writes a backup, then changes in Close (an excluded custom value, a contact's URLs, emails and
phones, a new email activity) and an incremental run whose Event Log window spills to disk
(`window_memory_rows = 1`), with versions of contacts and leads and `field_changes`: every read
path and every place a value could be kept."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import io
import json
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import dlt
import pyarrow.parquet as pq
import pytest

from close_fake import FakeClose, FakeOrg, generate_org
from close_fake import changes as c
from close_fake import org as o
from close_source.read.pii_hash import EMAIL
from close_source.user_errors import user_error_message
from tests.cli_runs import assert_one_line_user_error, close_sync
from tests.helpers import new_pipeline, rows, sync

KEY = "e2e-pii-key-3b9f0c21d7aa4e55a1"
NEW_URL = "https://private.example/kept-out-url-5501"
NEW_NOTE = "Kept out of every file: note 5501"
NEW_EMAIL, NEW_PHONE = "  New.Person@Hashed.Example ", "+1 415-555-0123"


def settings(org: FakeOrg) -> dict[str, Any]:
    birthday = next(f["id"] for f in org.all(o.CUSTOM_FIELD_CONTACT) if f["name"] == "Birthday")
    return {"exclude_columns": {"contacts": ["urls", f"custom.{birthday}"],
                                "leads": ["custom.Notes (long)", "addresses.address_1"]},
            "pii": "hash", "pii_key": KEY, "history": ["contacts", "leads"],
            "window_memory_rows": 1}


@dataclass
class Synced:
    org: FakeOrg
    fake: FakeClose
    pipeline: dlt.Pipeline
    workdir: Path
    log: str


@pytest.fixture(scope="module")
def synced(tmp_path_factory) -> Synced:
    workdir = tmp_path_factory.mktemp("privacy")
    org = generate_org(seed=28, leads=12)
    capture = io.StringIO()
    handler = logging.StreamHandler(capture)
    root, level = logging.getLogger(), logging.getLogger().level
    root.addHandler(handler)
    root.setLevel(logging.INFO)  # every line a run logs: the key is in none
    try:
        with FakeClose(org) as fake:
            pipeline = new_pipeline(workdir)
            sync(fake, workdir, pipeline=pipeline, backup_dir=str(workdir / "backup"),
                 sync_mode="full", **settings(org))  # as `close-sync backup` runs
            _change(org)
            sync(fake, workdir, pipeline=pipeline, **settings(org))
            yield Synced(org, fake, pipeline, workdir, capture.getvalue())
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _change(org: FakeOrg) -> None:
    org.advance(timedelta(minutes=10))
    notes = next(f["id"] for f in org.all(o.CUSTOM_FIELD_LEAD) if f["name"] == "Notes (long)")
    lead = org.all(o.LEAD)[0]
    c.update(org, o.LEAD, lead["id"], {f"custom.{notes}": NEW_NOTE})
    contact = next(x for x in org.all(o.CONTACT) if x["lead_id"] == lead["id"])
    c.update(org, o.CONTACT, contact["id"], {
        "name": "Renamed Contact", "urls": [{"url": NEW_URL, "type": "url"}],
        "emails": [{"email": NEW_EMAIL, "type": "office"}],
        "phones": [{"phone": NEW_PHONE, "type": "mobile"}]})
    c.create(org, o.ACTIVITY, {"_type": "Email", "lead_id": lead["id"],
                               "contact_id": contact["id"], "direction": "outgoing",
                               "status": "sent", "subject": "Hello",
                               "to": [NEW_EMAIL.strip().lower()], "sender": "me@fakeclose.example"})
    org.advance(timedelta(seconds=30))


def digest(text: str) -> str:
    return hmac.new(KEY.encode(), text.encode(), hashlib.sha256).hexdigest()


# ---- what is in the files and tables --------------------------------------------------------


def file_texts(root: Path) -> dict[Path, str]:
    """Every file under `root` as text: gzip inflated, Parquet as its rows; a DuckDB file
    compresses its strings, so tables are read through SQL (`table_texts`)."""
    found = {}
    for path in root.rglob("*"):
        if not path.is_file() or path.suffix == ".duckdb" or path.name.endswith(".wal"):
            continue
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        if data[:4] == b"PAR1":
            found[path] = json.dumps(pq.read_table(io.BytesIO(data)).to_pylist(), default=str,
                                     ensure_ascii=False)
        else:
            found[path] = data.decode("utf-8", "replace")
    return found


def table_texts(pipeline: dlt.Pipeline, dataset: str | None = None) -> dict[str, str]:
    """Every table of the dataset, every value as text."""
    dataset = dataset or pipeline.dataset_name
    tables = [row[0] for row in rows(pipeline, "SELECT table_name FROM information_schema.tables "
                                               f"WHERE table_schema = '{dataset}'")]
    return {table: str(rows(pipeline, f"SELECT * FROM {dataset}.{table}")) for table in tables}


def excluded_values(org: FakeOrg) -> list[str]:
    """Values of the excluded fields that Close holds nowhere else: the sample a leak would
    show (contacts' URLs and the lines of leads' long notes; a birthday is a date, which
    other values may hold, so it is not searched for: its column is checked instead)."""
    notes = next(f["id"] for f in org.all(o.CUSTOM_FIELD_LEAD) if f["name"] == "Notes (long)")
    excluded: list[str] = [NEW_URL, NEW_NOTE]
    rest = []
    for collection in o.COLLECTIONS:
        for obj in org.all(collection):
            obj = dict(obj)
            if collection == o.CONTACT:
                excluded += [url["url"] for url in obj.pop("urls", None) or []]
            elif collection == o.LEAD:
                excluded += str(obj.pop(f"custom.{notes}", "")).splitlines()
            rest.append(obj)
    elsewhere = json.dumps(rest, default=str, ensure_ascii=False)
    return [value for value in dict.fromkeys(excluded) if isinstance(value, str)
            and len(value) >= 10 and value not in elsewhere]


NUMBER = re.compile(r"\+\d[\d ().-]{8,}\d")


def raw_numbers(org: FakeOrg) -> set[str]:
    """Every phone number the organisation holds, as Close gives it (E.164, formatted),
    wherever it is: found by its shape, not by the keys the hashing knows."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and NUMBER.fullmatch(value):
            found.add(value)

    for collection in o.COLLECTIONS:
        walk(org.all(collection))
    return found


# ---- exclude_columns ----------------------------------------------------------------------


def backup_export(synced: Synced) -> Path:
    manifest = json.loads((synced.workdir / "backup" / "manifest.json").read_text())
    return synced.workdir / "backup" / manifest["export"]["file"]


def test_no_file_the_runs_left_holds_an_excluded_value(synced):
    sample = excluded_values(synced.org)
    assert len(sample) >= 15 and NEW_URL in sample and NEW_NOTE in sample
    files = file_texts(synced.workdir)
    # the backup keeps Close's export file as Close made it, and says so; only that file
    export = files.pop(backup_export(synced))
    assert "the backup keeps Close's export file as Close made it" in synced.log
    assert any(value in export for value in sample)
    assert len([path for path in files if "/backup/" in str(path)]) > 10
    tables = table_texts(synced.pipeline)
    packages = {path: text for path, text in files.items() if "/load/" in str(path)}
    assert packages, "the load packages are kept: the test reads them"
    # the reading works: a value that is not excluded is found in both
    lead_name = synced.org.all(o.LEAD)[1]["display_name"]
    assert any(lead_name in text for text in packages.values())
    assert lead_name in tables["leads"]
    state = json.dumps(synced.pipeline.state, default=str)
    for value in sample:
        assert value not in state, value
        assert not [table for table, text in tables.items() if value in text], value
        assert not [path for path, text in files.items() if value in text], value
    # Close's own export file held them while the first load ran: deleted once it committed
    assert not list(synced.workdir.rglob("close-export/*.gz"))


def test_excluded_fields_have_no_column_and_no_table(synced):
    pipeline = synced.pipeline
    tables = {r[0] for r in rows(pipeline, "SELECT table_name FROM information_schema.tables "
                                           f"WHERE table_schema = '{pipeline.dataset_name}'")}
    assert "contacts__urls" not in tables and {"contacts__emails", "contacts__phones"} <= tables

    def columns(table: str) -> set[str]:
        return {r[0] for r in rows(pipeline, "SELECT column_name FROM information_schema.columns"
                                             f" WHERE table_name = '{table}' AND table_schema ="
                                             f" '{pipeline.dataset_name}'")}

    assert "custom_industry" in columns("leads") and "custom_notes_long" not in columns("leads")
    assert "custom_notes_long" not in columns("leads_history")
    assert "custom_role" in columns("contacts") and "custom_birthday" not in columns("contacts")
    assert "custom_birthday" not in columns("contacts_history")
    assert "city" in columns("leads__addresses") and "address_1" not in columns("leads__addresses")
    assert not rows(pipeline, "SELECT name FROM custom_fields WHERE name IN "
                              "('Notes (long)', 'Birthday')")
    changed = {r[0] for r in rows(pipeline, "SELECT DISTINCT field FROM field_changes")}
    assert "name" in changed and not changed & {"urls", "custom_notes_long", "custom_birthday"}
    ids = [f["id"] for f in [*synced.org.all(o.CUSTOM_FIELD_LEAD),
                             *synced.org.all(o.CUSTOM_FIELD_CONTACT)]
           if f["name"] in ("Notes (long)", "Birthday")]
    assert len(ids) == 2 and not [name for name in changed if any(i in name for i in ids)]


def test_a_dataset_refuses_other_settings_before_reading(synced):
    more = settings(synced.org)
    more["exclude_columns"] = {**more["exclude_columns"], "calls": ["note"]}
    other_key = {**settings(synced.org), "pii_key": KEY + "-rotated"}
    for changed, says in [(more, "now excludes calls.note, which this dataset was loaded with"),
                          (other_key, "pii_key changed since this dataset was loaded")]:
        with pytest.raises(Exception) as refused:
            sync(synced.fake, synced.workdir, pipeline=synced.pipeline, **changed)
        line = user_error_message(refused.value)
        assert line is not None and says in line and "--dataset" in line, line
        assert KEY not in line


def test_a_hashed_backup_is_restored_only_with_its_key(synced, tmp_path):
    other = {**settings(synced.org), "pii_key": KEY + "-rotated"}
    del other["window_memory_rows"]
    with pytest.raises(Exception) as refused:
        sync(synced.fake, tmp_path, restore_from=str(synced.workdir / "backup"),
             sync_mode="full", **other)
    line = user_error_message(refused.value)
    assert line is not None and "this backup's files were hashed with another pii_key" in line


# ---- pii = "hash" ---------------------------------------------------------------------------


def test_no_table_holds_a_raw_address_or_number(synced):
    tables = table_texts(synced.pipeline)
    found = {table: EMAIL.findall(text)[:3] for table, text in tables.items()
             if not table.startswith("_dlt") and EMAIL.search(text)}
    assert not found
    numbers = raw_numbers(synced.org)
    assert len(numbers) > 50 and NEW_PHONE in numbers
    assert not {table: [n for n in numbers if n in text][:3] for table, text in tables.items()
                if not table.startswith("_dlt") and any(n in text for n in numbers)}
    backup = file_texts(synced.workdir / "backup")
    del backup[backup_export(synced)]  # Close's own bytes
    assert not {path.name: EMAIL.findall(text)[:3] for path, text in backup.items()
                if EMAIL.search(text)}
    # HMAC-SHA256 with the key, of the address trimmed and lower-cased, of the number's digits
    assert digest("new.person@hashed.example") in tables["contacts__emails"]
    assert digest("14155550123") in tables["contacts__phones"]


def test_joins_on_hashes_count_as_on_raw_values(synced):
    org = synced.org
    addresses = [(x["id"], e["email"].strip().lower()) for x in org.all(o.CONTACT)
                 for e in x.get("emails") or []]
    sent_to = [[a.strip().lower() for a in m.get("to") or []] for m in org.activities("Email")]
    raw = sum(1 for _, address in addresses for to in sent_to if address in to)
    hashed = rows(synced.pipeline, """
        SELECT count(*) FROM contacts__emails AS ce JOIN emails AS e
          ON list_contains(from_json(e."to"::JSON, '["VARCHAR"]'), ce.email)""")[0][0]
    assert raw > 5 and hashed == raw
    phones = [p["phone"] for x in org.all(o.CONTACT) for p in x.get("phones") or []]
    called = [m.get("remote_phone") for m in org.activities("Call")]
    raw_calls = sum(1 for p in phones for r in called if r and re.sub(r"\D", "", p) ==
                    re.sub(r"\D", "", r))
    hashed_calls = rows(synced.pipeline, "SELECT count(*) FROM contacts__phones AS cp "
                                         "JOIN calls AS c ON c.remote_phone = cp.phone")[0][0]
    assert raw_calls > 0 and hashed_calls == raw_calls


def test_the_key_appears_nowhere(synced):
    assert KEY not in synced.log
    for path, text in file_texts(synced.workdir).items():
        assert KEY not in text, path
    for path in synced.workdir.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in str(table_texts(synced.pipeline))
    assert KEY not in json.dumps(synced.pipeline.state, default=str)


# ---- as the user writes them ------------------------------------------------------------------


@pytest.mark.parametrize(("config", "secrets", "env", "says"), [
    ("", "", {"SOURCES__CLOSE__EXCLUDE_COLUMNS": '{"deals": ["name"]}'},
     "[sources.close] exclude_columns (SOURCES__CLOSE__EXCLUDE_COLUMNS) names deals: not a "
     "table of Close objects"),
    ('exclude_columns = {contacts = ["emails"], leads = ["custom.Personal notes"]}\n'
     'pii = "hash"\n', 'pii_key = "too-short-key"\n', {},
     "[sources.close] pii_key (SOURCES__CLOSE__PII_KEY) must be at least 16 characters"),
], ids=["env-unknown-table", "toml-short-key"])
def test_settings_are_checked_before_anything_is_read(synced, tmp_path, config, secrets, env,
                                                      says):
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text(f"[sources.close]\n{config}")
    (tmp_path / ".dlt" / "secrets.toml").write_text(f"[sources.close]\n{secrets}")
    requests = len(synced.fake.requests)
    result = close_sync(["run"], tmp_path, SOURCES__CLOSE__API_KEY="k",
                        SOURCES__CLOSE__BASE_URL=synced.fake.base_url, **env)
    assert_one_line_user_error(result, says)
    assert "too-short-key" not in result.stdout + result.stderr
    assert len(synced.fake.requests) == requests
