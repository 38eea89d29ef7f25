"""Read the admission ticket's QR code from a camera frame.

The ticket (see ``edge_server.services.tickets``) carries ``EXAMKIOSK-TICKET:<ticket_no>``;
a candidate who holds it up to the station camera is identified as if the ticket number
had been typed. Any other QR code (a URL, a payment code, another system's ticket) is
ignored.

OpenCV decodes: its classic ``QRCodeDetector`` and its ArUco-based ``QRCodeDetectorAruco``
(which copes better with a tilted card) on the whole frame, then, when neither finds a
code, both again on the centre half of the frame upscaled twice, which rescues a ticket
held a little too far away. On a 640x480 frame without a code all four tries take about
30 ms together.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import cv2
import numpy as np

from examkiosk_wire.tickets import parse_payload

logger = logging.getLogger(__name__)

def decode_ticket(image_bgr: np.ndarray) -> str | None:
    """The ticket number shown in the frame, or None if there is no examkiosk ticket QR."""
    if image_bgr.ndim == 3:
        grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    elif image_bgr.ndim == 2:
        grey = image_bgr
    else:
        raise ValueError(f"expected a BGR or grey image, got shape {image_bgr.shape}")
    detectors = (cv2.QRCodeDetector(), cv2.QRCodeDetectorAruco())
    for view in _views(grey):
        for detector in detectors:
            text = _decode(detector, view)
            if text:
                ticket = parse_payload(text)
                if ticket is None:
                    logger.debug("ignoring a QR code that is not an examkiosk ticket")
                return ticket
    return None


def _decode(detector: cv2.GraphicalCodeDetector, grey: np.ndarray) -> str:
    try:
        text, _points, _straight = detector.detectAndDecode(grey)
    except cv2.error as exc:  # a degenerate quadrilateral can make the decoder throw
        logger.debug("QR decoding failed: %s", exc)
        return ""
    return text or ""


def _views(grey: np.ndarray) -> Iterator[np.ndarray]:
    """The frame, then (made only if still needed) its centre upscaled."""
    yield grey
    yield _centre_upscaled(grey)


def _centre_upscaled(grey: np.ndarray) -> np.ndarray:
    """The centre half (by width and height) of the frame at twice the size."""
    height, width = grey.shape[:2]
    centre = grey[height // 4: height - height // 4, width // 4: width - width // 4]
    return cv2.resize(centre, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)
