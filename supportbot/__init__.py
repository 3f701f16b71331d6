"""Open-source customer-support assistant built on Rasa 3.6: clients, stores and services."""
