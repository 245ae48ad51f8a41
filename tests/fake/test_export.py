"""Tests of the fake Close API's Export API (`close_fake.exports`) over real loopback
HTTP: the job lifecycle, the file (layouts, custom styles, nested objects), the download host
(gzip, Range, failures, key leaks) and snapshot isolation."""

from __future__ import annotations

import gzip
import json
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from close_fake import ExportSettings, FakeClose, FakeOrg, generate_org, write_export_file
from close_fake import org as o

LEADS = 24
EXPORT = {"format": "json", "type": "leads", "include_activities": True, "send_done_email": False}


@pytest.fixture(scope="module")
def org() -> FakeOrg:
    return generate_org(seed=7, leads=LEADS)


@contextmanager
def serve(org: FakeOrg, **settings: Any) -> Iterator[tuple[FakeClose, httpx.Client]]:
    with (
        FakeClose(org, export=ExportSettings(**settings)) as fake,
        httpx.Client(base_url=fake.base_url, auth=(fake.api_key, ""), timeout=10) as client,
    ):
        yield fake, client


def create(client: httpx.Client, **body: Any) -> dict:
    r = client.post("export/lead/", json={**EXPORT, **body})
    assert r.status_code == 200, r.text
    return r.json()


def wait_built(fake: FakeClose, export_id: str) -> None:
    """Let the writer thread finish, so progress numbers depend on polls only."""
    job = fake.exports.job(export_id)
    assert job is not None
    deadline = time.monotonic() + 10
    while not job.built:
        assert time.monotonic() < deadline, "export writer did not finish"
        time.sleep(0.005)


def finish(fake: FakeClose, client: httpx.Client, export_id: str, polls: int = 20) -> dict:
    wait_built(fake, export_id)
    for _ in range(polls):
        body = client.get(f"export/{export_id}/").json()
        if body["status"] in ("done", "error"):
            return body
    return body


def raw_download(url: str, **headers: str) -> httpx.Response:
    """The download with its body as sent (gzip bytes), not decoded."""
    with httpx.stream("GET", url, headers=headers, timeout=10) as r:
        r.raw_bytes = b"".join(r.iter_raw())  # type: ignore[attr-defined]
    return r


def export_file(org: FakeOrg, **settings: Any) -> tuple[list[dict], bytes, FakeClose]:
    """Run one export to the end; the parsed documents and the raw gzip bytes."""
    with serve(org, **settings) as (fake, client):
        done = finish(fake, client, create(client)["id"])
        raw = raw_download(done["download_url"]).raw_bytes  # type: ignore[attr-defined]
    return parse(gzip.decompress(raw), settings.get("layout", "array")), raw, fake


def parse(text: bytes, layout: str) -> list[dict]:
    if layout == "array":
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines()]


# -- the job ------------------------------------------------------------------------------------


def test_lifecycle_created_started_in_progress_done(org: FakeOrg) -> None:
    with serve(org, polls_to_finish=5) as (fake, client):
        r = client.post("export/lead/", json=EXPORT)
        assert r.status_code == 200
        created = r.json()
        assert created["id"].startswith("expo_")
        assert (created["status"], created["download_url"]) == ("created", None)
        assert (created["n_docs"], created["n_docs_processed"]) == (None, 0)
        assert (created["format"], created["type"]) == ("json", "leads")
        assert created["date_created"].endswith("+00:00")
        assert created["date_updated"].endswith("+00:00")
        assert created["created_by"] == created["updated_by"] == org.admin_user_id
        assert created["organization_id"] == org.organization_id
        assert created["send_done_email"] is False
        wait_built(fake, created["id"])

        seen = [client.get(f"export/{created['id']}/").json() for _ in range(6)]
        assert [s["status"] for s in seen] == [
            "started", "in_progress", "in_progress", "in_progress", "done", "done",
        ]  # fmt: skip
        assert seen[0]["n_docs"] is None and seen[0]["n_docs_processed"] == 0
        progress = [s["n_docs_processed"] for s in seen[1:4]]
        assert progress == sorted(progress) and len(set(progress)) == 3
        assert all(0 < p < LEADS for p in progress)
        assert all(s["n_docs"] == LEADS for s in seen[1:])
        assert all(s["download_url"] is None for s in seen[:4])
        assert seen[4]["n_docs_processed"] == LEADS
        assert urlsplit(seen[4]["download_url"]).path.endswith(".json.gz")
        assert seen[4]["date_updated"] >= seen[0]["date_updated"] >= created["date_created"]


def test_send_done_email_defaults_to_true_and_flags_are_echoed(org: FakeOrg) -> None:
    with serve(org) as (_fake, client):
        body = client.post("export/lead/", json={"format": "json", "type": "leads"}).json()
        assert body["send_done_email"] is True
        assert "include_activities" not in body
        assert body["fields"][:3] == ["id", "display_name", "name"]  # the docs' default list
        flagged = create(client, include_smart_fields=True)
        assert flagged["include_activities"] is True and flagged["include_smart_fields"] is True


def test_both_request_shapes(org: FakeOrg) -> None:
    with serve(org) as (fake, client):
        older = create(client, query="*")
        assert older["query"] == "*" and "s_query" not in older
        sort = [{
            "direction": "asc",
            "field": {"type": "regular_field", "object_type": "lead", "field_name": "name"},
        }]  # fmt: skip
        newer = create(client, s_query={"type": "match_all"}, sort=sort, results_limit=5)
        assert (newer["s_query"], newer["sort"], newer["results_limit"]) == (
            {"type": "match_all"}, sort, 5,
        )  # fmt: skip
        assert "query" not in newer
        done = finish(fake, client, newer["id"])
        assert done["n_docs"] == 5
        leads = json.loads(httpx.get(done["download_url"]).content)
        names = [lead["name"] for lead in leads]
        assert names == sorted(names, key=str.casefold) and len(names) == 5

        name = org.all(o.LEAD)[0]["name"]
        query = {"type": "and", "queries": [
            {"type": "object_type", "object_type": "lead"},
            {"type": "field_condition",
             "field": {"type": "regular_field", "object_type": "lead", "field_name": "name"},
             "condition": {"type": "text", "mode": "exact_value", "value": name}},
        ]}  # fmt: skip
        done = finish(fake, client, create(client, s_query=query)["id"])
        leads = json.loads(httpx.get(done["download_url"]).content)
        assert {lead["name"] for lead in leads} == {name}
        assert done["n_docs"] == sum(1 for lead in org.all(o.LEAD) if lead["name"] == name)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"format": "csv"}, "not supported"),
        ({"format": None}, "format"),
        ({"type": "opps"}, "type"),
        ({"type": "contacts"}, "include_activities"),
        ({"query": "*", "s_query": {"type": "match_all"}}, "either"),
        ({"query": "status:won"}, "query"),
        ({"send_done_email": "no"}, "send_done_email"),
        ({"s_query": {"type": "nonsense"}}, "nonsense"),
    ],
)
def test_bad_requests_answer_400(org: FakeOrg, body: dict, message: str) -> None:
    with serve(org) as (_fake, client):
        r = client.post("export/lead/", json={**EXPORT, **body})
        assert r.status_code == 400
        assert message in r.json()["error"]
        assert client.get("export/").json() == {"has_more": False, "data": []}


def test_list_is_newest_first_and_not_a_poll(org: FakeOrg) -> None:
    with serve(org, polls_to_finish=2) as (fake, client):
        first, second = create(client), create(client)
        for export in (first, second):  # built on threads of their own: the first may be last
            wait_built(fake, export["id"])
        listed = client.get("export/").json()
        assert listed["has_more"] is False
        assert [e["id"] for e in listed["data"]] == [second["id"], first["id"]]
        assert [e["status"] for e in listed["data"]] == ["created", "created"]
        page = client.get("export/", params={"_limit": 1}).json()
        assert page["has_more"] is True and len(page["data"]) == 1
        assert client.get("export/expo_unknown/").status_code == 404
        assert client.get(f"export/{first['id']}/").json()["status"] == "in_progress"
        assert client.get(f"export/{first['id']}/").json()["status"] == "done"


def test_progress_driven_by_elapsed_time(org: FakeOrg) -> None:
    with serve(org, polls_to_finish=0, seconds_to_finish=0.9) as (fake, client):
        export_id = create(client)["id"]
        wait_built(fake, export_id)
        statuses = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            statuses.append(client.get("export/").json()["data"][0]["status"])
            if statuses[-1] == "done":
                break
            time.sleep(0.02)
        assert statuses[-1] == "done"
        assert {"started", "in_progress"} <= set(statuses)


def test_error_and_stuck(org: FakeOrg) -> None:
    with serve(org, fail="error") as (fake, client):
        done = finish(fake, client, create(client)["id"])
        assert done["status"] == "error" and done["download_url"] is None
    with serve(org, fail="stuck") as (fake, client):
        export_id = create(client)["id"]
        wait_built(fake, export_id)
        seen = [client.get(f"export/{export_id}/").json() for _ in range(30)]
        assert {s["status"] for s in seen[1:]} == {"in_progress"}
        assert {s["n_docs_processed"] for s in seen[2:]} == {LEADS // 2}
        assert all(s["download_url"] is None for s in seen)


def test_date_header_on_every_response(org: FakeOrg) -> None:
    with serve(org) as (fake, client):
        done = finish(fake, client, create(client)["id"])
        responses = [
            client.get("me/"),
            httpx.get(fake.url("lead/")),  # 401
            client.get(f"export/{done['id']}/"),
            httpx.get(done["download_url"]),
            httpx.get(done["download_url"] + "x"),  # 404 from the file host
        ]
        for r in responses:
            assert r.headers["date"].endswith(" GMT")
            when = parsedate_to_datetime(r.headers["date"]).astimezone(UTC)
            assert org.now.replace(microsecond=0) <= when < org.now + timedelta(minutes=5)


# -- the file -------------------------------------------------------------------------------


def _expected_counts(org: FakeOrg, *, threads: bool = False) -> Counter[str]:
    counts: Counter[str] = Counter()
    for lead in org.all(o.LEAD):
        counts["lead"] += 1
        counts["contact"] += len(org.children(o.CONTACT, "lead_id", lead["id"]))
        counts["opportunity"] += len(org.children(o.OPPORTUNITY, "lead_id", lead["id"]))
        counts["task"] += len(org.children(o.TASK, "lead_id", lead["id"]))
        for act in org.children(o.ACTIVITY, "lead_id", lead["id"]):
            if threads or act["_type"] != "EmailThread":
                counts[f"activity.{act['_type']}"] += 1
    return counts


@pytest.mark.parametrize("layout", ["array", "jsonl"])
def test_layouts_hold_every_lead_with_its_objects(org: FakeOrg, layout: str) -> None:
    docs, raw, fake = export_file(org, layout=layout)
    text = gzip.decompress(raw)
    if layout == "array":
        assert text.startswith(b"[{") and text.endswith(b"}]")
        assert b"\n" not in text  # one line: a streaming parser is needed
    else:
        assert text.count(b"\n") == LEADS and text.endswith(b"}\n")
    assert len(docs) == LEADS
    assert {d["id"] for d in docs} == {lead["id"] for lead in org.all(o.LEAD)}

    found: Counter[str] = Counter()
    for doc in docs:
        lead_id = doc["id"]
        found["lead"] += 1
        contacts = org.children(o.CONTACT, "lead_id", lead_id)
        assert [c["id"] for c in doc["contacts"]] == [c["id"] for c in contacts]
        assert doc["contact_ids"] == [c["id"] for c in contacts]
        assert all("lead_id" not in c for c in doc["contacts"])
        opps = org.children(o.OPPORTUNITY, "lead_id", lead_id)
        assert [x["id"] for x in doc["opportunities"]] == [x["id"] for x in opps]
        assert [t["id"] for t in doc["tasks"]] == [
            t["id"] for t in org.children(o.TASK, "lead_id", lead_id)
        ]
        assert doc["addresses"] == org.get(o.LEAD, lead_id)["addresses"]
        dates = [a["date_created"] for a in doc["activities"]]
        assert dates == sorted(dates, reverse=True)
        for act in doc["activities"]:
            assert act["lead_id"] == lead_id
            if act["_type"] != "EmailThread":
                assert act == org.get(o.ACTIVITY, act["id"])  # the per-type endpoint shape
        for key, name in (("contacts", "contact"), ("opportunities", "opportunity"),
                          ("tasks", "task")):  # fmt: skip
            found[name] += len(doc[key])
        found.update(f"activity.{a['_type']}" for a in doc["activities"])
    expected = _expected_counts(org)
    assert found == expected
    assert "activity.EmailThread" not in found and found["activity.CustomActivity"] > 0
    assert len([k for k in found if k.startswith("activity.")]) == 10


def _by_name(org: FakeOrg, collection: str, object_type: str) -> dict[str, str]:
    names = {f["id"]: f["name"] for f in org.all(collection)}
    for f in org.all(o.CUSTOM_FIELD_SHARED):
        if any(a["object_type"] == object_type for a in f["associations"]):
            names[f["id"]] = f["name"]
    return names


def _custom_keys(obj: dict) -> dict[str, Any]:
    return {k: val for k, val in obj.items() if k.startswith("custom.")}


@pytest.mark.parametrize("style", ["keys", "dict", "both"])
def test_custom_value_styles(org: FakeOrg, style: str) -> None:
    docs, _raw, _fake = export_file(org, custom_style=style)
    lead_names = _by_name(org, o.CUSTOM_FIELD_LEAD, "lead")
    contact_names = _by_name(org, o.CUSTOM_FIELD_CONTACT, "contact")
    checked = 0
    for doc in docs:
        pairs = [(doc, org.get(o.LEAD, doc["id"]), lead_names)]
        pairs += [(c, org.get(o.CONTACT, c["id"]), contact_names) for c in doc["contacts"]]
        for exported, stored, names in pairs:
            api_values = _custom_keys(stored)
            if style in ("keys", "both"):
                assert _custom_keys(exported) == api_values
            else:
                assert not _custom_keys(exported)
            if style == "keys":
                assert "custom" not in exported
                continue
            by_display_name = exported["custom"]
            assert by_display_name == {
                names[k.removeprefix("custom.")]: val for k, val in api_values.items()
            }
            checked += len(by_display_name)
        for act in doc["activities"]:  # activities keep the per-type endpoints' keys
            assert "custom" not in act
    assert style == "keys" or checked > 50


def test_shape_settings_threads_tasks_and_contact_lead_id(org: FakeOrg) -> None:
    docs, _raw, fake = export_file(
        org, include_threads=True, include_tasks=False, contact_lead_id=True
    )
    counts: Counter[str] = Counter()
    for doc in docs:
        assert "tasks" not in doc
        assert all(c["lead_id"] == doc["id"] for c in doc["contacts"])
        counts.update(a["_type"] for a in doc["activities"])
        for thread in (a for a in doc["activities"] if a["_type"] == "EmailThread"):
            assert thread["n_emails"] == len(thread["emails"]) >= 1
    expected = _expected_counts(org, threads=True)
    assert counts["EmailThread"] == expected["activity.EmailThread"] > 0


def test_fields_restrict_the_documents(org: FakeOrg) -> None:
    with serve(org) as (fake, client):
        export = create(client, fields=["id", "name", "custom"])
        assert export["fields"] == ["id", "name", "custom"]
        done = finish(fake, client, export["id"])
        docs = json.loads(httpx.get(done["download_url"]).content)
    assert {tuple(sorted(d)) for d in docs} == {("activities", "custom", "id", "name")}


def test_contacts_type_has_one_document_per_contact(org: FakeOrg) -> None:
    with serve(org) as (fake, client):
        export = create(client, type="contacts", include_activities=False)
        done = finish(fake, client, export["id"])
        docs = json.loads(httpx.get(done["download_url"]).content)
    assert done["n_docs"] == len(docs) == org.count(o.CONTACT)
    assert all(d["id"].startswith("cont_") and d["lead_id"] for d in docs)


# -- the download host ----------------------------------------------------------------------------


def test_download_is_gzip_encoded_json_on_another_host(org: FakeOrg) -> None:
    with serve(org) as (fake, client):
        done = finish(fake, client, create(client)["id"])
        url = done["download_url"]
        assert url.startswith(f"http://localhost:{fake.port}/export-files/")
        assert urlsplit(fake.base_url).hostname == "127.0.0.1"
        assert "signature=" in url
        r = raw_download(url)
        raw = r.raw_bytes  # type: ignore[attr-defined]
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        assert r.headers["content-encoding"] == "gzip"
        assert int(r.headers["content-length"]) == len(raw)
        assert raw[:2] == b"\x1f\x8b"
        decoded = httpx.get(url)  # httpx decodes Content-Encoding transparently
        assert decoded.content == gzip.decompress(raw)
        head = httpx.head(url)
        assert head.status_code == 200 and head.headers["content-length"] == str(len(raw))
        assert head.content == b""
        assert fake.export_key_leaks == 0
        assert fake.export_downloads["ok"] == 2
        # The file host serves no other host name, and checks the signature.
        moved = url.replace("localhost", "127.0.0.1")
        assert httpx.get(moved).status_code == 404
        tampered = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
        bad = httpx.get(tampered)
        assert bad.status_code == 403 and b"SignatureDoesNotMatch" in bad.content


def test_range_requests_resume_a_download(org: FakeOrg) -> None:
    with serve(org) as (fake, client):
        done = finish(fake, client, create(client)["id"])
        url = done["download_url"]
        full = raw_download(url).raw_bytes  # type: ignore[attr-defined]
        cut = len(full) // 3
        tail = raw_download(url, range=f"bytes={cut}-")
        assert tail.status_code == 206
        assert tail.headers["content-range"] == f"bytes {cut}-{len(full) - 1}/{len(full)}"
        assert int(tail.headers["content-length"]) == len(full) - cut
        assert full[:cut] + tail.raw_bytes == full  # type: ignore[attr-defined]
        middle = raw_download(url, range="bytes=10-19")
        assert middle.raw_bytes == full[10:20]  # type: ignore[attr-defined]
        past = raw_download(url, range=f"bytes={len(full)}-")
        assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(full)}"


def _read_until_broken(url: str, **headers: str) -> tuple[bytes, bool]:
    """(bytes received, whether the connection broke before the announced length)."""
    got = bytearray()
    try:
        with httpx.stream("GET", url, headers=headers, timeout=10) as r:
            for chunk in r.iter_raw():
                got += chunk
    except httpx.RemoteProtocolError:
        return bytes(got), True
    return bytes(got), False


def test_broken_download_truncates_every_time(org: FakeOrg) -> None:
    with serve(org, fail="broken_download") as (fake, client):
        done = finish(fake, client, create(client)["id"])
        size = fake.exports.job(done["id"]).size  # type: ignore[union-attr]
        first, broke = _read_until_broken(done["download_url"])
        assert broke and 0 < len(first) < size
        rest, broke_again = _read_until_broken(done["download_url"], range=f"bytes={len(first)}-")
        assert broke_again and len(first) + len(rest) < size
        with pytest.raises(httpx.HTTPError):
            httpx.get(done["download_url"])
        assert fake.export_downloads["broken"] == 3
        assert fake.requests[-1].fault == "broken_download"


def test_broken_download_only_first_n_times_then_resume_succeeds(org: FakeOrg) -> None:
    with serve(org, fail="broken_download", download_failures=1) as (fake, client):
        done = finish(fake, client, create(client)["id"])
        url = done["download_url"]
        first, broke = _read_until_broken(url)
        assert broke and first[:2] == b"\x1f\x8b"
        rest, broke_again = _read_until_broken(url, range=f"bytes={len(first)}-")
        assert not broke_again
        docs = json.loads(gzip.decompress(first + rest))
        assert len(docs) == LEADS
        assert fake.export_downloads["broken"] == 1 and fake.export_downloads["partial"] == 1


def test_expired_url_answers_403(org: FakeOrg) -> None:
    with serve(org, fail="expired_url") as (fake, client):
        done = finish(fake, client, create(client)["id"])
        assert done["status"] == "done"
        r = httpx.get(done["download_url"])
        assert r.status_code == 403
        assert r.headers["content-type"] == "application/xml" and b"expired" in r.content
        assert fake.export_downloads["expired"] == 1


def test_authorization_header_on_the_file_host_is_a_counted_key_leak(org: FakeOrg) -> None:
    with serve(org) as (fake, client):
        done = finish(fake, client, create(client)["id"])
        url = done["download_url"]
        assert httpx.get(url).status_code == 200
        assert fake.export_key_leaks == 0
        leaked = client.get(url)  # the API client's auth rides along to the absolute URL
        assert leaked.status_code == 400 and b"Authorization" in leaked.content
        assert httpx.get(url, headers={"authorization": "Bearer x"}).status_code == 400
        assert fake.export_key_leaks == 2
        assert fake.api_key not in leaked.text


# -- snapshot, helper, cleanup ------------------------------------------------------------------


def test_snapshot_isolation() -> None:
    org = generate_org(seed=9, leads=10)
    lead = org.all(o.LEAD)[0]
    contact = org.children(o.CONTACT, "lead_id", lead["id"])[0]
    with serve(org, polls_to_finish=3) as (fake, client):
        export_id = create(client)["id"]
        org.put(o.LEAD, {**lead, "name": "Renamed after the export"})
        org.remove(o.CONTACT, contact["id"])
        org.put(o.LEAD, {**lead, "id": "lead_new_after_export"})
        assert client.get(f"lead/{lead['id']}/").json()["name"] == "Renamed after the export"
        done = finish(fake, client, export_id)
        docs = {d["id"]: d for d in json.loads(httpx.get(done["download_url"]).content)}
        assert done["n_docs"] == 10
    assert "lead_new_after_export" not in docs
    assert docs[lead["id"]]["name"] == lead["name"]
    assert contact["id"] in {c["id"] for c in docs[lead["id"]]["contacts"]}


def test_write_export_file_equals_what_the_server_serves(org: FakeOrg, tmp_path: Path) -> None:
    settings = {"layout": "jsonl", "custom_style": "both", "contact_lead_id": True}
    _docs, served, fake = export_file(org, **settings)
    path = tmp_path / "export.json.gz"
    counts = write_export_file(org, path, **settings)
    assert path.read_bytes() == served
    assert counts == dict(_expected_counts(org))
    default = write_export_file(org, tmp_path / "default.json.gz")
    assert default == counts
    assert json.loads(gzip.decompress((tmp_path / "default.json.gz").read_bytes()))[0]["custom"]


def test_stop_deletes_export_files(org: FakeOrg) -> None:
    with serve(org) as (fake, client):
        done = finish(fake, client, create(client)["id"])
        job = fake.exports.job(done["id"])
        assert job is not None and job.path.exists()
        path = job.path
    assert not path.exists() and not path.parent.exists()
