"""Figures as bytes and as self-contained <img> tags (base64 data URIs): the one home for
embedding images in crossgen's HTML pages (run report and sweep report)."""

from __future__ import annotations

import base64
import html
import io
from typing import Any, Optional


def png_bytes(fig: Any, dpi: int = 100, bbox_inches: Optional[str] = None) -> bytes:
    """A matplotlib Figure rendered to PNG (bbox_inches="tight" crops the margins)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches=bbox_inches)
    return buf.getvalue()


def img_tag(png: bytes, alt: str) -> str:
    """An <img> that needs no file and no network: the PNG inlined as a data URI."""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
