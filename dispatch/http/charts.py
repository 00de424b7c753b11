"""Small server-side SVG charts for the status page: today's rescues per hour, wait until assigned.

Why on the server, in plain Python: the figures are already computed there, a chart is a few
hundred bytes of markup that the page can inline (or serve as ``image/svg+xml``), and no
charting library has to be vendored or trusted. The output is meant to be dropped into HTML
as is, so everything that comes from data (labels, title, unit) is escaped, and nothing in it
needs script, inline ``style`` or ids (two charts on one page cannot clash, and a strict CSP
is fine).

Accessible: ``role="img"``, an ``aria-label`` and a ``<title>`` that say what the chart shows in
words (range, highest, latest), and a ``<title>`` per bar or point for a pointer hover.

Colours are CSS variables of the page with fallbacks, so a chart follows the page's theme and
still looks right on its own (``<img src=...svg>``, a saved file):
``--chart-bar`` / ``--chart-line`` (else ``--accent``, else blue), ``--chart-text`` (else
``--muted``), ``--chart-axis`` (else ``--line``). Elements also carry classes
(``sc-chart-bar``, ``sc-chart-line``, ``sc-chart-point``, ``sc-chart-text``) for page CSS.

Words (the "max" and "no data" marks, the summary read out) come from the status page's words,
``templates/status/<lang>.json`` ``charts``, in the language given (English by default).

Values are scaled from zero (a 4-minute wait next to an 8-minute one looks half as long), and
negative values are drawn as zero: both charts show counts and durations.
"""

from __future__ import annotations

import math
from html import escape

from dispatch.texts import ENGLISH, STATUS, page_words

# Room for the "highest" label above the plot and the first/last x labels below it.
_TOP = 12
_BOTTOM = 12
_SIDE = 3  # half a line-chart dot plus its stroke, so end points are not clipped
_FONT = 9

_BAR_FILL = "var(--chart-bar, var(--accent, #0969da))"
_LINE_STROKE = "var(--chart-line, var(--accent, #0969da))"
_TEXT_FILL = "var(--chart-text, var(--muted, #57606a))"
_AXIS_STROKE = "var(--chart-axis, var(--line, #d0d7de))"


def bar_chart(
    values: list[tuple[str, float | None]],
    *,
    title: str,
    unit: str,
    width: int = 300,
    height: int = 80,
    lang: str = ENGLISH,
) -> str:
    """One bar per ``(label, value)``, e.g. 24 hourly counts; ``None`` (or NaN) is a missing bar."""
    _check_size(width, height)
    data = [(str(label), _number(value)) for label, value in values]
    known = [(label, v) for label, v in data if v is not None]
    plot_w, plot_h = width - 2 * _SIDE, height - _TOP - _BOTTOM
    body: list[str] = []
    if known:
        top = max(v for _, v in known)
        slot = plot_w / len(data)
        gap = min(2.0, slot * 0.2)  # a visible gap even with many bars, never wider than the bar
        for i, (label, v) in enumerate(data):
            if v is None:
                continue
            h = plot_h * v / top if top > 0 else 0.0
            x = _SIDE + i * slot + gap / 2
            y = _TOP + plot_h - h
            body.append(
                f'<rect class="sc-chart-bar" x="{_f(x)}" y="{_f(y)}" width="{_f(slot - gap)}" '
                f'height="{_f(h)}" fill="{_BAR_FILL}"><title>{_e(label)}: {_e(_amount(v, unit))}</title></rect>'
            )
    words = _words(lang)
    summary = _summary(data, unit, kind="bar", words=words)
    return _frame("bar", width, height, title, unit, summary, data, known, body, words)


def line_chart(
    points: list[tuple[str, float | None]],
    *,
    title: str,
    unit: str,
    width: int = 300,
    height: int = 80,
    lang: str = ENGLISH,
) -> str:
    """A line through ``(label, value)`` points, e.g. median wait per hour; ``None`` (or NaN) leaves
    a gap (an hour without any assignment has no median), and a point alone between gaps is a dot."""
    _check_size(width, height)
    data = [(str(label), _number(value)) for label, value in points]
    known = [(label, v) for label, v in data if v is not None]
    plot_w, plot_h = width - 2 * _SIDE, height - _TOP - _BOTTOM
    body: list[str] = []
    if known:
        top = max(v for _, v in known)
        step = plot_w / (len(data) - 1) if len(data) > 1 else 0.0

        def xy(i: int, v: float) -> tuple[float, float]:
            x = _SIDE + (i * step if len(data) > 1 else plot_w / 2)
            return x, _TOP + plot_h - (plot_h * v / top if top > 0 else 0.0)

        runs: list[list[tuple[float, float]]] = [[]]
        for i, (_, v) in enumerate(data):
            if v is None:
                if runs[-1]:
                    runs.append([])
            else:
                runs[-1].append(xy(i, v))
        for run in runs:
            if len(run) > 1:
                d = " ".join(("M" if j == 0 else "L") + f"{_f(x)},{_f(y)}" for j, (x, y) in enumerate(run))
                body.append(
                    f'<path class="sc-chart-line" d="{d}" fill="none" stroke="{_LINE_STROKE}" '
                    f'stroke-width="1.5" stroke-linejoin="round" stroke-linecap="round"/>'
                )
        for i, (label, v) in enumerate(data):
            if v is None:
                continue
            x, y = xy(i, v)
            body.append(
                f'<circle class="sc-chart-point" cx="{_f(x)}" cy="{_f(y)}" r="2" fill="{_LINE_STROKE}">'
                f"<title>{_e(label)}: {_e(_amount(v, unit))}</title></circle>"
            )
    words = _words(lang)
    summary = _summary(data, unit, kind="point", words=words)
    return _frame("line", width, height, title, unit, summary, data, known, body, words)


# ---- shared parts -----------------------------------------------------------------------------


def _frame(
    kind: str,
    width: int,
    height: int,
    title: str,
    unit: str,
    summary: str,
    data: list[tuple[str, float | None]],
    known: list[tuple[str, float]],
    body: list[str],
    words: dict[str, str],
) -> str:
    """The svg element around a chart's marks: accessible name, baseline, axis labels."""
    base_y = height - _BOTTOM
    label = f"{title}: {summary}"
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sc-chart sc-chart-{kind}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{_e(label)}">'
    )
    axis = (
        f'<line class="sc-chart-axis" x1="{_SIDE}" y1="{base_y}" x2="{width - _SIDE}" y2="{base_y}" '
        f'stroke="{_AXIS_STROKE}" stroke-width="1"/>'
    )
    parts = [svg, f"<title>{_e(label)}</title>", axis]
    # Axis texts share one group's presentation attributes: shorter markup, one place to restyle.
    parts.append(
        f'<g class="sc-chart-text" font-size="{_FONT}" font-family="system-ui, sans-serif" '
        f'fill="{_TEXT_FILL}">'
    )
    if known:
        top_value = max(v for _, v in known)
        parts.append(f'<text x="{_SIDE}" y="{_FONT}">{_e(words["max"].format(amount=_amount(top_value, unit)))}</text>')
    else:
        middle = _TOP + (base_y - _TOP) / 2 + _FONT / 3
        parts.append(f'<text x="{_f(width / 2)}" y="{_f(middle)}" text-anchor="middle">{_e(words["no_data"])}</text>')
    if data:
        parts.append(f'<text x="{_SIDE}" y="{height - 1}">{_e(data[0][0])}</text>')
        if len(data) > 1:
            parts.append(
                f'<text x="{width - _SIDE}" y="{height - 1}" text-anchor="end">{_e(data[-1][0])}</text>'
            )
    parts.append("</g>")
    parts.extend(body)
    parts.append("</svg>")
    return "".join(parts)


def _words(lang: str) -> dict[str, str]:
    return page_words(lang, STATUS)["charts"]


def _summary(data: list[tuple[str, float | None]], unit: str, *, kind: str, words: dict[str, str]) -> str:
    """The chart in words, for screen readers and hover: what a sighted reader takes from it."""
    known = [(label, v) for label, v in data if v is not None]
    if not known:
        return words["no_data"]
    top_label, top_value = max(known, key=lambda lv: lv[1])
    last_label, last_value = known[-1]
    kinds = words[kind] if len(data) == 1 else words[kind + "s"]
    said = [words["span"].format(n=len(data), kind=kinds, first=data[0][0], last=data[-1][0])]
    said.append(words["highest"].format(amount=_amount(top_value, unit), label=top_label))
    said.append(words["latest"].format(amount=_amount(last_value, unit), label=last_label))
    missing = len(data) - len(known)
    if missing:
        said.append(words["missing"].format(n=missing))
    return "; ".join(said)


def _check_size(width: int, height: int) -> None:
    if width < 40 or height < _TOP + _BOTTOM + 10:
        raise ValueError(f"chart too small to read: {width}x{height}")


def _number(value: float | None) -> float | None:
    """A drawable value: None and NaN/inf are missing, negatives are zero (see the module doc)."""
    if value is None:
        return None
    v = float(value)
    if not math.isfinite(v):
        return None
    return max(v, 0.0)


def _amount(v: float, unit: str) -> str:
    """5 -> "5 rescues", 4.25 -> "4.3 min": whole numbers without decimals, others to one place."""
    n = str(round(v)) if abs(v - round(v)) < 1e-9 else f"{v:.1f}"
    return f"{n} {unit}".strip()


def _f(x: float) -> str:
    """Coordinates to 0.1 px: enough for 300 px, and keeps the markup short."""
    return f"{x:.1f}".removesuffix(".0")


def _e(s: str) -> str:
    return escape(s, quote=True)
