"""The URL of the PostgreSQL server the Postgres variants of the tests use: every machine that
runs `make test` has one (README, "Commands"); SUPPORTBOT_TEST_POSTGRES_URL points elsewhere."""
import os

POSTGRES_URL = os.environ.get("SUPPORTBOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
