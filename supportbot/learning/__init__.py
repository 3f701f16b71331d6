"""The learning loop (docs/learning.md): every customer turn, captured from Rasa's event broker
into the learning store, and the turns worth a designer's review marked as candidates."""
