"""What the server-drawn SVG charts share (the dashboard's trend, bidui.web.supervisor.trend_svg, and
the quality bulletin's, bidui.web.quality.trend_chart): the value axis' top and the gridlines with
their tick labels, so both pages keep one house style."""

from __future__ import annotations

from collections.abc import Callable

GRID_COLOUR = "#d9e2ec"
BASELINE_COLOUR = "#616e7c"


def nice_max(n: int) -> int:
    """A count axis' top: 1, 2 or 5 times a power of ten, at least n (and 4 at least)."""
    top = 4
    step = 1
    while top < n:
        for m in (1, 2, 5):
            if m * step * 4 >= n:
                return m * step * 4
        step *= 10
    return top


def gridlines(left: float, top: float, w: float, h: float, font: int, steps: int,
              left_tick: Callable[[float], str], left_fill: str,
              right_tick: Callable[[float], str] | None = None, right_fill: str = "") -> list[str]:
    """Horizontal gridlines at `steps` even parts of the plot (left, top, w, h), each labelled on the
    left axis and, for a chart with two scales, on the right one too; then the baseline.
    A tick function gets the fraction of the axis' height (0 at the baseline, 1 at the top)."""
    parts: list[str] = []
    for k in range(steps + 1):
        frac = k / steps
        yy = top + h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="{GRID_COLOUR}"/>')
        parts.append(f'<text x="{left - 4}" y="{yy + font * .35:.1f}" text-anchor="end" fill="{left_fill}">'
                     f'{left_tick(frac)}</text>')
        if right_tick is not None:
            parts.append(f'<text x="{left + w + 4}" y="{yy + font * .35:.1f}" fill="{right_fill}">'
                         f'{right_tick(frac)}</text>')
    parts.append(f'<line x1="{left}" x2="{left + w}" y1="{top + h}" y2="{top + h}" stroke="{BASELINE_COLOUR}"/>')
    return parts
