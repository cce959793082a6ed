"""The store: the only code that talks to Redis for Takt's own data.

Jobs and collections (:mod:`.jobs`, :mod:`.async_jobs` over :mod:`.resp`), the key layout
(:mod:`.keys`), the stored strings with parts and their codecs (:mod:`.codecs`), the
beat's claims and wake-ups (:mod:`.claims`), the execution ledger (:mod:`.ledger`),
principals (:mod:`.principals`), console sessions and sign-in failures
(:mod:`.sessions`), what is in progress (:mod:`.activity`) and VerifyStore
(:mod:`.verification`). The Lua scripts live in ``lua/``, one file each, loaded by
:mod:`.scripts` (the worker's are called through :mod:`.evalsha`); every Redis error
becomes a :class:`~scheduler.errors.StoreError` at this boundary.
"""
