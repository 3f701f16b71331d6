"""The bounded load test (issue #18 item 3; docs/benchmarks.md#load-test): Locust scenarios in
locustfile.py, the run and the stores' check in __main__.py and checker.py."""
