"""The segment size over time, as inline SVG drawn on the server (no JavaScript, no CDN).

Takes (time, size) aggregates only; every text that reaches the SVG is escaped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD = 640, 220, 56, 28, 12


def size_chart_svg(points: Sequence[tuple[dt.datetime, int]]) -> SafeString:
    """A line of the segment's size after each refresh, oldest left; a note when empty."""
    if not points:
        return mark_safe(  # noqa: S308 (constant markup)
            f'<svg class="segment-size-chart" role="img" width="{WIDTH}" height="40" '
            'aria-label="Segment size over time: no refresh yet">'
            '<text x="8" y="24" font-size="13" fill="#666">No refresh yet.</text></svg>'
        )
    sizes = [size for _, size in points]
    top = max(max(sizes), 1)
    plot_w = WIDTH - PAD_LEFT - PAD
    plot_h = HEIGHT - PAD_BOTTOM - PAD
    step = plot_w / max(len(points) - 1, 1)

    def xy(i: int, size: int) -> tuple[float, float]:
        return PAD_LEFT + i * step, PAD + plot_h - plot_h * size / top

    coords = [xy(i, size) for i, size in enumerate(sizes)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#1f77b4">'
        f"<title>{escape(at.strftime('%Y-%m-%d %H:%M'))}: {size:,}</title></circle>"
        for (x, y), (at, size) in zip(coords, points, strict=True)
    )
    first, last = points[0][0], points[-1][0]
    labels = (
        f'<text x="{PAD_LEFT - 6}" y="{PAD + 4}" font-size="11" text-anchor="end">{top:,}</text>'
        f'<text x="{PAD_LEFT - 6}" y="{PAD + plot_h + 4}" font-size="11" text-anchor="end">0</text>'
        f'<text x="{PAD_LEFT}" y="{HEIGHT - 8}" font-size="11">'
        f"{escape(first.strftime('%Y-%m-%d %H:%M'))}</text>"
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" font-size="11" text-anchor="end">'
        f"{escape(last.strftime('%Y-%m-%d %H:%M'))}</text>"
    )
    axes = (
        f'<line x1="{PAD_LEFT}" y1="{PAD}" x2="{PAD_LEFT}" y2="{PAD + plot_h}" stroke="#999"/>'
        f'<line x1="{PAD_LEFT}" y1="{PAD + plot_h}" x2="{WIDTH - PAD}" y2="{PAD + plot_h}" '
        'stroke="#999"/>'
    )
    return mark_safe(  # noqa: S308 (numbers and escaped text only)
        f'<svg class="segment-size-chart" role="img" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" aria-label="Segment size over time">'
        f"{axes}{labels}"
        f'<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{line}"/>{dots}</svg>'
    )
