"""The ``takt`` command: the supervisor of ``takt up``, the embedded Valkey, the services'
entry points, operator commands and the commands on jobs and collections over the API.
"""
