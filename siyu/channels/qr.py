"""QR pictures of live codes, drawn by siyu (segno) so downloads and posters work offline.

The QR encodes the code's WeCom link with error correction H (30 % of the modules may be lost), which leaves
room for the brand's logo in the middle: the logo covers at most 22 % of the width (≈ 5 % of the area), on a
white plate so scanners still find the finder patterns. Without an uploaded logo a default mark is drawn.
"""

from __future__ import annotations

import base64
import io
from functools import lru_cache

import segno
from PIL import Image, ImageDraw, UnidentifiedImageError

from siyu.core.errors import ValidationFailed

LOGO_SHARE = 0.22  # of the QR's width, border excluded
BRAND_GREEN = (7, 193, 96)
PNG_SCALE = 12
BORDER = 4


def logo_check(logo: bytes) -> None:
    """Refuse a logo Pillow cannot read (a truncated or mislabelled upload)."""
    try:
        with Image.open(io.BytesIO(logo)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValidationFailed("the logo is not a readable PNG or JPEG image", field="logo") from exc


@lru_cache(maxsize=8)
def default_logo(size: int) -> Image.Image:
    """The default mark: a rounded green square with a white speech bubble (siyu's "chat with the brand")."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((0, 0, size - 1, size - 1), radius=size // 5, fill=BRAND_GREEN)
    pad = size // 4
    draw.ellipse((pad, pad, size - pad, size - pad - size // 10), fill="white")
    tail = [
        (size // 2 - size // 10, size - pad - size // 6),
        (size // 3, size - pad + size // 12),
        (size // 2, size - pad - size // 8),
    ]
    draw.polygon(tail, fill="white")
    return image


def _logo_image(logo: bytes | None, size: int) -> Image.Image:
    if not logo:
        return default_logo(size)
    with Image.open(io.BytesIO(logo)) as source:
        image = source.convert("RGBA")
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    return image


def _qr(link: str) -> segno.QRCode:
    return segno.make(link, error="h", micro=False)


def qr_png(link: str, *, logo: bytes | None = None, scale: int = PNG_SCALE) -> bytes:
    """The QR as PNG with the logo in the middle."""
    qr = _qr(link)
    buffer = io.BytesIO()
    qr.save(buffer, kind="png", scale=scale, border=BORDER)
    buffer.seek(0)
    with Image.open(buffer) as raw:
        canvas = raw.convert("RGBA")
    inner = (qr.symbol_size(scale=1, border=0)[0]) * scale
    logo_size = int(inner * LOGO_SHARE)
    plate = logo_size + 2 * scale
    x = (canvas.width - plate) // 2
    ImageDraw.Draw(canvas).rounded_rectangle((x, x, x + plate, x + plate), radius=scale, fill="white")
    mark = _logo_image(logo, logo_size)
    canvas.alpha_composite(mark, ((canvas.width - mark.width) // 2, (canvas.height - mark.height) // 2))
    out = io.BytesIO()
    canvas.convert("RGB").save(out, format="PNG", optimize=True)
    return out.getvalue()


def qr_svg(link: str, *, logo: bytes | None = None, scale: int = 10) -> bytes:
    """The QR as SVG (vector, for print) with the logo embedded as a PNG data URI on a white plate."""
    qr = _qr(link)
    buffer = io.BytesIO()
    qr.save(buffer, kind="svg", scale=scale, border=BORDER, xmldecl=True, svgns=True, title="QR")
    svg = buffer.getvalue().decode()
    width = qr.symbol_size(scale=scale, border=BORDER)[0]
    inner = qr.symbol_size(scale=scale, border=0)[0]
    logo_size = int(inner * LOGO_SHARE)
    plate = logo_size + 2 * scale
    x = (width - plate) / 2
    mark = _logo_image(logo, logo_size * 2)  # twice the pixels: crisp when the vector is printed large
    png = io.BytesIO()
    mark.save(png, format="PNG")
    data = base64.b64encode(png.getvalue()).decode()
    lx = (width - logo_size) / 2
    overlay = (
        f'<rect x="{x}" y="{x}" width="{plate}" height="{plate}" rx="{scale}" fill="#fff"/>'
        f'<image x="{lx}" y="{lx}" width="{logo_size}" height="{logo_size}" href="data:image/png;base64,{data}"/>'
    )
    return svg.replace("</svg>", overlay + "</svg>").encode()


def qr_data_uri(link: str, *, logo: bytes | None = None) -> str:
    """The PNG as a data URI, for the poster page (printed without another request)."""
    return "data:image/png;base64," + base64.b64encode(qr_png(link, logo=logo, scale=10)).decode()
