"""Album art: the cover from the file's tags, or a generated placeholder.

The placeholder is an SVG made from the track's id and title: a two-colour
gradient picked from a hue derived from the id (stable for a track, different
between tracks), a stylised waveform and the title's initials, so a library
without covers still reads at a glance.
"""

from __future__ import annotations

import hashlib
import math
from xml.sax.saxutils import escape


def _initials(title: str) -> str:
    words = [w for w in title.replace("_", " ").replace("-", " ").split() if w[:1].isalnum()]
    if not words:
        return "♪"
    if len(words) == 1:
        return words[0][:2].upper()
    return (words[0][0] + words[1][0]).upper()


def placeholder_svg(seed: str, title: str) -> str:
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    hue = digest[0] * 360 // 256
    hue2 = (hue + 35 + digest[1] % 50) % 360
    bars = []
    count = 28
    for i in range(count):
        # A smooth random-looking envelope: a few sines with phases from the hash.
        level = (
            0.45
            + 0.25 * math.sin(i * 0.55 + digest[2] / 40)
            + 0.18 * math.sin(i * 1.7 + digest[3] / 30)
            + 0.12 * ((digest[4 + i % 20] / 255) - 0.5)
        )
        height = max(8.0, min(150.0, level * 150))
        x = 30 + i * 8.6
        top = 200 - height / 2
        bars.append(
            f'<rect x="{x:.1f}" y="{top:.1f}" width="4.4" height="{height:.1f}" rx="2.2"/>'
        )
    initials = escape(_initials(title))
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 300 300" width="300" height="300">'
        "<defs>"
        f'<linearGradient id="g" x1="0" y1="0" x2="1" y2="1">'
        f'<stop offset="0" stop-color="hsl({hue},62%,46%)"/>'
        f'<stop offset="1" stop-color="hsl({hue2},70%,22%)"/>'
        "</linearGradient>"
        "</defs>"
        '<rect width="300" height="300" fill="url(#g)"/>'
        f'<g fill="rgba(255,255,255,0.22)">{"".join(bars)}</g>'
        f'<text x="26" y="86" font-family="system-ui,DejaVu Sans,sans-serif" font-size="58" '
        f'font-weight="800" fill="rgba(255,255,255,0.92)" letter-spacing="-1">{initials}</text>'
        "</svg>"
    )
