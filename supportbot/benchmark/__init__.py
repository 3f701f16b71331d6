"""NLU benchmark harness: train a Rasa config on a public or project data set with Rasa's own
training code, score it next to Rasa's default pipeline, and write JSON, Markdown and plots.

Entry points: `supportbot bench ...` and `python -m supportbot.benchmark ...` (see command.py);
docs/benchmarks.md describes the method.
"""
