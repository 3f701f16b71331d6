"""Live handoff: a person answers in the customer's own chat and hands back (docs/handoff.md).

- claims.py    claims, hand back, close and support-side messages in the store (conditional updates)
- estimate.py  business hours and the wait estimate; waiting.py: what the customer is told
- messages.py  the texts the customer reads about the handoff
- relay.py     inside Rasa: messages into the tracker and the open chat, resume, the timeout watcher
- client.py    the agents' side of the relay: Rasa over HTTP
- desk.py      the Python API for the agent page, Slack and the CLI (command.py)
- routing.py   which team's queue a handoff goes to, and its priority (routing.yml)
"""
