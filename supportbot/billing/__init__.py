"""Reference billing & orders service (Sanic + SQLAlchemy) used by the demo and the tests.

Run it with `python -m supportbot.billing`; see docs/billing-service.md.
"""
