"""pytest plugins the whole suite loads (registered in tests/conftest.py): the assistant's
stack shared by tests/e2e and tests/web, and the `slow` mark."""
