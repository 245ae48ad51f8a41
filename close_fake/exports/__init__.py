"""The Export API of the fake: `POST /export/lead/`, `GET /export/{id}/`, `GET /export/`, and
the pre-signed file download (Close API: Exports).

Creating an export freezes the organisation (`FakeOrg.snapshot()`, O(objects), no deep copy)
and selects the leads (`s_query`/`sort`/`results_limit`, evaluated like `/data/search/`); a
daemon thread then streams the file to a temp directory (`file.py`). Progress is
virtual, driven by polls and/or elapsed time (`ExportSettings`), and never runs ahead of the
real writer. Statuses: `created` -> `started` -> `in_progress` (`n_docs` set,
`n_docs_processed` growing) -> `done` (`download_url` set) or `error`.

The download lives on another host name than the API, like Close's pre-signed storage
URLs: `http://<download_host>:<port>/export-files/<token>.json.gz?signature=...`. It needs
no auth and refuses any `Authorization` header (400, counted in `key_leaks`), so tests can
prove a client never hands its API key to the file host. Errors there are S3-style XML.

Modules: `settings.py` (`ExportSettings`), `job.py` (one export), `api.py` (`Exports`: the
endpoints and progress), `host.py` (the download host), `file.py` (the file itself,
`write_export_file`), `generated.py` (the file of a generated organisation of any size,
chunk by chunk: `write_generated_export`).
"""
