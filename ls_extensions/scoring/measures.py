"""How uncertain one prediction is, from its plain JSON: pure functions, no Django.

Every measure maps a prediction (``result`` list and task-level ``score``) to a value in [0, 1]
where higher means *less confident*, so "most uncertain first" is one descending sort whatever
the measure. Region measures read each region's ``score`` whatever its type: a box on an image, or a
``videorectangle`` track of a video (one region per track, whose ``score`` the model server sets to
the track's mean detection score), so image and video projects rank alike. Bad input never raises:
scores outside [0, 1] are clamped, missing / NaN / infinite / non-numeric scores are ignored, and
both are counted in the returned :class:`Outcome` so that a ranking built from them is never
silently wrong.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

EMPTY_VALUE = 0.0
"""Value of a prediction with no regions under a region measure (see README: "Predictions without regions")."""

TASK_SCORE = 'task score (no region scores)'
"""``Outcome.reason`` of a region measure's value taken from the task-level score."""

NOT_REGIONS = frozenset({'relation'})
"""Result item types that are links between regions, not regions."""


class UnknownMeasure(ValueError):
    """A measure name that is not one of :data:`MEASURES`; the message lists the valid ones."""

    def __init__(self, name):
        self.name = name
        self.valid = sorted(MEASURES)
        super().__init__(f'Unknown measure {name!r}; valid measures: {", ".join(self.valid)}')


@dataclass(frozen=True)
class Outcome:
    """One prediction's uncertainty and what it took to get there."""

    value: float | None  # in [0, 1]; None: this measure cannot rank the prediction (see ``reason``)
    regions: int = 0  # regions found in the result
    used: int = 0  # scores that entered the value
    clamped: int = 0  # scores outside [0, 1] pulled back to the nearest bound
    ignored: int = 0  # scores left out: missing, NaN, infinite, non-numeric; malformed items
    reason: str = ''  # why the value is None, or which convention defined it


@dataclass
class _Tally:
    clamped: int = 0
    ignored: int = 0
    missing: int = 0  # of the ignored: absent (None), which the task-level score may stand in for

    def number(self, raw):
        """A score as a float in [0, 1], or None when it cannot be one (counted either way)."""
        if raw is None or isinstance(raw, bool):
            self.ignored += 1
            self.missing += raw is None
            return None
        if isinstance(raw, str):
            try:
                raw = float(raw.strip())
            except ValueError:
                self.ignored += 1
                return None
        if not isinstance(raw, int | float) or not math.isfinite(raw):
            self.ignored += 1
            return None
        if raw < 0.0 or raw > 1.0:
            self.clamped += 1
            return min(1.0, max(0.0, float(raw)))
        return float(raw)


@dataclass(frozen=True)
class Region:
    """A shape or a classification: result items sharing an ``id`` are one region."""

    scores: tuple  # raw ``score`` of each item of the region
    class_scores: object = None  # raw per-class scores (dict label -> score, or a list), if any


def regions_of(result):
    """Group result items into regions; returns (regions, malformed item count) or None if not a list."""
    if not isinstance(result, list):
        return None
    groups, order, malformed = {}, [], 0
    for index, item in enumerate(result):
        if not isinstance(item, dict) or item.get('type') in NOT_REGIONS:
            malformed += not isinstance(item, dict)
            continue
        value = item.get('value')
        key = item.get('id') if isinstance(item.get('id'), str | int) else f'#{index}'
        if key not in groups:
            groups[key] = {'scores': [], 'class_scores': None}
            order.append(key)
        groups[key]['scores'].append(item.get('score'))
        for holder in (item, value if isinstance(value, dict) else {}):
            if groups[key]['class_scores'] is None and holder.get('scores') is not None:
                groups[key]['class_scores'] = holder['scores']
    return [Region(tuple(groups[k]['scores']), groups[k]['class_scores']) for k in order], malformed


def region_score(region, tally):
    """The lowest valid item score of a region (its least confident part), or None."""
    valid = [v for v in (tally.number(s) for s in region.scores) if v is not None]
    return min(valid) if valid else None


def binary_entropy(p):
    """Entropy in bits of a yes/no guess made with probability p: 0 when sure, 1 at p = 0.5."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log2(p) + (1.0 - p) * math.log2(1.0 - p))


def class_margin(region, tally):
    """Margin between the two best classes of a region, or None when it has no usable score.

    Per-class scores (``scores``: dict or list) give the two best directly; a region with a single
    score p is a two-way choice between its label (p) and everything else (1 - p).
    """
    raw = region.class_scores
    if isinstance(raw, dict):
        raw = list(raw.values())
    if isinstance(raw, list | tuple):
        probs = sorted((v for v in (tally.number(s) for s in raw) if v is not None), reverse=True)
        if len(probs) >= 2:
            return probs[0] - probs[1]
        if len(probs) == 1:
            return abs(2.0 * probs[0] - 1.0)
    single = region_score(region, tally)
    return None if single is None else abs(2.0 * single - 1.0)


def _task_score(result, score):
    tally = _Tally()
    value = tally.number(score)
    if value is None:
        return Outcome(None, ignored=tally.ignored, reason='no task score')
    return Outcome(1.0 - value, used=1, clamped=tally.clamped, reason='')


def _over_regions(per_region: Callable, combine: Callable):
    """Build a region measure: ``per_region`` gives each region's number, ``combine`` the task's value.

    Without any valid region score the task-level score stands in, read as the score of one region:
    Label Studio's documented prediction is ``{"result": [...], "score": 0.3}`` with no score on the
    regions. Without a usable task score either, an empty result is :data:`EMPTY_VALUE` and anything
    else has no value.
    """

    def fallback(score, tally, regions, why):
        # an absent task score is normal (it is optional) and not counted; a present, unusable one is
        number = None if score is None else per_region(Region((score,)), tally)
        if number is not None:  # region scores absent in favour of the task's are not "ignored"
            value = min(1.0, max(0.0, combine([number])))
            return Outcome(value, regions, 1, tally.clamped, tally.ignored - tally.missing, TASK_SCORE)
        if why == 'no regions':
            return Outcome(EMPTY_VALUE, 0, 0, tally.clamped, tally.ignored, why)
        return Outcome(None, regions, 0, tally.clamped, tally.ignored, why)

    def measure(result, score):
        grouped = regions_of(result)
        if grouped is None:
            return fallback(score, _Tally(ignored=1), 0, 'result is not a list')
        regions, malformed = grouped
        tally = _Tally(ignored=malformed)
        if not regions:
            return fallback(score, tally, 0, 'no well-formed regions' if malformed else 'no regions')
        numbers = [n for n in (per_region(r, tally) for r in regions) if n is not None]
        if not numbers:
            return fallback(score, tally, len(regions), 'no valid region scores')
        value = min(1.0, max(0.0, combine(numbers)))
        return Outcome(value, len(regions), len(numbers), tally.clamped, tally.ignored)

    return measure


MEASURES = {
    'score': _task_score,
    'min_region': _over_regions(region_score, lambda scores: 1.0 - min(scores)),
    'entropy': _over_regions(
        lambda r, t: None if (s := region_score(r, t)) is None else binary_entropy(s),
        lambda entropies: sum(entropies) / len(entropies),
    ),
    'margin': _over_regions(class_margin, lambda margins: 1.0 - min(margins)),
}

DESCRIPTIONS = {
    'score': '1 - the prediction score (Prediction.score)',
    'min_region': '1 - the lowest region score (box or video track)',
    'entropy': 'mean binary entropy of the region scores (boxes or video tracks)',
    'margin': '1 - the smallest margin between the two best classes of a region',
}

DEFAULT_MEASURE = 'min_region'


def check_measure(name):
    """Return ``name`` if it is a known measure, else raise :class:`UnknownMeasure`."""
    if not isinstance(name, str) or name not in MEASURES:
        raise UnknownMeasure(name)
    return name


def uncertainty(measure, result, score=None):
    """Uncertainty of one prediction under ``measure`` as an :class:`Outcome`."""
    return MEASURES[check_measure(measure)](result, score)
