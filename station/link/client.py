"""The station API of the edge (``<base_url>/api/v1``), called with the station's bearer token.

Transport and HTTP failures become :class:`EdgeUnavailable` (try again later) or
:class:`EdgeRejected` (the edge said no; carries the edge's error code)."""
from __future__ import annotations

import base64
import logging
import time
from typing import Any
from urllib.parse import quote

import requests

from examkiosk_wire.api import API_PREFIX
from examkiosk_wire.pinning import UntrustedServer, pinned_session
from examkiosk_wire.version import package_version
from station.link.errors import EdgeRejected, EdgeUnavailable, EdgeUntrusted

logger = logging.getLogger(__name__)


class EdgeClient:
    """The station API of one edge server. Every call carries the station's bearer token."""

    # Pauses before each repeat of a call that is safe to repeat (``idempotent=True``), when the edge
    # did not answer or failed: a candidate at the kiosk should not see a passing stall of the edge
    # or a kept-alive connection the edge closed just as the request went out.
    RETRY_PAUSES = (0.5, 1.5)

    def __init__(self, base_url: str, token: str, timeout: float = 5.0, *, fingerprint: str | None = None):
        """``fingerprint``: the edge certificate's SHA-256 the station pins for https:// (``examkiosk_wire.pinning``)."""
        base = base_url.rstrip("/")
        if base.endswith(API_PREFIX):
            base = base[: -len(API_PREFIX)]
        self.base_url = base
        self.api_url = base + API_PREFIX
        self.timeout = timeout
        self.session = pinned_session(fingerprint)
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["User-Agent"] = f"examkiosk-station/{package_version()}"

    @property
    def uploads_url(self) -> str:
        """The tus creation endpoint."""
        return self.api_url + "/uploads/"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "EdgeClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, json: Any = None, idempotent: bool = False) -> Any:
        """One API call; ``idempotent`` ones are repeated (``RETRY_PAUSES``) while the edge is unavailable."""
        pauses = list(self.RETRY_PAUSES) if idempotent else []
        while True:
            try:
                return self._request_once(method, path, json=json)
            except EdgeUntrusted:
                raise
            except EdgeUnavailable as exc:
                if not pauses:
                    raise
                logger.info("%s; trying again", exc)
                time.sleep(pauses.pop(0))

    def _request_once(self, method: str, path: str, *, json: Any = None) -> Any:
        url = f"{self.api_url}/{path.lstrip('/')}"
        try:
            resp = self.session.request(method, url, json=json, timeout=self.timeout)
        except UntrustedServer as exc:
            raise EdgeUntrusted(str(exc)) from exc
        except requests.RequestException as exc:
            raise EdgeUnavailable(f"{method} {url}: {exc.__class__.__name__}: {exc}") from exc
        if resp.status_code >= 500:
            raise EdgeUnavailable(f"{method} {url}: the edge answered {resp.status_code}")
        if resp.status_code >= 400:
            code, message = f"http_{resp.status_code}", resp.text[:200].strip() or resp.reason or ""
            try:
                body = resp.json()
            except ValueError:
                body = None
            if isinstance(body, dict):
                code = str(body.get("code") or code)
                message = str(body.get("error") or message)
            raise EdgeRejected(resp.status_code, code, message)
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError as exc:
            raise EdgeUnavailable(f"{method} {url}: the edge answered something that is not JSON") from exc

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, json: Any = None, *, idempotent: bool = False) -> Any:
        return self.request("POST", path, json=json, idempotent=idempotent)

    # The station API (edge_server/api/routes.py).
    def time(self) -> float:
        return float(self.get("/time")["server_time"])

    def schedule(self) -> dict[str, Any]:
        return self.get("/schedule")

    def candidate(self, ticket_no: str) -> dict[str, Any]:
        return self.get(f"/candidates/{quote(ticket_no, safe='')}")

    def open_attempt(self, ticket_no: str) -> dict[str, Any]:
        """The candidate's attempt; the edge returns the same one when asked again."""
        return self.post("/attempts", {"ticket_no": ticket_no}, idempotent=True)

    def attempt(self, attempt_id: str) -> dict[str, Any]:
        return self.get(f"/attempts/{quote(attempt_id, safe='')}")

    def register_key(self, public_key_b64: str) -> dict[str, Any]:
        """Register the station's Ed25519 chain-signing key (idempotent for the same key)."""
        return self.post("/station-key", {"public_key": public_key_b64})

    def face_try(self, attempt_id: str, *, matched: bool, distance: float | None = None,
                 liveness: str | None = None, frame_jpeg: bytes | None = None) -> dict[str, Any]:
        """Log one face try with its distance, the liveness outcome and the frame it was decided on."""
        body: dict[str, Any] = {"matched": matched, "distance": distance, "liveness": liveness}
        if frame_jpeg:
            body["frame_jpeg"] = base64.b64encode(frame_jpeg).decode()
        return self.post(f"/attempts/{quote(attempt_id, safe='')}/face-tries", body)

    def request_review(self, attempt_id: str, best_distance: float | None = None,
                       frame_jpeg: bytes | None = None) -> dict[str, Any]:
        """Ask for a manual review; the best captured frame goes with it for the proctor."""
        body: dict[str, Any] = {"best_distance": best_distance}
        if frame_jpeg:
            body["frame_jpeg"] = base64.b64encode(frame_jpeg).decode()
        return self.post(f"/attempts/{quote(attempt_id, safe='')}/review", body)

    def redeem_fallback_code(self, attempt_id: str, code: str) -> dict[str, Any]:
        """A proctor's one-time code instead of the review; EdgeRejected carries why it was refused."""
        return self.post(f"/attempts/{quote(attempt_id, safe='')}/fallback-code", {"code": code})

    def review(self, attempt_id: str) -> dict[str, Any]:
        return self.get(f"/attempts/{quote(attempt_id, safe='')}/review")

    def draw_lot(self, attempt_id: str) -> dict[str, Any]:
        """The attempt's lot number; once drawn, the edge answers the same one."""
        return self.post(f"/attempts/{quote(attempt_id, safe='')}/lot", idempotent=True)

    def event(self, kind: str, payload: dict[str, Any] | None = None, *, attempt: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": kind, "payload": payload or {}}
        if attempt is not None:
            body["attempt"] = attempt
        return self.post("/events", body)

    def sealed_paper(self, sitting_id: str) -> dict[str, Any]:
        """The sitting's paper as ciphertext (any time): ciphertext, nonce, sha256."""
        return self.get(f"/sittings/{quote(sitting_id, safe='')}/paper/sealed")

    def paper_key(self, sitting_id: str) -> dict[str, Any]:
        """The paper key from the start time on; before it EdgeRejected ``paper_sealed``."""
        return self.get(f"/sittings/{quote(sitting_id, safe='')}/paper/key")

    def finish(self, attempt_id: str, segments: list[str], reason: str = "") -> dict[str, Any]:
        return self.post(f"/attempts/{quote(attempt_id, safe='')}/finish", {"segments": segments, "reason": reason})

    def upload_status(self, attempt_id: str) -> dict[str, Any]:
        return self.get(f"/attempts/{quote(attempt_id, safe='')}/uploads")
