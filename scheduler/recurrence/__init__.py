"""The recurrence engine: an Azure recurrence (or a cron line) in, its occurrences out.

This is the package's one public face; ``_calendar``, ``_clocks``, ``_cron``, ``_spec`` and
``_spacing`` are its private parts. It knows nothing of jobs, stores or Celery: it imports
only :mod:`scheduler.clock` and :mod:`scheduler.errors`.
"""

from scheduler.recurrence.engine import (
    Rule,
    RuleShape,
    canonical_recurrence,
    compile_recurrence,
    iter_occurrences,
    min_spacing,
    next_occurrence,
    rule_shape,
    validate_recurrence,
)

__all__ = [
    "Rule",
    "RuleShape",
    "canonical_recurrence",
    "compile_recurrence",
    "iter_occurrences",
    "min_spacing",
    "next_occurrence",
    "rule_shape",
    "validate_recurrence",
]
