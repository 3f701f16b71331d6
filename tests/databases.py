"""The PostgreSQL server every machine that runs `make test` has (README, "Commands")."""
import os

POSTGRES_URL = os.environ.get("SUPPORTBOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
