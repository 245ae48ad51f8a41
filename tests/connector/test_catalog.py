"""The catalog is the single source of truth: check it is complete and consistent."""

from close_source.catalog import BY_TABLE, CATALOG

# The tables promised by name (tests, docs and users' SQL use the names), minus
# events/lead_merges (Event Log issue)
CONTRACT_TABLES = {
    "leads", "contacts", "opportunities", "tasks",
    "calls", "emails", "email_threads", "notes", "meetings", "sms", "lead_status_changes",
    "opportunity_status_changes", "task_completions", "created_activities", "custom_activities",
    "users", "memberships", "roles", "groups", "organization",
    "lead_statuses", "opportunity_statuses", "pipelines", "custom_fields",
    "custom_activity_types", "email_templates", "sms_templates", "sequences",
    "sequence_subscriptions", "smart_views", "connected_accounts", "phone_numbers",
    "integration_links", "dialer_sessions", "webhook_subscriptions",
}


def test_catalog_covers_the_table_contract_exactly():
    assert {entry.table for entry in CATALOG} == CONTRACT_TABLES
    assert len(CATALOG) == len(BY_TABLE)


def test_every_entry_is_documented_and_readable():
    for entry in CATALOG:
        assert entry.doc, entry.table
        assert entry.primary_key, entry.table
        for variant in entry.request_variants():
            assert variant.path.endswith("/") and not variant.path.startswith("/"), entry.table
        if entry.read == "keyset":
            assert entry.search_object_type and (entry.search_fields or entry.fields)
            assert {"id", "date_created"} <= set(entry.search_fields or entry.fields)
        if entry.read == "windows":
            assert entry.date_ops[1] in ("lt", "lte") and entry.date_ops[0] in ("gt", "gte")
        if entry.read == "per_parent":
            assert entry.parent in BY_TABLE and entry.parent_param


def test_every_activity_table_routes_from_the_export_by_type():
    activity_types = [e.export_type for e in CATALOG if e.export_path == "activities"]
    assert len(activity_types) == 10 == len(set(activity_types))  # threads: from the list
    for entry in CATALOG:
        if entry.child_lists:
            assert entry.child_key, entry.table


def test_tasks_ask_for_every_task_type():
    assert BY_TABLE["tasks"].params["_type"] == "all"
