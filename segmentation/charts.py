"""Charts for the admin as inline SVG, drawn on the server: no JavaScript, no CDN, no library.

Each function takes plain aggregates (never per-customer identifiers) and returns markup marked
safe; every text that reaches the SVG is escaped. Colours come from one qualitative palette for
clusters and one sequential ramp for heatmaps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
NOISE_COLOUR = "#c7c7c7"


def cluster_colour(cluster: int) -> str:
    return NOISE_COLOUR if cluster < 0 else PALETTE[cluster % len(PALETTE)]


def _ramp(share: float) -> str:
    """White to dark blue, for a share in [0, 1]."""
    share = min(1.0, max(0.0, share))
    r = round(247 - share * (247 - 8))
    g = round(251 - share * (251 - 48))
    b = round(255 - share * (255 - 107))
    return f"rgb({r},{g},{b})"


def _text_colour(share: float) -> str:
    return "#fff" if share > 0.55 else "#222"


def scatter_svg(
    x: Sequence[float],
    y: Sequence[float],
    clusters: Sequence[int],
    *,
    labels: Mapping[int, str] | None = None,
    width: int = 640,
    height: int = 420,
) -> SafeString:
    """The 2-D PCA projection: one dot per sampled customer, coloured by cluster, with a legend."""
    labels = labels or {}
    pad, legend_w = 36, 180
    plot_w = width - legend_w - pad
    if not x:
        return mark_safe(
            '<svg id="pca-scatter" width="320" height="40">'
            '<text x="0" y="20">No points</text></svg>'
        )
    x_min, x_max = min(x), max(x)
    y_min, y_max = min(y), max(y)
    x_span = (x_max - x_min) or 1.0
    y_span = (y_max - y_min) or 1.0

    def sx(v: float) -> float:
        return pad + (v - x_min) / x_span * (plot_w - pad)

    def sy(v: float) -> float:
        return height - pad - (v - y_min) / y_span * (height - 2 * pad)

    parts = [
        f'<svg id="pca-scatter" class="seg-chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        "<title>Clusters on the first two principal components</title>",
        f'<rect x="{pad}" y="{pad}" width="{plot_w - pad}" height="{height - 2 * pad}" '
        'fill="none" stroke="#ccc"/>',
        f'<text x="{pad}" y="{height - 8}" font-size="11">PC 1</text>',
        f'<text x="4" y="{pad - 8}" font-size="11">PC 2</text>',
    ]
    for vx, vy, c in zip(x, y, clusters, strict=True):
        parts.append(
            f'<circle class="pt" cx="{sx(vx):.1f}" cy="{sy(vy):.1f}" r="2.2" '
            f'fill="{cluster_colour(int(c))}" fill-opacity="0.65"/>'
        )
    for i, c in enumerate(sorted(set(int(c) for c in clusters))):
        ly = pad + 6 + i * 18
        name = labels.get(c, "noise" if c < 0 else f"cluster {c}")
        parts.append(
            f'<rect x="{width - legend_w + 8}" y="{ly}" width="10" height="10" '
            f'fill="{cluster_colour(c)}"/>'
            f'<text class="legend" x="{width - legend_w + 24}" y="{ly + 9}" font-size="11">'
            f"{escape(name)}</text>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (numbers and escaped text only)


def persona_profiles_svg(
    personas: Sequence[Mapping[str, object]], features: Sequence[str], *, cell_w: int = 150
) -> SafeString:
    """Personas side by side: per feature, a bar of the relative difference of the cluster
    median from the population median (clipped to +-200%), with the median written beside it."""
    row_h, head_h, label_w = 26, 46, 170
    width = label_w + cell_w * max(1, len(personas))
    height = head_h + row_h * len(features) + 8
    parts = [
        f'<svg id="persona-profiles" class="seg-chart" role="img" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg">',
        "<title>Persona profiles: difference from the population median</title>",
    ]
    for j, persona in enumerate(personas):
        x0 = label_w + j * cell_w
        colour = cluster_colour(int(persona["cluster"]))  # type: ignore[call-overload]
        parts.append(
            f'<rect x="{x0 + 4}" y="6" width="{cell_w - 8}" height="4" fill="{colour}"/>'
            f'<text class="persona-name" x="{x0 + 4}" y="24" font-size="12" font-weight="bold">'
            f"{escape(str(persona['name']))[:24]}</text>"
            f'<text x="{x0 + 4}" y="38" font-size="10">{int(persona["size"]):,} customers'  # type: ignore[call-overload]
            "</text>"
        )
    for i, feature in enumerate(features):
        y = head_h + i * row_h
        parts.append(
            f'<text x="4" y="{y + 16}" font-size="11">{escape(feature)}</text>'
            f'<line x1="0" x2="{width}" y1="{y}" y2="{y}" stroke="#eee"/>'
        )
        for j, persona in enumerate(personas):
            x0 = label_w + j * cell_w
            mid = x0 + cell_w / 2
            relative = persona["relative"].get(feature)  # type: ignore[attr-defined]
            median = persona["medians"].get(feature)  # type: ignore[attr-defined]
            parts.append(
                f'<line x1="{mid}" x2="{mid}" y1="{y + 3}" y2="{y + row_h - 3}" stroke="#999"/>'
            )
            if relative is not None and math.isfinite(relative):
                share = max(-2.0, min(2.0, float(relative))) / 2
                bar = abs(share) * (cell_w / 2 - 8)
                bx = mid if share >= 0 else mid - bar
                fill = "#2ca02c" if share >= 0 else "#d62728"
                parts.append(
                    f'<rect class="bar" x="{bx:.1f}" y="{y + 6}" width="{bar:.1f}" '
                    f'height="{row_h - 12}" fill="{fill}" fill-opacity="0.75"/>'
                )
            text = "-" if median is None else f"{float(median):,.1f}"
            parts.append(f'<text x="{x0 + 4}" y="{y + 16}" font-size="9" fill="#555">{text}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (numbers and escaped text only)


def rfm_heatmap_svg(cells: Mapping[tuple[int, int], int], *, size: int = 64) -> SafeString:
    """The 5x5 RFM grid: R down (5 at the top), F across, shaded and labelled by customers."""
    top, left = 30, 40
    total_max = max(cells.values(), default=0) or 1
    width, height = left + 5 * size + 10, top + 5 * size + 30
    parts = [
        f'<svg id="rfm-heatmap" class="seg-chart" role="img" width="{width}" height="{height}" '
        'xmlns="http://www.w3.org/2000/svg">',
        "<title>Customers by recency (R) and frequency (F) score</title>",
        f'<text x="{left}" y="16" font-size="11">F score: 1 (rare) to 5 (frequent)</text>',
    ]
    for row, r in enumerate(range(5, 0, -1)):
        ty = top + row * size + size / 2 + 4
        parts.append(f'<text x="8" y="{ty}" font-size="11">R{r}</text>')
        for f in range(1, 6):
            count = cells.get((r, f), 0)
            share = count / total_max
            x, y = left + (f - 1) * size, top + row * size
            parts.append(
                f'<rect class="cell" data-r="{r}" data-f="{f}" x="{x}" y="{y}" width="{size - 2}" '
                f'height="{size - 2}" fill="{_ramp(share)}"/>'
                f'<text x="{x + size / 2 - 1}" y="{y + size / 2 + 4}" font-size="11" '
                f'text-anchor="middle" fill="{_text_colour(share)}">{count:,}</text>'
            )
    parts.append(
        f'<text x="{left}" y="{height - 8}" font-size="11">R score: 5 (recent) at the top</text>'
    )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (numbers only)


def cohort_svg(
    cohorts: Sequence[str], sizes: Sequence[int], retention: Sequence[Sequence[float | None]]
) -> SafeString:
    """Cohort retention: acquisition month down, months since across, share still ordering."""
    cell_w, cell_h, left, top = 44, 22, 130, 30
    months = max((len(row) for row in retention), default=0)
    width, height = left + cell_w * max(1, months) + 10, top + cell_h * len(cohorts) + 10
    parts = [
        f'<svg id="cohort-retention" class="seg-chart" role="img" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg">',
        "<title>Share of each acquisition month's customers ordering N months later</title>",
    ]
    for m in range(months):
        parts.append(
            f'<text x="{left + m * cell_w + cell_w / 2}" y="{top - 8}" font-size="10" '
            f'text-anchor="middle">+{m}</text>'
        )
    for i, (cohort, size, row) in enumerate(zip(cohorts, sizes, retention, strict=True)):
        y = top + i * cell_h
        parts.append(f'<text x="4" y="{y + 15}" font-size="11">{escape(cohort)} ({size:,})</text>')
        for m, value in enumerate(row):
            if value is None:
                continue
            x = left + m * cell_w
            parts.append(
                f'<rect class="cell" x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" '
                f'fill="{_ramp(value)}"/>'
                f'<text x="{x + cell_w / 2 - 1}" y="{y + 15}" font-size="10" text-anchor="middle" '
                f'fill="{_text_colour(value)}">{value:.0%}</text>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (numbers and escaped text only)
