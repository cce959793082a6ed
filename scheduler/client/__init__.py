"""The Python client of the Takt API, for producers (enqueue jobs) and operators.

::

    from scheduler.client import SchedulerClient

    with SchedulerClient("http://127.0.0.1:8000", key) as takt:
        takt.create_collection("billing")
        takt.create_job("billing", "invoice-42", {
            "startTime": "2030-01-01T09:00:00Z",
            "action": {"type": "Http", "request": {"uri": "https://example.com/run",
                                                     "method": "POST"}},
        })

:class:`AsyncSchedulerClient` has the same methods for asyncio. Both raise the project's
exceptions (``scheduler.errors``); see ``docs/client.md`` for the mapping.
"""

from scheduler.client._async import AsyncSchedulerClient
from scheduler.client._routes import API_VERSION, USE_CLIENT_DEFAULT, UseClientDefault
from scheduler.client._sync import SchedulerClient
from scheduler.client.results import Collection, HistoryRecord, Job, Principal

__all__ = [
    "API_VERSION",
    "USE_CLIENT_DEFAULT",
    "AsyncSchedulerClient",
    "Collection",
    "HistoryRecord",
    "Job",
    "Principal",
    "SchedulerClient",
    "UseClientDefault",
]
