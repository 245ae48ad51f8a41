"""The pipeline being run, found cheaply.

`dlt.current.pipeline()` is `dlt.pipeline()` called without arguments: it resolves dlt's whole
pipeline configuration (every provider, every field) before it looks for the active pipeline,
~8 ms each time, and makes a new pipeline when none is active. The connector asks for the
running pipeline from its resources and hints, ~130 times a run: it was a third of the CPU of
a run with nothing to load (12 leads, 2026-12-07). dlt keeps the active pipeline in its
`PipelineContext`; this reads it there.
"""

from __future__ import annotations

import dlt
from dlt.common.configuration.container import Container
from dlt.common.pipeline import PipelineContext


def running_pipeline() -> dlt.Pipeline | None:
    """The active pipeline (the one being run, or the last made); None when there is none."""
    context = Container()[PipelineContext]
    return context.pipeline() if context.is_active() else None  # type: ignore[return-value]
