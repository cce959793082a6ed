"""The Lua scripts behind every multi-step write the store cannot do with MULTI.

Each script is a file in ``lua/``, read once when this module is imported. A file opens
with its call signature and names every KEY and ARGV (what it is, its type or format)
and what it returns; its body gives each one a named local. A file that holds only a
function several scripts share (``cadence_next.lua``) is joined in front of the scripts
that use it.

Each script touches only keys of one deployment, which share the hash tag ``{prefix}``;
job hashes are addressed from a key prefix plus a job id, so they are in the same slot.
"""

from __future__ import annotations

from importlib.resources import files

__all__ = [
    "ACQUIRE_LEASE",
    "ADVANCE",
    "CADENCE_NEXT",
    "CLAIM_DUE",
    "CLAIM_RUNNING",
    "HISTORY_CHANGED",
    "PUT_JOB",
    "READ_AND_LEASE",
    "RECORD_ATTEMPT",
    "REDELIVER",
    "RELEASE_RUNNING",
    "SET_LEASE_TTL",
    "TAKE_LEASE",
]


def _read(name: str) -> str:
    return (files("scheduler.store") / "lua" / f"{name}.lua").read_text(encoding="utf-8")


def _script(name: str, *functions: str) -> str:
    """The script ``lua/{name}.lua``, preceded by the shared ``functions`` it calls."""
    return "\n".join([*functions, _read(name)])


#: ``next_ms(after, first, step, last)``: a cadence's next occurrence (a function only,
#: for the scripts that follow a cadence).
CADENCE_NEXT = _read("cadence_next")
#: ``take_lease(lease_key, ledger_key, taken_key, ttl_ms, ledger_member)``: an attempt's
#: lease, if the execution ledger owes it (a function only, for the scripts that take one).
TAKE_LEASE = _read("take_lease")

ACQUIRE_LEASE = _script("acquire_lease", TAKE_LEASE)
ADVANCE = _script("advance")
CLAIM_DUE = _script("claim_due", CADENCE_NEXT)
CLAIM_RUNNING = _script("claim_running")
HISTORY_CHANGED = _script("history_changed")
PUT_JOB = _script("put_job")
READ_AND_LEASE = _script("read_and_lease", TAKE_LEASE)
RECORD_ATTEMPT = _script("record_attempt")
REDELIVER = _script("redeliver")
RELEASE_RUNNING = _script("release_running")
SET_LEASE_TTL = _script("set_lease_ttl")
