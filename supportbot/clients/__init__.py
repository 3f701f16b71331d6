"""One small HTTP client per external system; each raises the typed errors of `supportbot.errors`.

Actions use these clients and never build URLs themselves.
"""
