"""Small inline-SVG charts for the HTML reports: scatter/line charts with linear or log axes, and bars.

Pure Python, no JS library and nothing fetched: each function returns one `<div class="chart">` holding an
`<svg>` with a viewBox (so it scales to a narrow window), a title and axis labels, then an HTML legend that
wraps; every point or bar has a `<title>` (the browser shows it on hover).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Sequence

# Okabe-Ito colours (colour-blind safe), then a few more distinct ones.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
           "#8C564B", "#7F7F7F", "#17BECF", "#BCBD22")
MARKERS = ("circle", "square", "triangle", "diamond")

WIDTH, HEIGHT = 600, 360
LEFT, RIGHT, TOP, BOTTOM = 74, 16, 40, 50  # plot margins inside the viewBox

_SI = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"),
       (1e-9, "n"))


def fmt_num(v: float) -> str:
    """Short human label for an axis tick or table cell: 3 significant digits, with an SI prefix outside 0.001..1."""
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else str(v)
    a = abs(v)
    if 1e-3 <= a < 1:  # a fraction reads as one (0.8, not 800m)
        return f"{v:.3g}"
    for scale, prefix in _SI:
        if a >= scale * 0.9995:
            return f"{v / scale:.3g}{prefix}"
    return f"{v:.2g}"


@dataclass
class Series:
    """One named set of points; `mode` is "markers", "line" or "both"; `hover` is one text per point,
    `labels` one short text drawn beside each point (for charts of a few named points)."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    mode: str = "markers"
    hover: Sequence[str] | None = None
    dashed: bool = False
    color: str | None = None
    marker: str = "circle"
    labels: Sequence[str] | None = None


@dataclass
class XYChart:
    """A 2-D chart; `diagonal` draws y = x (measured against predicted)."""

    title: str
    x_label: str
    y_label: str
    series: list[Series] = field(default_factory=list)
    x_log: bool = False
    y_log: bool = False
    diagonal: bool = False


@dataclass
class Bar:
    """One horizontal bar made of stacked named segments (e.g. weights, KV cache)."""

    label: str
    segments: dict[str, float]
    hover: str = ""


@dataclass
class BarChart:
    """Horizontal stacked bars with an optional limit line (e.g. the GPU's memory capacity)."""

    title: str
    value_label: str
    bars: list[Bar] = field(default_factory=list)
    limit: float | None = None
    limit_label: str = ""


# -- ticks -------------------------------------------------------------------------------------------
def _nice(x: float, round_: bool) -> float:
    """Nearest 'nice' number (1, 2, 5 x 10^k) to x."""
    exp = math.floor(math.log10(x))
    f = x / 10 ** exp
    if round_:
        nf = 1 if f < 1.5 else 2 if f < 3 else 5 if f < 7 else 10
    else:
        nf = 1 if f <= 1 else 2 if f <= 2 else 5 if f <= 5 else 10
    return nf * 10 ** exp


def linear_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    """About n evenly spaced nice ticks covering [lo, hi]."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    step = _nice(_nice(hi - lo, False) / max(n - 1, 1), True)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [i * step for i in range(first, last + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """Decade ticks covering [lo, hi] (lo > 0); adds 2 and 5 ticks when the range spans < 3 decades."""
    d0, d1 = math.floor(math.log10(lo) + 1e-9), math.ceil(math.log10(hi) - 1e-9)
    d1 = max(d1, d0 + 1)
    step = max(1, math.ceil((d1 - d0) / 8))
    ticks = [10.0 ** d for d in range(d0, d1 + step, step)]  # the last one reaches 10^d1 or beyond
    if d1 - d0 < 3:
        ticks = sorted({m * 10.0 ** d for d in range(d0, d1 + 1) for m in (1, 2, 5)} | {10.0 ** d1})
        ticks = [t for t in ticks if 10.0 ** d0 <= t <= 10.0 ** d1]
    return ticks


class _Scale:
    """Maps data values to pixels along one axis, linear or log10."""

    def __init__(self, values: list[float], log: bool, px0: float, px1: float, include_zero: bool = False):
        self.log = log
        if log:
            self.ticks = log_ticks(min(values), max(values)) if values else [1.0, 10.0]
        else:
            lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
            if include_zero:
                lo, hi = min(lo, 0.0), max(hi, 0.0)
            self.ticks = linear_ticks(lo, hi)
        self.lo, self.hi = self._t(self.ticks[0]), self._t(self.ticks[-1])
        self.px0, self.px1 = px0, px1

    def _t(self, v: float) -> float:
        return math.log10(v) if self.log else v

    def __call__(self, v: float) -> float:
        span = (self.hi - self.lo) or 1.0
        return self.px0 + (self._t(v) - self.lo) / span * (self.px1 - self.px0)


# -- SVG pieces --------------------------------------------------------------------------------------
def _marker(kind: str, x: float, y: float, color: str, hover: str) -> str:
    tip = f"<title>{escape(hover)}</title>" if hover else ""
    style = f'fill="{color}" fill-opacity="0.8" stroke="{color}"'
    if kind == "square":
        return f'<rect class="pt" x="{x - 3.5:.1f}" y="{y - 3.5:.1f}" width="7" height="7" {style}>{tip}</rect>'
    if kind in ("triangle", "diamond"):
        pts = ([(x, y - 4.5), (x + 4.5, y + 3.5), (x - 4.5, y + 3.5)] if kind == "triangle"
               else [(x, y - 5), (x + 5, y), (x, y + 5), (x - 5, y)])
        coords = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
        return f'<polygon class="pt" points="{coords}" {style}>{tip}</polygon>'
    return f'<circle class="pt" cx="{x:.1f}" cy="{y:.1f}" r="3.8" {style}>{tip}</circle>'


def _legend(items: list[tuple[str, str, str, bool]]) -> str:
    """HTML legend below the chart (it wraps in a narrow window); items are (label, colour, marker or
    "line", dashed)."""
    out = []
    for label, color, marker, dashed in items:
        if marker == "line":
            dash = ' stroke-dasharray="5,3"' if dashed else ""
            key = f'<line x1="1" y1="6" x2="21" y2="6" stroke="{color}" stroke-width="2"{dash}/>'
        else:
            key = _marker(marker, 11, 6, color, "")
        out.append(f'<li><svg class="key" viewBox="0 0 22 12" width="22" height="12" aria-hidden="true">{key}</svg>'
                   f"{escape(label)}</li>")
    return f'<ul class="legend">{"".join(out)}</ul>' if out else ""


def _frame(title: str, body: str, height: float, legend: list[tuple[str, str, str, bool]]) -> str:
    """The chart: an SVG (title and plot, scaled by its viewBox) and its HTML legend."""
    return (f'<div class="chart"><svg viewBox="0 0 {WIDTH} {height:.0f}" role="img" aria-label="{escape(title)}">'
            f'<text x="{WIDTH / 2:.0f}" y="22" class="ttl" text-anchor="middle">{escape(title)}</text>'
            f"{body}</svg>{_legend(legend)}</div>")


def _axes(xs: _Scale, ys: _Scale, x_label: str, y_label: str) -> str:
    bottom, top, left, right = HEIGHT - BOTTOM, TOP, LEFT, WIDTH - RIGHT
    out = [f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" class="plot"/>']
    for t in xs.ticks:
        px = xs(t)
        out.append(f'<line x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{bottom}" class="grid"/>'
                   f'<text x="{px:.1f}" y="{bottom + 16}" text-anchor="middle" class="tk">{fmt_num(t)}</text>')
    for t in ys.ticks:
        py = ys(t)
        out.append(f'<line x1="{left}" y1="{py:.1f}" x2="{right}" y2="{py:.1f}" class="grid"/>'
                   f'<text x="{left - 6}" y="{py + 4:.1f}" text-anchor="end" class="tk">{fmt_num(t)}</text>')
    out.append(f'<text x="{(left + right) / 2:.0f}" y="{bottom + 38}" text-anchor="middle" class="ax">'
               f"{escape(x_label)}</text>")
    out.append(f'<text transform="translate(16,{(top + bottom) / 2:.0f}) rotate(-90)" text-anchor="middle" '
               f'class="ax">{escape(y_label)}</text>')
    return "".join(out)


def _valid(v: float, log: bool) -> bool:
    return v is not None and math.isfinite(v) and (v > 0 or not log)


def xy_chart(chart: XYChart) -> str:
    """Render a scatter/line chart as inline HTML (SVG plus legend); non-finite points (and, on log axes,
    those ≤ 0) are left out."""
    pts = []  # per series: list of (x, y, hover, label)
    for s in chart.series:
        hov = list(s.hover) if s.hover is not None else [""] * len(s.x)
        lab = list(s.labels) if s.labels is not None else [""] * len(s.x)
        pts.append([(float(x), float(y), h, t) for x, y, h, t in zip(s.x, s.y, hov, lab)
                    if _valid(x, chart.x_log) and _valid(y, chart.y_log)])
    all_x = [p[0] for ps in pts for p in ps]
    all_y = [p[1] for ps in pts for p in ps]
    if chart.diagonal and all_x:
        lo, hi = min(all_x + all_y), max(all_x + all_y)
        all_x, all_y = all_x + [lo, hi], all_y + [lo, hi]
    xs = _Scale(all_x, chart.x_log, LEFT, WIDTH - RIGHT)
    ys = _Scale(all_y, chart.y_log, HEIGHT - BOTTOM, TOP, include_zero=not chart.y_log)
    body = [_axes(xs, ys, chart.x_label, chart.y_label)]
    if not all_x:
        body.append(f'<text x="{WIDTH / 2:.0f}" y="{HEIGHT / 2:.0f}" text-anchor="middle" class="nodata">'
                    "no data</text>")
    legend = []
    if chart.diagonal and all_x:
        a, b = max(xs.ticks[0], ys.ticks[0]), min(xs.ticks[-1], ys.ticks[-1])
        body.append(f'<line x1="{xs(a):.1f}" y1="{ys(a):.1f}" x2="{xs(b):.1f}" y2="{ys(b):.1f}" '
                    'stroke="#555" stroke-dasharray="4,4"/>')
        legend.append(("y = x", "#555", "line", True))
    for i, (s, ps) in enumerate(zip(chart.series, pts)):
        color = s.color or PALETTE[i % len(PALETTE)]
        g = [f'<g class="series" data-label="{escape(s.label)}">']
        if s.mode in ("line", "both") and len(ps) > 1:
            path = " ".join(f"{xs(x):.1f},{ys(y):.1f}" for x, y, _, _ in ps)
            dash = ' stroke-dasharray="6,4"' if s.dashed else ""
            g.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        if s.mode in ("markers", "both") or len(ps) == 1:
            g.extend(_marker(s.marker, xs(x), ys(y), color, h) for x, y, h, _ in ps)
        g.extend(f'<text x="{xs(x) + 6:.1f}" y="{ys(y) - 5:.1f}" class="pl">{escape(t)}</text>'
                 for x, y, _, t in ps if t)
        g.append("</g>")
        body.append("".join(g))
        legend.append((s.label, color, "line" if s.mode == "line" else s.marker, s.dashed))
    return _frame(chart.title, "".join(body), HEIGHT, legend)


def bar_chart(chart: BarChart) -> str:
    """Render horizontal stacked bars, one row per Bar, with an optional dashed limit line (inline HTML)."""
    row_px, label_px = 24, 170
    names = list(dict.fromkeys(k for b in chart.bars for k in b.segments))
    totals = [sum(b.segments.values()) for b in chart.bars] or [0.0]
    hi = max(totals + ([chart.limit] if chart.limit else []))
    ticks = linear_ticks(0.0, hi or 1.0)
    plot_h = row_px * max(len(chart.bars), 1) + 10
    x0, x1 = float(label_px), float(WIDTH - RIGHT)
    sx = lambda v: x0 + v / ticks[-1] * (x1 - x0)  # noqa: E731
    top, bottom = float(TOP), TOP + plot_h
    body = [f'<rect x="{x0}" y="{top}" width="{x1 - x0}" height="{plot_h}" class="plot"/>']
    for t in ticks:
        body.append(f'<line x1="{sx(t):.1f}" y1="{top}" x2="{sx(t):.1f}" y2="{bottom}" class="grid"/>'
                    f'<text x="{sx(t):.1f}" y="{bottom + 16}" text-anchor="middle" class="tk">{fmt_num(t)}</text>')
    body.append(f'<text x="{(x0 + x1) / 2:.0f}" y="{bottom + 36}" text-anchor="middle" class="ax">'
                f"{escape(chart.value_label)}</text>")
    colors = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
    for r, b in enumerate(chart.bars):
        y = top + 6 + r * row_px
        body.append(f'<text x="{x0 - 6}" y="{y + 13}" text-anchor="end" class="tk">{escape(b.label)}</text>')
        x = 0.0
        for name, v in b.segments.items():
            tip = escape(f"{b.label} — {name}: {fmt_num(v)}" + (f" ({b.hover})" if b.hover else ""))
            body.append(f'<rect class="bar" x="{sx(x):.1f}" y="{y:.1f}" width="{max(sx(x + v) - sx(x), 0):.1f}" '
                        f'height="{row_px - 8}" fill="{colors[name]}"><title>{tip}</title></rect>')
            x += v
    if not chart.bars:
        body.append(f'<text x="{WIDTH / 2:.0f}" y="{top + 20}" text-anchor="middle" class="nodata">no data</text>')
    legend = [(n, colors[n], "square", False) for n in names]
    if chart.limit:
        body.append(f'<line x1="{sx(chart.limit):.1f}" y1="{top - 4}" x2="{sx(chart.limit):.1f}" y2="{bottom}" '
                    'stroke="#D00" stroke-width="2" stroke-dasharray="5,3"/>')
        legend.append((chart.limit_label or "limit", "#D00", "line", True))
    return _frame(chart.title, "".join(body), bottom + 46, legend)
