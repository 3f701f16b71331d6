"""The URL of the Redis server the lock store and socket.io tests use: every machine that runs
`make test` has one (README, "Commands"); SUPPORTBOT_TEST_REDIS_URL points elsewhere."""
import os

REDIS_URL = os.environ.get("SUPPORTBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
