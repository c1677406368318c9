"""The learning curve on the retraining page: held-out mAP of each trained version against the annotations
it was trained on, as a server-rendered SVG (no JavaScript), rejected versions marked.

Pure (no Django): the page gives it plain records of its runs. A run's mAP is measured by the model server
on the project's held-out tasks at that time (``ml_backend/training.held_out``: a rule of the task id, so
earlier held-out tasks stay held out and the set grows with the project).
"""

from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 14, 40


@dataclass(frozen=True)
class Point:
    """One trained version: served (``rejected`` False) or kept back by the gate."""

    run_id: int
    annotations: int
    map_after: float
    map_before: float | None
    held_out: int | None
    version: str
    rejected: bool


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def points(runs):
    """Points from run records (dicts with ``id``, ``status``, ``annotations_used``, ``version_after``,
    ``metrics``), oldest first; runs without a held-out mAP after training are left out."""
    found = []
    for run in runs:
        metrics = run.get('metrics') or {}
        if run.get('status') not in ('succeeded', 'rejected') or not _number(metrics.get('map_after')):
            continue
        before = metrics.get('map_before')
        found.append(
            Point(
                run_id=run['id'],
                annotations=int(run.get('annotations_used') or 0),
                map_after=float(metrics['map_after']),
                map_before=float(before) if _number(before) else None,
                held_out=metrics.get('eval_images') if isinstance(metrics.get('eval_images'), int) else None,
                version=run.get('version_after') or '',
                rejected=run.get('status') == 'rejected',
            )
        )
    return sorted(found, key=lambda p: p.run_id)


def _ticks(high, count=5):
    step = max(1, round(high / count))
    return list(range(0, high + 1, step))


def svg(curve):
    """The chart as SVG markup ('' without points): served versions joined by a line, rejected ones as
    red crosses beside it; axes with ticks, each point with a tooltip (``<title>``)."""
    if not curve:
        return ''
    x_high = max(1, max(p.annotations for p in curve))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(value):
        return LEFT + plot_w * value / x_high

    def y(value):
        return TOP + plot_h * (1.0 - max(0.0, min(1.0, value)))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        'role="img" aria-labelledby="curve-title" class="learning-curve">',
        '<title id="curve-title">Held-out mAP@0.5 per model version against the annotations it was trained on</title>',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafc" stroke="#d0d0d8"/>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#ececf0"/>'
            f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="11" fill="#6b6b76">{tick:g}</text>'
        )
    for tick in _ticks(x_high):
        parts.append(
            f'<text x="{x(tick):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" font-size="11" '
            f'fill="#6b6b76">{tick}</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle" font-size="12" fill="#3c3c46">'
        'annotations trained on</text>'
        f'<text x="12" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" font-size="12" fill="#3c3c46" '
        f'transform="rotate(-90 12 {TOP + plot_h / 2:.1f})">held-out mAP@0.5</text>'
    )
    served = [p for p in curve if not p.rejected]
    if len(served) > 1:
        line = ' '.join(f'{x(p.annotations):.1f},{y(p.map_after):.1f}' for p in served)
        parts.append(f'<polyline points="{line}" fill="none" stroke="#3858e9" stroke-width="2" class="served-line"/>')
    for p in curve:
        tip = escape(f'{p.version or "run " + str(p.run_id)}: mAP {p.map_after:.3f} after {p.annotations} annotations')
        cx, cy = x(p.annotations), y(p.map_after)
        if p.rejected:
            parts.append(
                f'<g class="rejected" data-run="{p.run_id}"><title>{tip} (rejected: not served)</title>'
                f'<path d="M{cx - 5:.1f},{cy - 5:.1f}L{cx + 5:.1f},{cy + 5:.1f}M{cx - 5:.1f},{cy + 5:.1f}'
                f'L{cx + 5:.1f},{cy - 5:.1f}" stroke="#b3261e" stroke-width="2"/></g>'
            )
        else:
            parts.append(
                f'<g class="served" data-run="{p.run_id}"><title>{tip}</title>'
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4.5" fill="#3858e9"/></g>'
            )
    parts.append('</svg>')
    return ''.join(parts)
