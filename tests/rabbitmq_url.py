"""The URL of the RabbitMQ server the collector's RabbitMQ tests use: every machine that runs
`make test` has one (README, "Commands"); SUPPORTBOT_TEST_RABBITMQ_URL points elsewhere."""
import os

RABBITMQ_URL = os.environ.get("SUPPORTBOT_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
