"""Settings refuse what they cannot use, in one line naming the setting and what it takes.

dlt coerces config.toml and environment values to the signature's types (the CLI runs in
tests/end_to_end/test_file_and_config_errors.py); values given to `close_source()` in Python
are not coerced, and ranges are ours: both are checked here, in milliseconds."""

from __future__ import annotations

import inspect

import dlt
import pytest
from dlt.common.configuration.exceptions import ConfigValueCannotBeCoercedException

from close_source import close_source
from close_source.errors import ConfigError
from close_source.run.verify import close_client
from close_source.settings import Settings, check_extract_workers
from close_source.user_errors import user_error_message

DEFAULTS = {name: parameter.default for name, parameter in
            inspect.signature(close_source).parameters.items()
            if name not in ("api_key", "tables", "pii_key")}


def test_history_names_tables_once():
    settings = Settings.checked(None, **{**DEFAULTS, "history": ["leads", "opportunities",
                                                                 "leads"]})
    assert settings.history == ("leads", "opportunities")
    assert settings.field_changes is True


@pytest.mark.parametrize(("name", "value", "says"), [
    ("max_skip", 0, "[sources.close] max_skip (SOURCES__CLOSE__MAX_SKIP) must be a whole "
                    "number greater than 0, not 0"),
    ("max_skip", True, "must be a whole number greater than 0, not True"),
    ("max_skip", 2.5, "must be a whole number greater than 0, not 2.5"),
    ("timeout", "60", "[sources.close] timeout (SOURCES__CLOSE__TIMEOUT) must be a number of "
                      "seconds greater than 0 (a year at most), not '60'"),
    ("timeout", float("inf"), "not inf"),
    ("timeout", 366 * 86400, "not 31622400"),
    ("max_attempts", -1, "[sources.close] max_attempts (SOURCES__CLOSE__MAX_ATTEMPTS) must be "
                         "a whole number greater than 0, not -1"),
    ("export_timeout", 0.0, "[sources.close] export_timeout (SOURCES__CLOSE__EXPORT_TIMEOUT) "
                            "must be a number of seconds greater than 0"),
    ("export_poll_interval", float("nan"), "export_poll_interval "
                                           "(SOURCES__CLOSE__EXPORT_POLL_INTERVAL) must be"),
    ("window_memory_rows", -1, "window_memory_rows (SOURCES__CLOSE__WINDOW_MEMORY_ROWS) must be "
                               "a whole number of rows, 0 or more, not -1"),
    ("export_fallback", "false", "[sources.close] export_fallback "
                                 "(SOURCES__CLOSE__EXPORT_FALLBACK) must be true or false, "
                                 "not 'false'"),
    ("full_load", "exports", "[sources.close] full_load (SOURCES__CLOSE__FULL_LOAD) must be one "
                             "of export, lists, not 'exports'"),
    ("timeout", "x" * 100, "not '" + "x" * 36 + "..."),
    ("rate_limit_share", 0, "[sources.close] rate_limit_share (SOURCES__CLOSE__RATE_LIMIT_SHARE) "
                            "must be a number greater than 0 and at most 1, not 0"),
    ("rate_limit_share", 1.01, "must be a number greater than 0 and at most 1, not 1.01"),
    ("rate_limit_share", float("nan"), "must be a number greater than 0 and at most 1, not nan"),
    ("rate_limit_share", True, "must be a number greater than 0 and at most 1, not True"),
    ("field_changes", 1, "[sources.close] field_changes (SOURCES__CLOSE__FIELD_CHANGES) must be "
                         "true or false, not 1"),
    ("history", "leads", "[sources.close] history (SOURCES__CLOSE__HISTORY) must be a list of "
                         "table names, not 'leads'"),
    ("history", ["leads", "users"], "[sources.close] history (SOURCES__CLOSE__HISTORY) names "
                                    "users: versions are kept only of tables the Event Log "
                                    "changes: leads, contacts,"),
])
def test_a_value_a_setting_cannot_use_is_refused_by_name(name, value, says):
    with pytest.raises(ConfigError) as refused:
        Settings.checked(None, **{**DEFAULTS, name: value})
    assert says in str(refused.value)


def test_the_defaults_and_the_edges_are_accepted():
    assert Settings.checked(None, **DEFAULTS).timeout == 60.0
    edges = {"max_skip": 1, "timeout": 0.001, "max_attempts": 1, "export_timeout": 365 * 86400,
             "export_poll_interval": 1, "window_memory_rows": 0, "export_fallback": False,
             "rate_limit_share": 1}
    assert Settings.checked(None, **{**DEFAULTS, **edges}).window_memory_rows == 0


@pytest.mark.parametrize(("workers", "says"), [
    ("abc", "[extract] workers (EXTRACT__WORKERS) must be a whole number of threads greater "
            "than 0, not 'abc'"),
    ("0", "must be a whole number of threads greater than 0, not 0"),
    ("-3", "not -3"),
])
def test_extract_workers_are_checked_as_dlt_reads_them(monkeypatch, workers, says):
    monkeypatch.setenv("EXTRACT__WORKERS", workers)
    with pytest.raises(ConfigError) as refused:
        check_extract_workers()
    assert says in str(refused.value)
    monkeypatch.setenv("EXTRACT__WORKERS", "3")
    check_extract_workers()


def test_a_setting_that_is_not_ours_is_named_without_its_value():
    """It may be a secret (a port in a DSN, a password): the value is not shown."""
    failed = ConfigValueCannotBeCoercedException("port", "s3cr3t-ish", int)
    assert user_error_message(failed) == \
        "the setting `port` must be a whole number (see docs/configuration.md)"


@pytest.mark.parametrize("written", [2, 0.5])
def test_a_boolean_written_as_a_number_in_config_toml_is_refused(written):
    """dlt reads `export_fallback = 2` as True (`bool(2)`): only the value as written tells."""
    provider = dlt.config.writable_provider
    with provider.preserve():
        dlt.config["sources.close.export_fallback"] = written
        with pytest.raises(ConfigError) as refused:
            Settings.checked(None, **DEFAULTS)
        dlt.config["sources.close.export_fallback"] = False
        assert Settings.checked(None, **{**DEFAULTS, "export_fallback": False})
    assert str(refused.value) == ("[sources.close] export_fallback "
                                  "(SOURCES__CLOSE__EXPORT_FALLBACK) must be true or false, "
                                  f"not {written!r}")
    assert dlt.config.get("sources.close.export_fallback") is None


def test_verify_configures_its_client_as_the_source_is_configured(monkeypatch):
    """`close-sync verify` reads Close with the share of the rate limit the sync takes."""
    monkeypatch.setenv("SOURCES__CLOSE__API_KEY", "api_settings_test_key")
    monkeypatch.setenv("SOURCES__CLOSE__RATE_LIMIT_SHARE", "0.25")
    with close_client() as client:
        assert client.rate_limit_share == 0.25
    monkeypatch.delenv("SOURCES__CLOSE__RATE_LIMIT_SHARE")
    with close_client() as client:
        assert client.rate_limit_share == 1.0


@pytest.mark.parametrize(("given", "kept"), [
    (None, None), ("freeze", "freeze"), ({"columns": "freeze"}, {"columns": "freeze"}),
    ('{"columns": "discard_value", "tables": "evolve"}',  # as config hands a mapping over
     {"columns": "discard_value", "tables": "evolve"}),
])
def test_schema_contract_takes_dlts_modes(given, kept):
    assert Settings.checked(None, **{**DEFAULTS, "schema_contract": given}).schema_contract == kept


@pytest.mark.parametrize("given", ["frozen", {"column": "freeze"}, {"columns": "strict"}, {},
                                   '{"columns": ', 3])
def test_schema_contract_refuses_what_dlt_would_not_know(given):
    with pytest.raises(ConfigError) as refused:
        Settings.checked(None, **{**DEFAULTS, "schema_contract": given})
    assert str(refused.value).startswith(
        "[sources.close] schema_contract (SOURCES__CLOSE__SCHEMA_CONTRACT) must be one of "
        "evolve, discard_value, freeze, discard_row, or a mapping of tables, columns, "
        "data_type to one, not ")
