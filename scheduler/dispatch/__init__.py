"""The one contract between whoever hands out an attempt (the beat, the API's manual runs,
the workers' follow-ups) and the workers: task names, routing, the message, publishing.
It imports neither :mod:`beat` nor :mod:`workers`.
"""
