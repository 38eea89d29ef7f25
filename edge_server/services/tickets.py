"""Printable admission tickets: the candidate's details and a QR code the station reads.

One ticket is an A6 landscape card (148 x 105 mm) at 300 dpi: the title, the candidate's
name (in Chinese, drawn with Noto Sans CJK SC), ticket number, sitting and seat on the
left, and on the right the QR code (``segno``) carrying ``EXAMKIOSK-TICKET:<ticket_no>``,
the payload ``station.vision.qr.decode_ticket`` accepts. :func:`ticket_png` gives a PNG,
:func:`ticket_pdf` the same card as a one-page PDF at the card's physical size.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import segno
from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import select
from sqlalchemy.orm import Session

from edge_server.errors import EdgeError
from edge_server.models import Candidate, Sitting
from edge_server.services import audit
from examkiosk_wire.tickets import ticket_payload

# Debian's fonts-noto-cjk (scripts/install-system.sh installs it).
CJK_FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
CJK_FONT_BOLD = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc")
_SC_INDEX = 2  # the Simplified Chinese face in the Noto Sans CJK collections

DPI = 300
CARD_MM = (148, 105)  # A6 landscape
_MM = DPI / 25.4
CARD_PX = (round(CARD_MM[0] * _MM), round(CARD_MM[1] * _MM))
QR_MM = 50  # printed QR size including its 4-module quiet zone: easy for a 640x480 camera

TITLE = "准考证  Admission Ticket"
QR_CAPTION = "请在考试机摄像头前出示此二维码"


class TicketError(EdgeError):
    code = "ticket_unavailable"


def ticket_png(ticket_no: str, name: str, sitting_name: str, seat: str, *,
               font_path: Path = CJK_FONT) -> bytes:
    """The admission ticket as PNG bytes (A6 landscape, 300 dpi)."""
    buffer = io.BytesIO()
    _render(ticket_no, name, sitting_name, seat, font_path).save(buffer, format="PNG",
                                                                  dpi=(DPI, DPI), optimize=True)
    return buffer.getvalue()


def ticket_pdf(ticket_no: str, name: str, sitting_name: str, seat: str, *,
               font_path: Path = CJK_FONT) -> bytes:
    """The admission ticket as a one-page PDF, printed at 148 x 105 mm."""
    buffer = io.BytesIO()
    _render(ticket_no, name, sitting_name, seat, font_path).save(
        buffer, format="PDF", resolution=float(DPI), title=f"准考证 {ticket_no}")
    return buffer.getvalue()


def qr_image(ticket_no: str, size_px: int) -> Image.Image:
    """The ticket's QR code (with its quiet zone) as a black-on-white image of about size_px."""
    try:
        payload = ticket_payload(ticket_no)
    except ValueError as exc:
        raise TicketError(str(exc), code="ticket_number_invalid") from exc
    code = segno.make_qr(payload, error="m")
    border = 4
    modules = code.symbol_size(scale=1, border=border)[0]
    scale = max(1, size_px // modules)
    matrix = np.array(list(code.matrix_iter(scale=scale, border=border)), dtype=bool)
    return Image.fromarray(np.where(matrix, 0, 255).astype(np.uint8), mode="L")


def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(str(path), size, index=_SC_INDEX if path.suffix == ".ttc" else 0)
    except OSError as exc:
        raise TicketError(f"cannot load the CJK font {path} (apt-get install fonts-noto-cjk)",
                          code="font_missing") from exc


def _render(ticket_no: str, name: str, sitting_name: str, seat: str,
            font_path: Path) -> Image.Image:
    width, height = CARD_PX
    card = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(card)
    margin = round(8 * _MM)

    qr = qr_image(ticket_no, round(QR_MM * _MM)).convert("RGB")
    qr_left = width - margin - qr.width
    qr_top = (height - qr.height) // 2 - round(3 * _MM)
    card.paste(qr, (qr_left, qr_top))

    bold_path = CJK_FONT_BOLD if font_path == CJK_FONT and CJK_FONT_BOLD.is_file() else font_path
    title_font = _font(bold_path, round(6 * _MM))
    label_font = _font(font_path, round(3.6 * _MM))
    value_font = _font(bold_path, round(5.2 * _MM))
    caption_font = _font(font_path, round(2.8 * _MM))

    draw.text((margin, margin), TITLE, font=title_font, fill="black")
    rule_y = margin + round(10 * _MM)
    draw.line([(margin, rule_y), (width - margin, rule_y)], fill="black", width=max(2, DPI // 100))

    text_right = qr_left - round(4 * _MM)
    y = rule_y + round(5 * _MM)
    for label, value in (("姓名 Name", name), ("准考证号 Ticket No.", ticket_no),
                         ("考试场次 Sitting", sitting_name), ("座位 Seat", seat or "—")):
        draw.text((margin, y), label, font=label_font, fill=(90, 90, 90))
        y += round(4.8 * _MM)
        draw.text((margin, y), _fit(draw, value, value_font, text_right - margin),
                  font=value_font, fill="black")
        y += round(8.2 * _MM)

    caption_width = draw.textlength(QR_CAPTION, font=caption_font)
    draw.text((qr_left + (qr.width - caption_width) / 2, qr_top + qr.height + round(1 * _MM)),
              QR_CAPTION, font=caption_font, fill="black")
    return card


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: float) -> str:
    """``text`` shortened with an ellipsis until it fits in ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def print_ticket(session: Session, centre_id: str, ticket_no: str, fmt: str, *, by: str) -> bytes | None:
    """The candidate's ticket as ``fmt`` (``png`` or ``pdf``), the printing audited; None: no such candidate."""
    cand = session.scalar(select(Candidate).where(Candidate.centre_id == centre_id, Candidate.ticket_no == ticket_no))
    if cand is None:
        return None
    sitting = session.get(Sitting, cand.sitting_id)
    render = ticket_pdf if fmt == "pdf" else ticket_png
    data = render(cand.ticket_no, cand.name, sitting.name if sitting else "", cand.seat)
    audit.append(session, kind="ticket_printed", station_id=None, attempt_id=None, source="staff",
                 payload={"ticket_no": ticket_no, "by": by})
    return data
