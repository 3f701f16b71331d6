"""The HTTP routes of the billing service, one module per resource, each with `add_routes(app)`.

A route reads and validates the request (`validation`), then either calls a `Store` resource in
a worker thread or, for a write, `common.keyed_write`. Every route needs an API key unless it is
registered with `ctx_public=True` (the `health` and `browser` routes); `service.create_app`
adds them all.
"""
