"""Admission-ticket QR codes: made by the edge (segno), read by the station (OpenCV).

The camera-like frames are a real photo (obama2) at 640x480 with a printed ticket held
up in front of it: the whole ticket card, scaled down, turned and tilted in perspective.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import segno

from edge_server.services.tickets import CARD_PX, TicketError, qr_image, ticket_pdf, ticket_png
from examkiosk_wire.face import load_image
from examkiosk_wire.tickets import parse_payload, ticket_payload
from provisioning import assets
from station.vision.qr import decode_ticket

TICKET = "20240001"


@pytest.fixture(scope="module")
def room() -> np.ndarray:
    """The camera's view without a ticket: obama2 at 640x480."""
    return cv2.resize(load_image(assets.face_images()["obama2"]), (640, 480),
                      interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def card() -> np.ndarray:
    png = ticket_png(TICKET, "欧阳明", "2026 春季面试 第1场", "A-12")
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


def hold_up(frame: np.ndarray, card: np.ndarray, width: float, centre: tuple[float, float],
            angle: float = 0.0, tilt: float = 0.0) -> np.ndarray:
    """``card`` pasted into ``frame`` ``width`` px wide, turned by ``angle`` degrees, its
    top edge foreshortened by ``tilt`` (a card leaning back), as a camera would see it."""
    h, w = card.shape[:2]
    corners = np.float32([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    placed = corners * (width / w)
    placed[:2, 0] *= 1 - tilt  # the top edge is further away
    turn = np.deg2rad(angle)
    rotation = np.float32([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    placed = placed @ rotation.T + np.float32(centre)
    matrix = cv2.getPerspectiveTransform(corners + np.float32([w / 2, h / 2]), placed)
    size = (frame.shape[1], frame.shape[0])
    warped = cv2.warpPerspective(card, matrix, size, flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), matrix, size)
    out = frame.copy()
    out[mask > 0] = warped[mask > 0]
    return out


@pytest.mark.parametrize(("width", "angle", "tilt"), [
    (440, 0, 0),     # held close, square to the camera
    (320, 8, 0.1),   # turned and leaning back
    (250, -12, 0.15),
    (220, 20, 0.2),  # further away: the code is about 70 px across
])
def test_ticket_held_up_to_the_camera_is_read(room, card, width, angle, tilt):
    frame = hold_up(room, card, width, (330, 330), angle, tilt)
    assert decode_ticket(frame) == TICKET


def test_ticket_read_from_a_jpeg_camera_frame(room, card):
    frame = hold_up(room, card, 300, (320, 320), 5, 0.1)
    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 70])
    assert ok
    assert decode_ticket(cv2.imdecode(jpeg, cv2.IMREAD_COLOR)) == TICKET


def test_frame_without_a_code_gives_none(room):
    assert decode_ticket(room) is None
    assert decode_ticket(np.full((480, 640, 3), 255, np.uint8)) is None


@pytest.mark.parametrize("payload", [
    "https://example.com/ticket/20240001",
    "20240001",  # the bare number: not made by examkiosk
    "EXAMKIOSK-TICKET:",  # no number
    "EXAMKIOSK-TICKET:2024 0001",  # not a ticket number
    "OTHER-TICKET:20240001",
    "".join(np.random.default_rng(4).choice(list("abcdefghijklmnopqrstuvwxyz0123456789"), 40)),
])
def test_other_qr_codes_are_ignored(room, payload):
    code = segno.make_qr(payload, error="m")
    modules = np.array(list(code.matrix_iter(scale=5, border=4)), dtype=bool)
    image = np.where(modules, 0, 255).astype(np.uint8)
    frame = room.copy()
    top, left = 240 - image.shape[0] // 2, 320 - image.shape[1] // 2
    frame[top:top + image.shape[0], left:left + image.shape[1]] = image[..., None]
    # the code itself is readable: only its payload is refused
    assert cv2.QRCodeDetector().detectAndDecode(frame)[0] == payload
    assert decode_ticket(frame) is None


def test_ticket_png_decodes_back_to_the_ticket_number():
    png = ticket_png("A2026-0007", "张伟", "2026 春季面试", "B-3")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert (image.shape[1], image.shape[0]) == CARD_PX
    assert decode_ticket(image) == "A2026-0007"


def test_ticket_pdf_is_a_pdf():
    pdf = ticket_pdf(TICKET, "欧阳明", "2026 春季面试 第1场", "A-12")
    assert pdf.startswith(b"%PDF")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert b"/MediaBox" in pdf


def test_chinese_name_is_drawn_with_a_cjk_font():
    """A font without CJK glyphs draws every character as the same box ("tofu"): with Noto
    Sans CJK, two different names give different pixels where the name goes."""
    first = ticket_png(TICKET, "张伟", "场次", "A-1")
    second = ticket_png(TICKET, "李娜", "场次", "A-1")
    a = cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_GRAYSCALE)
    b = cv2.imdecode(np.frombuffer(second, np.uint8), cv2.IMREAD_GRAYSCALE)
    differs = np.argwhere(a != b)
    assert differs.size, "the two names were drawn identically"
    # The difference is confined to the name line, in the left (text) column.
    assert differs[:, 1].max() < CARD_PX[0] * 0.6


def test_long_names_are_shortened_to_fit():
    png = ticket_png(TICKET, "阿" * 60, "场次", "A-1")
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert decode_ticket(image) == TICKET  # the QR code is not drawn over


def test_ticket_numbers_that_cannot_be_encoded_are_refused():
    with pytest.raises(TicketError):
        ticket_png("2024 0001", "张伟", "场次", "A-1")
    with pytest.raises(TicketError):
        qr_image("", 200)


def test_payload_round_trip():
    assert ticket_payload(" 20240001 ") == "EXAMKIOSK-TICKET:20240001"
    assert parse_payload(ticket_payload("A-7_b")) == "A-7_b"
    assert parse_payload("EXAMKIOSK-TICKET:" + "1" * 33) is None
    with pytest.raises(ValueError):
        ticket_payload("票号")
