"""Inline SVG charts for the drift admin pages: no JavaScript, no external assets.

Every number is formatted by this module and every label goes through `escape`, so the SVG is
safe to mark safe. Charts carry a <title> for screen readers.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT, PAD = 640, 220, 36


def psi_bars(
    values: Sequence[tuple[str, float]], *, threshold: float, title: str = "PSI by variable"
) -> SafeString:
    """Horizontal-axis bar chart of PSI per variable with the alert threshold as a dashed line;
    bars past the threshold are drawn in red."""
    if not values:
        return mark_safe("<p>No drift reports yet (the first run of a kind has no reference).</p>")
    top = max(max(v for _, v in values), threshold) * 1.15 or 1.0
    n = len(values)
    slot = (WIDTH - 2 * PAD) / n
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" '
        f'height="{HEIGHT + 60}" viewBox="0 0 {WIDTH} {HEIGHT + 60}" class="drift-chart">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, value) in enumerate(values):
        h = (HEIGHT - 2 * PAD) * value / top
        x = PAD + i * slot + slot * 0.15
        y = HEIGHT - PAD - h
        colour = "#ba2121" if value > threshold else "#417690"
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
            f'fill="{colour}"><title>{escape(label)}: {value:.3f}</title></rect>'
        )
        parts.append(
            f'<text x="{x + slot * 0.35:.1f}" y="{HEIGHT - PAD + 12}" font-size="9" '
            f'text-anchor="end" transform="rotate(-40 {x + slot * 0.35:.1f} '
            f'{HEIGHT - PAD + 12})">{escape(label)}</text>'
        )
    ty = HEIGHT - PAD - (HEIGHT - 2 * PAD) * threshold / top
    parts.append(
        f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#ba2121" '
        f'stroke-dasharray="4 3"/><text x="{WIDTH - PAD}" y="{ty - 4:.1f}" font-size="10" '
        f'text-anchor="end">alert {threshold:g}</text>'
    )
    parts.append(
        f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="{HEIGHT - PAD}" y2="{HEIGHT - PAD}" '
        'stroke="#333"/></svg>'
    )
    return mark_safe("".join(parts))  # noqa: S308  (all values formatted or escaped above)


def share_bars(
    expected: Sequence[float], actual: Sequence[float], *, title: str = "Shares per bin"
) -> SafeString:
    """Paired bars per bin: the reference run's share (grey) and the current run's (blue)."""
    n = len(expected)
    if n == 0:
        return mark_safe("<p>No bins.</p>")
    top = max(max(expected), max(actual)) * 1.15 or 1.0
    slot = (WIDTH - 2 * PAD) / n
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" class="drift-chart">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
        for j, (value, colour) in enumerate(((e, "#999"), (a, "#417690"))):
            h = (HEIGHT - 2 * PAD) * value / top
            x = PAD + i * slot + slot * (0.1 + 0.4 * j)
            parts.append(
                f'<rect x="{x:.1f}" y="{HEIGHT - PAD - h:.1f}" width="{slot * 0.38:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>bin {i + 1}: '
                f"{'previous' if j == 0 else 'current'} {value:.3f}</title></rect>"
            )
    parts.append(
        f'<text x="{PAD}" y="14" font-size="10">grey: previous run, blue: this run</text></svg>'
    )
    return mark_safe("".join(parts))  # noqa: S308  (all values formatted or escaped above)
