"""How much a model's boxes disagree with an annotation's boxes: pure functions, no Django.

The current model's boxes are matched to the annotation's per class by IoU, greedily from the best
overlap down (as COCO evaluation matches), and each disagreement is a finding with a weight in [0, 1]:

- ``missing``: a confident predicted box (score >= ``CONFIDENT``) that no annotated box of any class
  overlaps with IoU >= ``MATCH_IOU``: possibly an object the annotator missed;
- ``spurious``: an annotated box that no predicted box of its class overlaps with IoU >= ``SUPPORT_IOU``
  (nor a confident box of another class explains): possibly a box around nothing; its weight is how
  little the model sees anything there: 1 - the best score x (share of the annotated box inside the
  predicted one) over all predicted boxes (a model that merged two touching objects into one box still
  sees both);
- ``off``: a same-class match with IoU < ``LOCALISATION_IOU``: possibly a box far off; weight
  score x (1 - IoU / LOCALISATION_IOU), so a match just under the bar weighs little; not when the
  predicted box spans several annotated boxes (half of each inside it): a group box says nothing about
  where each object is;
- ``wrong_label``: an unmatched annotated box that a confident predicted box of another class covers
  with IoU >= ``MATCH_IOU``: possibly the wrong class; weight that box's score.

A finding weighing less than ``MIN_WEIGHT`` is dropped: the kinds shown are the ones worth a look. The
overall value is 1 - prod(1 - weight): in [0, 1], 0 when the model agrees, higher with more and surer
findings. Coordinates are Label Studio's percentages; IoU does not change under scaling of an
axis, and a rotated box counts as its bounding box in pixels (``original_width``/``original_height``).
"""

from dataclasses import dataclass, field

import numpy as np

CONFIDENT = 0.5
MATCH_IOU = 0.5
SUPPORT_IOU = 0.1
LOCALISATION_IOU = 0.6
GROUP_INSIDE = 0.5
MIN_WEIGHT = 0.2
KINDS = ('missing', 'spurious', 'off', 'wrong_label')
KIND_WORDS = {'missing': 'missing', 'spurious': 'spurious', 'off': 'off', 'wrong_label': 'wrong label'}
BOX_TYPES = frozenset({'rectanglelabels', 'rectangle'})


@dataclass(frozen=True)
class Box:
    label: str
    x1: float
    y1: float
    x2: float
    y2: float
    score: float = 1.0


@dataclass(frozen=True)
class Finding:
    kind: str
    weight: float
    annotated: int | None = None  # index of the annotated box, if one is involved
    predicted: int | None = None  # index of the predicted box, if one is involved


@dataclass
class Disagreement:
    """The findings of one comparison and what the Data Manager shows of them."""

    findings: list = field(default_factory=list)

    @property
    def value(self):
        return combined(f.weight for f in self.findings)

    def count(self, kind):
        return sum(f.kind == kind for f in self.findings)

    @property
    def counts(self):
        return {kind: self.count(kind) for kind in KINDS}

    @property
    def kinds(self):
        """The counts in words, most frequent kinds first: "2 missing, 1 off" ('' when it agrees)."""
        return in_words(self.counts, '{n} {kind}')

    @property
    def worst_frames(self):
        return []  # an image has no frames


def in_words(counts, template):
    """Non-zero counts, most frequent kinds first, each as ``template`` with ``n``, ``kind`` and a plural ``s``."""
    shown = sorted(((n, kind) for kind, n in counts.items() if n), key=lambda c: (-c[0], KINDS.index(c[1])))
    return ', '.join(template.format(n=n, kind=KIND_WORDS[kind], s='s' * (n != 1)) for n, kind in shown)


def combined(weights):
    agree = 1.0
    for weight in weights:
        agree *= 1.0 - min(1.0, max(0.0, weight))
    return 1.0 - agree


def _number(value, default=None):
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        return default
    return float(value)


def _score(item):
    """A predicted region's ``score`` in [0, 1]; none readable counts as 0 (it cannot make a confident finding)."""
    return min(1.0, max(0.0, _number(item.get('score'), 0.0)))


def _label(value):
    labels = value.get('rectanglelabels') or value.get('labels') or []
    return str(labels[0]) if isinstance(labels, list) and labels else ''


def box_of(item, score=1.0):
    """A result item as a :class:`Box`, or None when it is not a readable box."""
    if not isinstance(item, dict) or item.get('type') not in BOX_TYPES or not isinstance(item.get('value'), dict):
        return None
    value = item['value']
    x, y, w, h = (_number(value.get(k)) for k in ('x', 'y', 'width', 'height'))
    if None in (x, y, w, h) or w <= 0 or h <= 0:
        return None
    rotation = _number(value.get('rotation'), 0.0)
    if rotation % 360:
        from ls_extensions.video.geometry import bounding_box

        width, height = (_number(item.get(k), 100.0) or 100.0 for k in ('original_width', 'original_height'))
        left, top, w, h = (float(v) for v in bounding_box(x, y, w, h, rotation, width, height))
        x, y, w, h = left * 100 / width, top * 100 / height, w * 100 / width, h * 100 / height
    return Box(_label(value), x, y, x + w, y + h, score)


def boxes_of(result, scored=False):
    """The boxes of a Label Studio result list; ``scored``: a prediction's, whose items carry a ``score``."""
    boxes = []
    for item in result if isinstance(result, list) else []:
        score = _score(item) if scored and isinstance(item, dict) else 1.0
        box = box_of(item, score)
        if box is not None:
            boxes.append(box)
    return boxes


def _overlaps(a, b):
    """Intersection areas of every box of ``a`` with every box of ``b``, and the areas of both."""
    p = np.array([(box.x1, box.y1, box.x2, box.y2) for box in a])[:, None, :]
    q = np.array([(box.x1, box.y1, box.x2, box.y2) for box in b])[None, :, :]
    width = np.clip(np.minimum(p[..., 2], q[..., 2]) - np.maximum(p[..., 0], q[..., 0]), 0, None)
    height = np.clip(np.minimum(p[..., 3], q[..., 3]) - np.maximum(p[..., 1], q[..., 1]), 0, None)
    return (
        width * height,
        (p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1]),
        (q[..., 2] - q[..., 0]) * (q[..., 3] - q[..., 1]),
    )


def iou_matrix(a, b):
    """IoU of every box of ``a`` with every box of ``b``: shape (len(a), len(b))."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    inter, area_a, area_b = _overlaps(a, b)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def inside_matrix(a, b):
    """Share of each box of ``a`` that lies inside each box of ``b``: shape (len(a), len(b))."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    inter, area_a, _ = _overlaps(a, b)
    return inter / area_a


def _greedy(iou, allowed, threshold):
    """Pairs (i, j) in decreasing IoU, each index once, of allowed pairs with IoU >= threshold."""
    candidates = np.argwhere(allowed & (iou >= threshold))
    order = np.argsort(-iou[candidates[:, 0], candidates[:, 1]], kind='stable')
    rows, columns, pairs = set(), set(), []
    for i, j in candidates[order]:
        if i not in rows and j not in columns:
            rows.add(i)
            columns.add(j)
            pairs.append((int(i), int(j)))
    return pairs


def compare(predicted, annotated):
    """The :class:`Disagreement` of predicted boxes (with scores) with annotated boxes."""
    iou, inside = iou_matrix(predicted, annotated), inside_matrix(annotated, predicted).T
    if not predicted or not annotated:
        same = np.zeros(iou.shape, bool)
    else:
        same = np.array([[p.label == a.label for a in annotated] for p in predicted])
    found = Disagreement()
    matches = _greedy(iou, same, SUPPORT_IOU)
    used_p, used_a = {i for i, _ in matches}, {j for _, j in matches}
    spans = (inside >= GROUP_INSIDE).sum(axis=1) if annotated else np.zeros(len(predicted), int)
    for i, j in matches:
        if iou[i, j] < LOCALISATION_IOU and spans[i] < 2:
            weight = predicted[i].score * (1 - iou[i, j] / LOCALISATION_IOU)
            found.findings.append(Finding('off', weight, annotated=j, predicted=i))
    confident = np.array([p.score >= CONFIDENT for p in predicted], bool)
    free_p = confident & ~np.isin(np.arange(len(predicted)), list(used_p))
    free_a = ~np.isin(np.arange(len(annotated)), list(used_a))
    relabels = _greedy(iou, ~same & free_p[:, None] & free_a[None, :], MATCH_IOU)
    for i, j in relabels:
        found.findings.append(Finding('wrong_label', predicted[i].score, annotated=j, predicted=i))
    used_p |= {i for i, _ in relabels}
    used_a |= {j for _, j in relabels}
    for j in range(len(annotated)):
        if j in used_a:
            continue
        support = max((p.score * inside[i, j] for i, p in enumerate(predicted)), default=0.0)
        found.findings.append(Finding('spurious', 1.0 - support, annotated=j))
    covered = iou.max(axis=1) >= MATCH_IOU if annotated else np.zeros(len(predicted), bool)
    for i, box in enumerate(predicted):
        if i not in used_p and confident[i] and not covered[i]:
            found.findings.append(Finding('missing', box.score, predicted=i))
    found.findings = [f for f in found.findings if f.weight >= MIN_WEIGHT]
    return found


def compare_results(prediction_result, annotation_result):
    """:func:`compare` on Label Studio result lists (a prediction's and an annotation's)."""
    return compare(boxes_of(prediction_result, scored=True), boxes_of(annotation_result))


# --- videos: per frame on the expanded tracks -------------------------------------------------------

WORST_FRAMES = 5  # frames named per task


@dataclass
class VideoDisagreement:
    """Per-frame findings of a video, summarised: the worst frame's value, frames per kind, the worst frames."""

    frames: dict = field(default_factory=dict)  # frame -> Disagreement, for frames with a finding

    @property
    def value(self):
        return max((d.value for d in self.frames.values()), default=0.0)

    @property
    def counts(self):
        """Frames showing each kind."""
        return {kind: sum(bool(d.count(kind)) for d in self.frames.values()) for kind in KINDS}

    @property
    def kinds(self):
        """Frames per kind in words: "missing on 10 frames, off on 1 frame"."""
        return in_words(self.counts, '{kind} on {n} frame{s}')

    @property
    def worst_frames(self):
        ranked = sorted(self.frames.items(), key=lambda item: (-item[1].value, item[0]))
        return [frame for frame, _ in ranked[:WORST_FRAMES]]


def _tracks(result, scored):
    """[(label, score, sequence)] of the ``videorectangle`` tracks of a result list, and the frame counts seen."""
    from ls_extensions.video.regions import region_labels

    items = [item for item in result if isinstance(item, dict)] if isinstance(result, list) else []
    companions = {i.get('id'): i.get('value') or {} for i in items if i.get('type') == 'labels'}
    tracks, counts = [], []
    for item in items:
        value = item.get('value')
        if item.get('type') != 'videorectangle' or not isinstance(value, dict):
            continue
        labels = region_labels(item, value, companions)
        score = _score(item) if scored else 1.0
        tracks.append((str(labels[0]) if labels else '', score, value.get('sequence')))
        count = _number(value.get('framesCount'))
        if count and count > 0:
            counts.append(int(count))
    return tracks, counts


def _per_frame(tracks, frames_count):
    """frame -> [Box] on the frames the UI draws each track (a malformed track is left out)."""
    from ls_extensions.video.interpolation import MalformedSequence, expand_sequence

    boxes = {}
    for label, score, sequence in tracks:
        try:
            drawn = expand_sequence(sequence, frames_count)
        except (MalformedSequence, TypeError, ValueError):
            continue
        for frame, x, y, w, h in zip(drawn.frame, drawn.x, drawn.y, drawn.width, drawn.height, strict=True):
            if w > 0 and h > 0:
                boxes.setdefault(int(frame), []).append(Box(label, x, y, x + w, y + h, score))
    return boxes


def compare_video_results(prediction_result, annotation_result):
    """:func:`compare` frame by frame on the expanded tracks of a prediction's and an annotation's video
    results (up to the largest ``framesCount`` either states, else the last keyframe)."""
    predicted, counts_p = _tracks(prediction_result, scored=True)
    annotated, counts_a = _tracks(annotation_result, scored=False)
    frames_count = max(counts_p + counts_a, default=0) or _last_keyframe(predicted + annotated)
    on_p, on_a = _per_frame(predicted, frames_count), _per_frame(annotated, frames_count)
    found = VideoDisagreement()
    for frame in sorted(set(on_p) | set(on_a)):
        frame_found = compare(on_p.get(frame, []), on_a.get(frame, []))
        if frame_found.findings:
            found.frames[frame] = frame_found
    return found


def _last_keyframe(tracks):
    frames = [
        int(_number(k.get('frame'), 0) or 0)
        for _, _, sequence in tracks
        if isinstance(sequence, list)
        for k in sequence
        if isinstance(k, dict)
    ]
    return max(frames, default=0)


def is_video_result(result):
    return isinstance(result, list) and any(isinstance(i, dict) and i.get('type') == 'videorectangle' for i in result)


def compare_any(prediction_result, annotation_result):
    """Images or videos, whichever the results hold."""
    if is_video_result(prediction_result) or is_video_result(annotation_result):
        return compare_video_results(prediction_result, annotation_result)
    return compare_results(prediction_result, annotation_result)
