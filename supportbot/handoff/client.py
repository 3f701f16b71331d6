"""The agents' side of the relay: calls to the Rasa server that holds the conversations (its
relay route and its HTTP API), with Rasa's API token. Errors are supportbot.errors'."""
from __future__ import annotations

from typing import Any, Dict, Optional
from urllib.parse import quote

import requests

from supportbot import local_secrets, settings
from supportbot.errors import BackendUnavailable, NotFound, Unauthorized

SOCKETIO_PREFIX = "/webhooks/socketio"  # the socket.io channel's routes
SYNC_PATH = "/handoff/sync"  # the relay's route (supportbot.handoff.relay)


class RasaRelay:
    def __init__(self, rasa_url: str, token: Optional[str], timeout: float = 10) -> None:
        self.url, self.token, self.timeout = rasa_url.rstrip("/"), token, timeout

    @classmethod
    def from_env(cls) -> RasaRelay:
        """RASA_URL, and RASA_AUTH_TOKEN (else the one `supportbot run` keeps in var/secrets.env)."""
        token = settings.get("RASA_AUTH_TOKEN") or local_secrets.load(create=False).get("RASA_AUTH_TOKEN")
        return cls(settings.get("RASA_URL"), token)

    def sync(self, conversation_id: str) -> Dict[str, Any]:
        """Have Rasa put the stored support messages into the conversation and the customer's
        chat (supportbot.handoff.relay). Returns the relay's answer: sockets, delivered, ..."""
        url = f"{self.url}{SOCKETIO_PREFIX}{SYNC_PATH}"
        response = self._call("POST", url, json={"conversation_id": conversation_id},
                              headers={"Authorization": f"Bearer {self.token or ''}"})
        body = _json(response)
        if response.status_code == 404 and body.get("code") == "unknown_conversation":
            raise NotFound(body["error"], status=404)
        if response.status_code == 404:
            raise BackendUnavailable(
                f"{self.url} has no handoff relay: its credentials.yml must use "
                "supportbot.channels.RedactingSocketIOInput (Rasa's own API would answer 200 and deliver "
                "nothing).", code="no_relay", status=404)
        if response.status_code in (401, 403):
            raise Unauthorized(f"Rasa refused the relay call: {body.get('error') or response.status_code}",
                               status=response.status_code)
        if not response.ok:
            raise BackendUnavailable(f"Rasa's relay answered HTTP {response.status_code}: "
                                     f"{body.get('error') or response.text[:200]}", status=response.status_code)
        return body

    def tracker(self, conversation_id: str) -> Dict[str, Any]:
        """The conversation as Rasa has it (GET /conversations/<id>/tracker)."""
        url = f"{self.url}/conversations/{quote(conversation_id, safe='')}/tracker"
        response = self._call("GET", url, params={"token": self.token} if self.token else {})
        if response.status_code in (401, 403):
            raise Unauthorized("Rasa refused the API token (RASA_AUTH_TOKEN).", status=response.status_code)
        if not response.ok:
            raise BackendUnavailable(f"Rasa answered HTTP {response.status_code} for the conversation",
                                     status=response.status_code)
        return _json(response)

    def _call(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            return requests.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as error:
            raise BackendUnavailable(f"Rasa is unreachable at {self.url}: {type(error).__name__}") from None


def _json(response: requests.Response) -> Dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
