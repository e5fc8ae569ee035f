"""Prefect flows, deployments and the ``cropcredit`` command line. Orchestration only.

Importing this package sets the offline Prefect defaults (no telemetry, a patient ephemeral
server) unless the environment already chose otherwise, and routes the library loggers
(``geo``, ``vision``, ``scoring``) into Prefect's run logs.
"""

import os

for _key, _value in {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "geo,vision,scoring,flows",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}.items():
    os.environ.setdefault(_key, _value)
