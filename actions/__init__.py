"""rasa-sdk actions: conversation logic only, one module per topic.

Talking to systems lives in supportbot.clients, storing in supportbot.store; this package
reads slots and metadata, calls them, and returns events and responses.
"""
