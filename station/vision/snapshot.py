"""The camera snapshot a station sends for the proctors' dashboard: small, low quality, no overlay."""
from __future__ import annotations

import cv2
import numpy as np

WIDTH = 320
QUALITY = 60
# The edge refuses anything larger (edge_server.services.snapshots.MAX_BYTES).
MAX_BYTES = 200_000


def snapshot_jpeg(image: np.ndarray, *, width: int = WIDTH, quality: int = QUALITY) -> bytes:
    """``image`` (BGR) scaled to ``width`` pixels wide (never up) as a JPEG of ``quality``."""
    if image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise ValueError(f"expected a BGR image, got shape {image.shape}")
    h, w = image.shape[:2]
    if w > width:
        image = cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("the frame could not be encoded as JPEG")
    return data.tobytes()
