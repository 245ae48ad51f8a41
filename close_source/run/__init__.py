"""What a run does: a plan per table, the source state, full loads and incremental runs as
dlt resources, one run at a time."""
