"""Every Redis key Takt uses, built in one place.

All keys share the hash tag ``{prefix}`` so that the Lua scripts, which touch several keys
at once, stay valid on Redis Cluster (one deployment lives in one slot; run several
prefixes to spread deployments over a cluster). ``cid`` is a collection id
``subscription/resourceGroup/collection``; ``jid`` is a job id ``cid/job``.

=====================================  ======  =========================  ==================
key                                    type    TTL                        written by
=====================================  ======  =========================  ==================
``{p}:collection:{cid}``               hash    none                       API (def JSON, sv)
``{p}:collections``                    zset    none (score 0, lex order)  API
``{p}:jobs:{cid}``                     zset    none (score 0, lex order)  API
``{p}:job:{jid}``                      hash    none                       API (def, state,
                                                                          gen, owner, name,
                                                                          cadence); beat
                                                                          (next time,
                                                                          cadence);
                                                                          worker (counters,
                                                                          last time, state)
``{p}:history:{jid}``                  list    none; trimmed to 1,000     worker (newest
                                               entries and 60 days        first)
``{p}:due``                            zset    none                       API, beat
                                                                          (score = next fire
                                                                          time, epoch ms;
                                                                          member = jid, or
                                                                          a RetryMember
                                                                          for a long retry,
                                                                          written by workers)
``{p}:finished``                       zset    none                       worker (score =
                                                                          finishedAt ms;
                                                                          read by retention)
``{p}:claims``                         stream  entries deleted on ack     beat (claimed,
                                                                          not yet published;
                                                                          up to 500 claims
                                                                          per entry)
``{p}:ledger``                         zset    none; members removed      beat, API, worker
                                               when their attempt is      (score = when to
                                               recorded                   deliver again, ms;
                                                                          member = an attempt,
                                                                          a LedgerEntry)
``{p}:ledger:history``                 string  none                       beat (the store's
                                                                          replication id the
                                                                          beats saw last;
                                                                          ledger.py)
``{p}:ledger:taken``                   zset    none; members removed      worker (score = when
                                               when their attempt is      its lease expires,
                                               recorded                   ms; member = a ledger
                                                                          member a worker took)
``{p}:lease:{jid}:{occ_ms}:{tag}``     string  action timeout + margin,   worker (tag: m0,
                                                                          m1.. e0..)
                                               then 1 day once done
``{p}:metrics``                        zset    none; members dropped      beat, worker (score
                                               once their snapshot        = last push, ms;
                                               expired                    member = role:process)
``{p}:metrics:{role}:{process}``       string  3 push intervals           beat, worker (its
                                                                          metrics snapshot;
                                                                          store/metrics.py)
``{p}:principal:{name}``               hash    none                       API, CLI (role,
                                                                          key hash)
``{p}:principals``                     zset    none (score 0, lex order)  API, CLI
``{p}:apikey:{sha256}``                string  none                       API, CLI (name)
``{p}:running:{jid}``                  string  action timeout + margin    worker (the running
                                                                          occurrence; overlap
                                                                          policies)
``{p}:cancelled:{jid}:{occ_ms}``       string  action timeout + margin    worker (Replace: the
                                                                          occurrence that
                                                                          replaced this one)
``{p}:session:{id}``                   hash    8 h                        console (principal,
                                                                          its key's digest,
                                                                          csrf token)
``{p}:signin-failures:{address}``      string  5 min from the first       console (failed
                                               failure                    sign-ins of one
                                                                          client address)
``{p}:wake``                           pubsub  --                         API (a job fires
                                                                          earlier: beats
                                                                          wake up)
``{p}:health``                         string  10 s                       API (/healthz: a
                                                                          write that proves
                                                                          the store takes
                                                                          writes)
``{p}:replicated``                     string  10 s                       API, CLI, worker
                                                                          (a write that
                                                                          marks where WAIT
                                                                          counts replicas
                                                                          from; store/jobs.py)
=====================================  ======  =========================  ==================

The beats' consumer group on ``{p}:claims`` is :data:`CLAIM_GROUP`. Members and values
with parts (RetryMember, LedgerEntry, the claims stream's ClaimValue, a job's cadence,
a history entry's id) have their codecs in :mod:`scheduler.store.codecs`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CLAIM_GROUP", "KeySchema"]

CLAIM_GROUP = "beats"


@dataclass(frozen=True, slots=True)
class KeySchema:
    """Builds the keys of one deployment (one prefix)."""

    prefix: str = "takt"

    @property
    def _tag(self) -> str:
        return "{" + self.prefix + "}"

    def collection(self, cid: str) -> str:
        return f"{self._tag}:collection:{cid}"

    @property
    def collections(self) -> str:
        return f"{self._tag}:collections"

    def jobs(self, cid: str) -> str:
        return f"{self._tag}:jobs:{cid}"

    def job(self, jid: str) -> str:
        return f"{self._tag}:job:{jid}"

    def history(self, jid: str) -> str:
        return f"{self._tag}:history:{jid}"

    @property
    def due(self) -> str:
        return f"{self._tag}:due"

    @property
    def finished(self) -> str:
        return f"{self._tag}:finished"

    @property
    def claims(self) -> str:
        return f"{self._tag}:claims"

    @property
    def ledger(self) -> str:
        return f"{self._tag}:ledger"

    @property
    def ledger_history(self) -> str:
        return f"{self._tag}:ledger:history"

    @property
    def ledger_taken(self) -> str:
        return f"{self._tag}:ledger:taken"

    def lease(self, jid: str, occurrence_ms: int, tag: str) -> str:
        return f"{self._tag}:lease:{jid}:{occurrence_ms}:{tag}"

    def running(self, jid: str) -> str:
        return f"{self._tag}:running:{jid}"

    def cancelled_prefix(self, jid: str) -> str:
        return f"{self._tag}:cancelled:{jid}:"

    def principal(self, name: str) -> str:
        return f"{self._tag}:principal:{name}"

    @property
    def principals(self) -> str:
        return f"{self._tag}:principals"

    def api_key(self, digest: str) -> str:
        return f"{self._tag}:apikey:{digest}"

    def session(self, sid: str) -> str:
        return f"{self._tag}:session:{sid}"

    def sign_in_failures(self, address: str) -> str:
        return f"{self._tag}:signin-failures:{address}"

    @property
    def wake(self) -> str:
        return f"{self._tag}:wake"

    @property
    def health(self) -> str:
        return f"{self._tag}:health"

    @property
    def replicated(self) -> str:
        return f"{self._tag}:replicated"

    @property
    def job_prefix(self) -> str:
        """The common start of every job hash key (the beat strips it to get a jid)."""
        return f"{self._tag}:job:"
