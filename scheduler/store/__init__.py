"""The store: the only code that talks to Redis for Takt's own data.

Jobs and collections (:mod:`.jobs`, :mod:`.async_jobs` over :mod:`.resp`), the key layout
(:mod:`.keys`), the beat's claims (:mod:`.claims`), the execution ledger (:mod:`.ledger`),
principals, console sessions, what is in progress (:mod:`.activity`) and VerifyStore
(:mod:`.verification`). The Lua scripts live in ``lua/``; every Redis error becomes a
:class:`~scheduler.errors.StoreError` at this boundary.
"""
