"""Test-wide guards: fake AWS credentials so no test can reach a real account, one region, quiet libraries."""

from __future__ import annotations

import logging
import os

# Set before any boto3 client exists. Real credentials in the developer's environment are never used by tests.
for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_METRICS_NAMESPACE": "WorkosDirectorySyncTest",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    "AWS_EC2_METADATA_DISABLED": "true",  # never ask the instance metadata service for credentials
}.items():
    os.environ[_name] = _value
for _name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
    os.environ.pop(_name, None)
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull

logging.getLogger("werkzeug").setLevel(logging.ERROR)

# A real PostgreSQL for the SQL sink's tests, started only when a test asks for it (tests/support/postgres.py).
pytest_plugins = ["tests.support.postgres"]
