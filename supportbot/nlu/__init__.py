"""Custom Rasa NLU components and the pure functions behind them."""
