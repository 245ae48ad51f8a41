"""`exclude_columns` and `pii = "hash"` at the connector's level: what the settings accept, what
an object, an event, the window store's scratch file and `field_changes` keep, in milliseconds.
The whole runs are in tests/end_to_end/test_privacy.py."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from close_source.catalog import BY_TABLE
from close_source.errors import ConfigError
from close_source.read.event_log import Event
from close_source.read.pii_hash import Hasher
from close_source.read.privacy import NO_PRIVACY, Privacy, pii_hasher
from close_source.read.warehouse import Warehouse
from close_source.read.window_store import WindowStore
from close_source.run import state as st
from close_source.run.privacy_changes import check_privacy
from close_source.settings import Settings
from close_source.shape.batcher import ArrowBatcher
from close_source.shape.custom_columns import CustomColumns
from close_source.shape.field_changes import field_change_rows
from tests.connector.test_custom_columns import Definitions, field
from tests.connector.test_settings import DEFAULTS

KEY = "pii-key-for-tests-7c1e55a0b9"


def digest(text: str, key: str = KEY) -> str:
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()


def definitions() -> Definitions:
    return Definitions(lead=[field("cf_notes", "Personal notes"), field("cf_ind", "Industry")],
                       contact=[field("cf_bday", "Birthday", "date")])


# ---- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "says"), [
    ({"deals": ["name"]}, "[sources.close] exclude_columns (SOURCES__CLOSE__EXCLUDE_COLUMNS) "
                          "names deals: not a table of Close objects; known: leads, contacts"),
    ({"users": ["custom.Region"]}, "users 'custom.Region' is a custom field: users has none"),
    ({"contacts": ["id"]}, "contacts 'id' is needed to sync the table: it cannot be excluded"),
    ({"emails": ["date_updated"]}, "is needed to sync the table"),
    ({"leads": ["lead_id.x"]}, "is needed to sync the table"),
    ({"contacts": ["emails."]}, "contacts 'emails.' is not a field name"),
    ({"leads": ["custom."]}, "leads 'custom.' names no custom field"),
    ("contacts", "must be a mapping of table names to lists of fields, not 'contacts'"),
    ({"contacts": "emails"}, "must be a mapping of table names to lists of fields"),
])
def test_exclusions_a_run_cannot_follow_are_refused_in_one_line(value, says):
    with pytest.raises(ConfigError) as refused:
        Settings.checked(None, **{**DEFAULTS, "exclude_columns": value})
    assert says in str(refused.value)


def test_exclusions_are_read_as_written_and_from_json_text():
    given = {"contacts": ["emails", "phones.type", "emails"], "leads": ["custom", "custom.X"],
             "calls": []}
    assert Settings.checked(None, **{**DEFAULTS, "exclude_columns": given}).exclude_columns == {
        "contacts": ("emails", "phones.type"), "leads": ("custom", "custom.X")}
    as_env = Settings.checked(None, **{**DEFAULTS,
                                       "exclude_columns": '{"contacts": ["emails"]}'})
    assert as_env.exclude_columns == {"contacts": ("emails",)}
    with pytest.raises(ConfigError, match="must be one of none, hash, not 'sha256'"):
        Settings.checked(None, **{**DEFAULTS, "pii": "sha256"})


@pytest.mark.parametrize(("key", "says"), [
    (None, "[sources.close] pii (SOURCES__CLOSE__PII) is \"hash\" but no key is set: put "
           "pii_key under [sources.close] in .dlt/secrets.toml or set SOURCES__CLOSE__PII_KEY"),
    ("  ", "no key is set"),
    ("short-secret-12", "pii_key (SOURCES__CLOSE__PII_KEY) must be at least 16 characters"),
])
def test_hashing_needs_a_key_and_the_message_never_shows_it(key, says):
    with pytest.raises(ConfigError) as refused:
        pii_hasher("hash", key)
    assert says in str(refused.value)
    assert key is None or key.strip() == "" or key not in str(refused.value)
    assert pii_hasher("none", None) is None


# ---- hashing ----------------------------------------------------------------------------------


def test_addresses_and_numbers_hash_as_hmac_sha256_of_their_normal_form():
    hasher = Hasher(KEY)
    assert hasher.email("  Ann.Lee@Example.COM ") == digest("ann.lee@example.com")
    assert hasher.phone("+1 650-333-4444") == hasher.phone("+16503334444") == \
        hasher.phone("16503334444") == digest("16503334444")
    assert Hasher("another-key-of-sixteen").email("a@b.co") != hasher.email("a@b.co")
    assert KEY not in repr(hasher) and KEY not in hasher.fingerprint()


def test_every_address_and_number_of_an_object_is_hashed_the_rest_is_kept():
    hasher = Hasher(KEY)
    email = {"id": "acti_1", "sender": "Ann Lee <Ann@Example.com>", "to": [" Bob@example.org "],
             "envelope": {"from": [{"email": "ann@example.com", "name": "Ann Lee"}]},
             "body_text": "Hi,\n\nwrite to bob@example.org.\n\nAnn", "date_created":
             "2026-01-02T03:04:05+00:00", "opens": [{"ip_address": "203.0.113.5"}],
             "phone": "+1 650-333-4444", "phone_numbers": ["+16503334444"], "note": "+1 650",
             "number": None, "duration": 12}
    hasher.walk_object(email)
    ann, bob, number = digest("ann@example.com"), digest("bob@example.org"), \
        digest("16503334444")
    assert email == {
        "id": "acti_1", "sender": f"Ann Lee <{ann}>", "to": [bob],
        "envelope": {"from": [{"email": ann, "name": "Ann Lee"}]},
        "body_text": f"Hi,\n\nwrite to {bob}.\n\nAnn", "date_created": "2026-01-02T03:04:05+00:00",
        "opens": [{"ip_address": "203.0.113.5"}], "phone": number, "phone_numbers": [number],
        "note": "+1 650", "number": None, "duration": 12}
    again = dict(email)
    hasher.walk_object(again)  # a hash is left as it is: a backup's files hash to themselves
    assert again == email


# ---- exclusions -------------------------------------------------------------------------------


def contact() -> dict:
    return {"id": "cont_1", "lead_id": "lead_1", "name": "Ann",
            "emails": [{"email": "ann@x.example", "type": "office"}],
            "phones": [{"phone": "+16503334444", "type": "mobile", "country": "US"}],
            "urls": [], "custom.cf_bday": "1990-01-02"}


def test_standard_nested_and_custom_fields_are_left_out_by_name_or_id():
    privacy = Privacy({"contacts": ["emails", "phones.country", "custom.cf_bday"],
                       "leads": ["custom.Personal notes", "addresses.zipcode"]}, None,
                      definitions())
    assert privacy.object("contacts", contact()) == {
        "id": "cont_1", "lead_id": "lead_1", "name": "Ann",
        "phones": [{"phone": "+16503334444", "type": "mobile"}], "urls": []}
    lead = {"id": "lead_1", "custom.cf_notes": "private", "custom.cf_ind": "IT",
            "custom": {"Personal notes": "private", "Industry": "IT"},
            "addresses": [{"city": "Oslo", "zipcode": "0150"}]}
    assert privacy.object("leads", lead) == {
        "id": "lead_1", "custom.cf_ind": "IT", "custom": {"Industry": "IT"},
        "addresses": [{"city": "Oslo"}]}
    assert privacy.dropped_tables == {"contacts__emails"}
    assert privacy.object("calls", {"id": "acti_1", "phone": "+1"}) == {"id": "acti_1",
                                                                        "phone": "+1"}


def test_all_custom_fields_and_a_field_created_mid_run_are_left_out():
    every = Privacy({"leads": ["custom"]})
    assert every.object("leads", {"id": "l", "custom.cf_x": 1, "custom": {"X": 1}}) == {"id": "l"}
    later = Definitions(lead=[field("cf_ind", "Industry")])
    privacy = Privacy({"leads": ["custom.Personal notes"]}, None, later)
    later.by_object_type["lead"].append(field("cf_new", "Personal notes"))
    assert privacy.object("leads", {"id": "l", "custom.cf_new": "secret",
                                    "custom.cf_ind": "IT"}) == {"id": "l", "custom.cf_ind": "IT"}
    assert later.loads == 2  # read once when the run began, once for the unknown field


def test_an_unknown_custom_name_is_a_warning_not_an_error(caplog):
    Privacy({"leads": ["custom.Nope"]}, None, definitions())
    assert "exclude_columns (SOURCES__CLOSE__EXCLUDE_COLUMNS): leads custom.Nope names no " \
        "custom field Close has now" in caplog.text


def test_an_excluded_custom_field_has_no_column():
    privacy = Privacy({"leads": ["custom.cf_notes"], "contacts": ["custom.Birthday"]})
    custom = CustomColumns("name", None, definitions(), privacy.keeps)
    assert set(custom.column_types("leads")) == {"custom_industry", "custom_unmapped"}
    assert set(custom.column_types("contacts")) == {"custom_unmapped"}
    assert {row["name"] for row in custom.definition_rows()} == {"Industry"}


def test_an_excluded_list_has_no_child_table_and_no_rows():
    privacy = Privacy({"contacts": ["emails"]})
    batcher = ArrowBatcher.for_entries([BY_TABLE["contacts"]], dropped=privacy.dropped_tables)
    assert "contacts__emails" not in batcher.specs and "contacts__phones" in batcher.specs
    items = list(batcher.add_object(BY_TABLE["contacts"],
                                    privacy.object("contacts", contact()), None))
    batcher.completed("contacts")  # replaced tables are declared, empty ones too
    items += batcher.flush()
    written = {getattr(item.meta, "hints", {}).get("table_name")
               or getattr(item.meta, "table_name", None) for item in items}
    assert written == {"contacts", "contacts__phones", "contacts__urls"}


def event(object_type: str, **raw) -> Event:
    parsed = Event.parse({"id": "ev_1", "object_type": object_type, "object_id": "cont_1",
                          "lead_id": "lead_1", "action": "updated",
                          "date_updated": "2026-01-02T03:04:05.678", **raw})
    assert parsed is not None
    return parsed


def test_events_keep_no_excluded_value_nor_change_of_it():
    privacy = Privacy({"contacts": ["emails", "custom.Birthday"]}, Hasher(KEY), definitions())
    changed = event("contact", changed_fields=["emails", "name", "custom.cf_bday"],
                    previous_data={**contact(), "name": "Ann"},
                    data={**contact(), "name": "Ann Lee"}, meta={"by": "ops@x.example"})
    raw = privacy.event("contact", dict(changed.raw))
    assert "emails" not in raw["data"] and "custom.cf_bday" not in raw["previous_data"]
    assert raw["data"]["phones"][0]["phone"] == digest("16503334444")
    assert raw["meta"] == {"by": digest("ops@x.example")}
    kept = Event.parse(raw)
    rows = list(field_change_rows(BY_TABLE["contacts"], kept, None, privacy.keeps_change))
    assert [row["field"] for row in rows] == ["name"]
    # a lead's event shows its contacts too: they go, whatever contacts keep out
    lead = privacy.event("lead", {"data": {"id": "lead_1", "contacts": [contact()]}})
    assert lead["data"] == {"id": "lead_1"}


def test_objects_of_other_tables_nested_in_one_go_with_it():
    """The organisation shows its memberships, a lead its contacts: a backup's file of the
    organisation would keep them (shaping drops them later), hashed or not as another table's
    settings say; they are kept as their own tables' objects instead."""
    org = {"id": "orga_1", "name": "Acme", "memberships": [{"user_email": "a@x.example"}]}
    assert Privacy({}, Hasher(KEY)).object("organization", org) == {"id": "orga_1",
                                                                    "name": "Acme"}
    assert "memberships" in NO_PRIVACY.object("organization", {"id": "o", "memberships": []})


def test_the_window_stores_scratch_file_never_holds_an_excluded_or_raw_value(tmp_path: Path):
    privacy = Privacy({"contacts": ["urls"]}, Hasher(KEY))
    secret_url = "https://private.example/ann"
    with WindowStore(tmp_path, memory_rows=0, privacy=privacy) as store:
        store.add_events([(0, event("contact", data={**contact(), "urls": [secret_url]}))])
        store.put(("contacts", "cont_2"), {**contact(), "id": "cont_2", "urls": [secret_url]})
        store.put_many([(("contacts", "cont_3"), {**contact(), "urls": [secret_url]})])
        store.put_if_absent([(("contacts", "cont_4"), {**contact(), "urls": [secret_url]})])
        assert store.spilled and store.path is not None
        written = store.path.read_bytes()
        for raw in (secret_url, "ann@x.example", "+16503334444"):
            assert raw.encode() not in written
        assert digest("ann@x.example").encode() in written
        assert all(state and "urls" not in state for _, state in store.states())


# ---- the state: one way per dataset -----------------------------------------------------------


def holding(*tables: str) -> Warehouse:
    return Warehouse(None, {table: {"id": "text"} for table in tables})


def test_a_dataset_loaded_one_way_refuses_another(caplog):
    hashed = Privacy({"contacts": ["emails"]}, Hasher(KEY))
    state: dict = {}
    check_privacy(state, holding(), hashed)  # a new dataset: any settings
    st.save_privacy(state, hashed.marker())
    assert KEY not in str(state) and state["privacy"]["pii_key"] == Hasher(KEY).fingerprint()
    check_privacy(state, holding("contacts"), hashed)  # the same settings: nothing to say
    for other, says in [
        (Privacy({"contacts": ["emails"]}, Hasher(KEY + "x")), "pii_key changed"),
        (Privacy({"contacts": ["emails"]}), "pii changed from hash to none"),
        (Privacy({"contacts": ["emails", "phones"]}, Hasher(KEY)),
         "exclude_columns (SOURCES__CLOSE__EXCLUDE_COLUMNS) now excludes contacts.phones"),
    ]:
        with pytest.raises(ConfigError, match="load into a new dataset") as refused:
            check_privacy(state, holding("contacts"), other)
        assert says in str(refused.value) and KEY not in str(refused.value)
    check_privacy(state, holding("contacts"), Privacy({}, Hasher(KEY)))
    assert "no longer excludes contacts.emails" in caplog.text


def test_a_dataset_loaded_before_these_settings_had_none():
    with pytest.raises(ConfigError, match="pii changed from none to hash"):
        check_privacy({}, holding("leads"), Privacy({}, Hasher(KEY)))
    check_privacy({}, holding(), Privacy({}, Hasher(KEY)))  # an empty dataset: anything goes
    check_privacy({}, holding("leads"), NO_PRIVACY)

