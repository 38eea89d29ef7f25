"""Why an attempt cannot be watched back."""
from __future__ import annotations


class WatchbackUnavailable(Exception):
    """There is nothing to watch back: ``code`` says why (the kiosk shows its text), ``status``
    is the HTTP status the kiosk answers with.

    Codes: ``not_done`` (the attempt is not over and uploaded), ``not_mock`` (a formal attempt is
    never played back), ``no_recording`` (the journal has no segment of it), ``recording_deleted``
    (retention deleted its files), ``recording_unreadable`` (a file could not be remuxed),
    ``not_prepared`` (a file asked for before the watch-back was opened).
    """

    def __init__(self, code: str, message: str, status: int):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
