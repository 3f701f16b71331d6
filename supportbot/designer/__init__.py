"""Tools for the conversation data: generated form rules and `rasa data validate` without the
warnings Rasa 3.6 gives for responses that forms and actions say (docs/designer-guide.md)."""
