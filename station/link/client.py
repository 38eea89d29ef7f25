"""The station API of the edge (``<base_url>/api/v1``), called with the station's bearer token.

Transport and HTTP failures become :class:`EdgeUnavailable` (try again later) or
:class:`EdgeRejected` (the edge said no; carries the edge's error code)."""
from __future__ import annotations

import base64
import logging
import time
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from pydantic import BaseModel, ValidationError

from examkiosk_wire import api
from examkiosk_wire.api import API_PREFIX
from examkiosk_wire.pinning import UntrustedServer, pinned_session
from examkiosk_wire.version import package_version
from station.link.errors import EdgeRejected, EdgeUnavailable, EdgeUntrusted

logger = logging.getLogger(__name__)

R = TypeVar("R", bound=BaseModel)


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

    def _reply(self, model: type[R], data: Any, what: str) -> R:
        """The edge's answer as its model (``examkiosk_wire.api``); an answer that is not one is a failing edge."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "the body"
            raise EdgeUnavailable(f"{what}: the edge answered something this station cannot read "
                                  f"({where}: {first['msg']})") from exc

    # The station API (edge_server/api/routes.py); each call answers its reply model.
    def time(self) -> float:
        return self._reply(api.ServerTime, self.get("/time"), "GET /time").server_time

    def schedule(self) -> api.ScheduleReply:
        return self._reply(api.ScheduleReply, self.get("/schedule"), "GET /schedule")

    def candidate(self, ticket_no: str) -> api.CandidateInfo:
        return self._reply(api.CandidateInfo, self.get(f"/candidates/{quote(ticket_no, safe='')}"), "GET /candidates")

    def open_attempt(self, ticket_no: str) -> api.AttemptInfo:
        """The candidate's attempt; the edge returns the same one when asked again."""
        data = self.post("/attempts", api.OpenAttempt(ticket_no=ticket_no).model_dump(), idempotent=True)
        return self._reply(api.AttemptInfo, data, "POST /attempts")

    def attempt(self, attempt_id: str) -> api.AttemptInfo:
        return self._reply(api.AttemptInfo, self.get(_attempt(attempt_id)), "GET /attempts/<id>")

    def register_key(self, public_key_b64: str) -> api.KeyReply:
        """Register the station's Ed25519 chain-signing key (idempotent for the same key)."""
        data = self.post("/station-key", api.StationKey(public_key=public_key_b64).model_dump())
        return self._reply(api.KeyReply, data, "POST /station-key")

    def face_try(self, attempt_id: str, *, matched: bool, distance: float | None = None,
                 liveness: str | None = None, frame_jpeg: bytes | None = None) -> api.FaceTryReply:
        """Log one face try with its distance, the liveness outcome and the frame it was decided on."""
        body = api.FaceTry(matched=matched, distance=distance, liveness=liveness, frame_jpeg=_b64(frame_jpeg))
        data = self.post(_attempt(attempt_id, "face-tries"), body.model_dump())
        return self._reply(api.FaceTryReply, data, "POST face-tries")

    def request_review(self, attempt_id: str, best_distance: float | None = None,
                       frame_jpeg: bytes | None = None) -> api.ReviewInfo:
        """Ask for a manual review; the best captured frame goes with it for the proctor."""
        body = api.ReviewRequest(best_distance=best_distance, frame_jpeg=_b64(frame_jpeg))
        data = self.post(_attempt(attempt_id, "review"), body.model_dump())
        return self._reply(api.ReviewInfo, data, "POST review")

    def redeem_fallback_code(self, attempt_id: str, code: str) -> api.FallbackReply:
        """A proctor's one-time code instead of the review; EdgeRejected carries why it was refused."""
        data = self.post(_attempt(attempt_id, "fallback-code"), api.FallbackCode(code=code).model_dump())
        return self._reply(api.FallbackReply, data, "POST fallback-code")

    def review(self, attempt_id: str) -> api.ReviewInfo:
        return self._reply(api.ReviewInfo, self.get(_attempt(attempt_id, "review")), "GET review")

    def draw_lot(self, attempt_id: str) -> api.LotReply:
        """The attempt's lot number; once drawn, the edge answers the same one."""
        return self._reply(api.LotReply, self.post(_attempt(attempt_id, "lot"), idempotent=True), "POST lot")

    def event(self, kind: str, payload: dict[str, Any] | None = None, *, attempt: str | None = None) -> api.Accepted:
        body = api.StationEvent(kind=kind, payload=payload or {}, attempt=attempt)
        return self._reply(api.Accepted, self.post("/events", body.model_dump()), "POST /events")

    def sealed_paper(self, sitting_id: str) -> api.SealedPaperReply:
        """The sitting's paper as ciphertext (any time): ciphertext, nonce, sha256."""
        data = self.get(f"/sittings/{quote(sitting_id, safe='')}/paper/sealed")
        return self._reply(api.SealedPaperReply, data, "GET paper/sealed")

    def paper_key(self, sitting_id: str) -> api.PaperKeyReply:
        """The paper key from the start time on; before it EdgeRejected ``paper_sealed``."""
        data = self.get(f"/sittings/{quote(sitting_id, safe='')}/paper/key")
        return self._reply(api.PaperKeyReply, data, "GET paper/key")

    def finish(self, attempt_id: str, segments: list[str], reason: str = "") -> api.UploadStatus:
        body = api.Finish(segments=segments, reason=reason)
        return self._reply(api.UploadStatus, self.post(_attempt(attempt_id, "finish"), body.model_dump()), "POST finish")

    def upload_status(self, attempt_id: str) -> api.UploadStatus:
        return self._reply(api.UploadStatus, self.get(_attempt(attempt_id, "uploads")), "GET uploads")

    # Help chat and broadcasts (edge_server/api/messages.py).
    def messages(self, after: int) -> api.MessagePage:
        return self._reply(api.MessagePage, self.get(f"/messages?after={int(after)}"), "GET /messages")

    def ask_for_help(self, reason: str, text: str = "", attempt_id: str | None = None) -> api.MessageReply:
        body = api.HelpRequest(reason=reason, text=text, attempt_id=attempt_id)
        return self._reply(api.MessageReply, self.post("/help", body.model_dump()), "POST /help")

    def acknowledge(self, message_id: int, attempt_id: str | None = None) -> api.AckReply:
        body = api.Acknowledge(attempt_id=attempt_id)
        return self._reply(api.AckReply, self.post(f"/messages/{int(message_id)}/ack", body.model_dump()),
                           "POST ack")


def _attempt(attempt_id: str, *rest: str) -> str:
    return "/".join([f"/attempts/{quote(attempt_id, safe='')}", *rest])


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode() if data else None
