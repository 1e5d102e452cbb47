"""The drift report drawn: bars in the terminal, an SVG file for a page or a ticket.

Each statistic is one small chart with, per bin, the training share and the served share side
by side, so the shift is seen where it happens (longer prompts, another language).
"""

from __future__ import annotations

from html import escape

from polyadapt.monitoring.drift import DriftReport, FeatureDrift

_BAR_WIDTH = 30
_BLOCKS = " ▏▎▍▌▋▊▉█"


def _shares(counts: list[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def _bar(share: float, width: int = _BAR_WIDTH) -> str:
    eighths = round(share * width * 8)
    return "█" * (eighths // 8) + (_BLOCKS[eighths % 8] if eighths % 8 else "")


def terminal_chart(feature: FeatureDrift) -> str:
    """``feature``'s bins as text bars: ``train`` above ``served`` for each bin."""
    width = max(len(label) for label in feature.labels)
    lines = [f"{feature.name}  (PSI {feature.psi:.3f}, {feature.verdict})" if feature.psi is not None else feature.name]
    for label, t, s in zip(feature.labels, _shares(feature.expected), _shares(feature.actual)):
        lines.append(f"  {label:>{width}}  train  {t:5.1%} {_bar(t)}")
        lines.append(f"  {'':>{width}}  served {s:5.1%} {_bar(s)}")
    return "\n".join(lines)


def svg_report(report: DriftReport, title: str) -> str:
    """Every statistic of ``report`` as one SVG document of small bar charts."""
    chart_w, chart_h, pad, top = 360, 150, 24, 40
    columns = 2
    rows = (len(report.features) + columns - 1) // columns
    width, height = columns * (chart_w + pad) + pad, top + rows * (chart_h + 2 * pad)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<text x="{pad}" y="24" font-size="15">{escape(title)} — {report.requests} requests, '
        f"threshold {report.threshold}</text>",
        f'<rect x="{width - 200}" y="12" width="10" height="10" fill="#9aa5b1"/>'
        f'<text x="{width - 186}" y="21">training</text>'
        f'<rect x="{width - 120}" y="12" width="10" height="10" fill="#d9822b"/>'
        f'<text x="{width - 106}" y="21">served</text>',
    ]
    for index, feature in enumerate(report.features):
        x0 = pad + (index % columns) * (chart_w + pad)
        y0 = top + (index // columns) * (chart_h + 2 * pad)
        psi = "–" if feature.psi is None else f"{feature.psi:.3f}"
        colour = "#c23030" if feature.verdict == "drift" else "#333"
        parts.append(
            f'<text x="{x0}" y="{y0 + 12}" fill="{colour}">{escape(feature.name)}: PSI {psi} ({feature.verdict})</text>'
        )
        base = y0 + chart_h
        slot = chart_w / max(1, len(feature.labels))
        shares = list(zip(_shares(feature.expected), _shares(feature.actual)))
        top_share = max((max(t, s) for t, s in shares), default=0.0) or 1.0
        for i, (t, s) in enumerate(shares):
            for j, (share, fill) in enumerate(((t, "#9aa5b1"), (s, "#d9822b"))):
                h = (chart_h - 30) * share / top_share
                w = (slot - 4) / 2
                x = x0 + i * slot + 2 + j * w
                parts.append(f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{fill}"/>')
            parts.append(
                f'<text x="{x0 + (i + 0.5) * slot:.1f}" y="{base + 12}" text-anchor="middle" font-size="8">'
                f"{escape(feature.labels[i][:10])}</text>"
            )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
