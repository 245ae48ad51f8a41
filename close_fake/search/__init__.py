"""`POST /data/search/` (Advanced Filtering) for the fake Close API.

Shaped after the `s_query`/`sort` structures of Close API: Exports (the endpoint's own section,
Close API: Advanced Filtering, was not at hand when this was written) and what other Close
connectors found:

- body `{"query": {...}, "sort": [...], "_limit": N, "cursor": str|null,
  "_fields": {"lead": [...]}, "results_limit": N|null}`;
- results are `{"__object_type": "lead", "id": ...}` unless `_fields` names fields
  (a `_fields` list of more than 100 names -> 400 "List is too long");
- `_limit` at most 200; cursor paging; a cursor expires `cursor_ttl` seconds after it was
  issued; one walk (a query followed through its cursors) stops after `walk_max` results
  with `cursor: null` even when more objects match — a client must restart with a
  narrower query (e.g. a `moment_range` on the sort field).

Query nodes: `and`/`or` (`queries`), `negate`/`not` (`query`), `match_all`, `object_type`,
`has_related`, `field_condition` with `regular_field` or `custom_field` fields and the
conditions `moment_range`, `text`, `term`, `number_range`, `boolean`, `exists`.

Modules: `engine.py` (`SearchEngine`: requests, pages, cursors), `evaluation.py` (queries
compiled into predicates, sort keys), `conditions.py` (field conditions as value tests).
"""
