"""Personal invite posters (个人海报): a PNG with the participant's QR, their name's first character and the caption.

The QR encodes the participant's public landing URL (which records the device, then shows the guide's contact
code), not the contact code itself, so every scan passes the anti-fraud fingerprint. No full name, phone or id is
drawn: a poster is meant to be shared. Drawn with Pillow; the QR with segno; Chinese text with the first CJK font
found (SIYU_POSTER_FONT, then WenQuanYi / Noto CJK), else Pillow's built-in font.
"""

from __future__ import annotations

import io
import os
from functools import cache
from pathlib import Path

import segno
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

WIDTH, HEIGHT = 750, 1334  # the 9:16 size WeChat Moments shows well
QR_SIZE = 360
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
)
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def check_background(content: bytes) -> str | None:
    """ "png" or "jpg" when `content` is an image Pillow can read, else None (uploads are checked before saving)."""
    try:
        with Image.open(io.BytesIO(content)) as image:
            image.verify()
            kind = (image.format or "").upper()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    return {"PNG": "png", "JPEG": "jpg"}.get(kind)


@cache
def _font_path() -> str | None:
    configured = os.environ.get("SIYU_POSTER_FONT", "")
    for candidate in (configured, *FONT_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _font(size: int) -> Font:
    path = _font_path()
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(path, size=size)


def _background(content: bytes | None) -> Image.Image:
    if content:
        try:
            with Image.open(io.BytesIO(content)) as image:
                return image.convert("RGB").resize((WIDTH, HEIGHT))
        except (UnidentifiedImageError, OSError, ValueError):
            pass  # a broken upload falls back to the default design rather than failing the poster
    image = Image.new("RGB", (WIDTH, HEIGHT), "#1f6feb")
    draw = ImageDraw.Draw(image)
    # The default design: a two-tone band and a white card for the QR.
    draw.rectangle((0, HEIGHT * 2 // 3, WIDTH, HEIGHT), fill="#174ea6")
    return image


def _centered(draw: ImageDraw.ImageDraw, y: int, text: str, font: Font, fill: str) -> None:
    left, _, right, _ = draw.textbbox((0, 0), text, font=font)
    draw.text(((WIDTH - (right - left)) // 2, y), text, font=font, fill=fill)


def render(
    *, landing_url: str, initial: str, caption: str, campaign_name: str, footer: str, background: bytes | None
) -> bytes:
    """The poster as PNG bytes."""
    image = _background(background)
    draw = ImageDraw.Draw(image)
    _centered(draw, 120, campaign_name[:20], _font(56), "#ffffff")
    if caption:
        _centered(draw, 210, caption[:24], _font(34), "#e8f0fe")
    # The avatar: a circle with the first character of the name.
    cx, cy, r = WIDTH // 2, 380, 70
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill="#ffffff")
    font = _font(72)
    left, top, right, bottom = draw.textbbox((0, 0), initial, font=font)
    draw.text((cx - (right - left) // 2 - left, cy - (bottom - top) // 2 - top), initial, font=font, fill="#1f6feb")
    card = (WIDTH - QR_SIZE) // 2 - 30, 520, (WIDTH + QR_SIZE) // 2 + 30, 520 + QR_SIZE + 60
    draw.rounded_rectangle(card, radius=24, fill="#ffffff")
    qr_png = io.BytesIO()
    segno.make(landing_url, error="m").save(qr_png, kind="png", scale=10, border=2)
    qr_png.seek(0)
    with Image.open(qr_png) as qr:
        image.paste(
            qr.convert("RGB").resize((QR_SIZE, QR_SIZE), Image.Resampling.NEAREST), (card[0] + 30, card[1] + 30)
        )
    _centered(draw, card[3] + 40, footer[:30], _font(32), "#ffffff")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
