"""A hostile but UI-valid set of video tracks, and the boxes Label Studio shows for it, frame by frame.

Every case here is something the labeling UI accepts and draws (docs/video-interpolation.md):
rotation across 0/360 degrees, hidden spans (`enabled: false`), unsorted keyframes, duplicate frames,
keyframes past the end of the video, a keyframe at frame 0 (tracker output converted 0-based),
keyframes without `enabled`/`rotation` (imported results), and boxes partly or wholly outside the frame.
The reader tests of every per-frame format (tests/video/readers/test_*.py) export this set through the
real API from a real project whose tasks play real videos (written with `frames.VideoWriter`), and
compare what each third-party reader gets with `shown_boxes()`.

`shown_boxes()` applies `reference_interpolation.reference_expand` (the frame-by-frame transcription of
the UI's code) to the stored keyframes, over the video's real frame count. The pixel geometry below
(corners, bounds, clipping) is written out with `math` on purpose, apart from the exporter's NumPy code.
"""

from __future__ import annotations

import io
import math
import zipfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from ls_extensions.video.frames import VideoWriter
from tests.video.reference_interpolation import reference_expand

LABELS = ('fish', 'crab')
UPLOAD_PREFIX = 'abcd1234'  # Label Studio stores uploads as <random prefix>-<name>


def label_config(framerate: float | str = 25) -> str:
    return f"""<View>
  <Labels name="videoLabels" toName="video" allowEmpty="true">
    <Label value="fish"/>
    <Label value="crab"/>
  </Labels>
  <Video name="video" value="$video" framerate="{framerate}"/>
  <VideoRectangle name="box" toName="video"/>
</View>"""


def kf(frame, x, y, width, height, enabled=True, rotation=0.0):
    return {'frame': frame, 'enabled': enabled, 'x': x, 'y': y, 'width': width, 'height': height, 'rotation': rotation}


@dataclass(frozen=True)
class StoredTrack:
    """One `videorectangle` result as Label Studio stores it; `case` says what makes it hostile."""

    case: str
    label: str
    sequence: list[dict]


@dataclass(frozen=True)
class Clip:
    """A real video (frame i: grey level 8*i) and the tracks annotated on it."""

    name: str
    width: int
    height: int
    frames: int
    fps: Fraction
    tracks: tuple[StoredTrack, ...]

    @property
    def stem(self) -> str:
        """The export's folder/sequence name of this video (the uploaded file's stem)."""
        return f'{UPLOAD_PREFIX}-{self.name}'


HARBOUR = Clip(
    'harbour',
    160,
    96,
    30,
    Fraction(25),
    (
        # 350 -> 20 -> 190 degrees: the UI turns the short way, through 0 and through 180
        StoredTrack(
            'rotation',
            'fish',
            [
                kf(2, 20, 20, 20, 15, rotation=350),
                kf(12, 40, 25, 20, 15, rotation=20),
                kf(22, 50, 30, 20, 15, False, 190),
            ],
        ),
        StoredTrack(
            'hidden spans',
            'crab',
            [
                kf(1, 5, 60, 15, 20),
                kf(6, 15, 60, 15, 20, False),
                kf(12, 30, 55, 15, 20),
                kf(18, 45, 50, 15, 20, False),
                kf(24, 50, 45, 15, 20),
            ],
        ),
        # walked in stored order: 4..14 interpolate 3 -> 15 (frame 9 is never reached), then 9's values held
        StoredTrack(
            'unsorted keyframes', 'fish', [kf(3, 10, 10, 10, 10), kf(15, 50, 20, 10, 10), kf(9, 30, 40, 12, 8)]
        ),
        # frame 4 is the first frame-4 keyframe; 5..9 go from the second one to the first frame-10 one
        StoredTrack(
            'duplicate frames',
            'crab',
            [kf(4, 10, 40, 10, 10), kf(4, 40, 40, 14, 10), kf(10, 20, 35, 10, 10, False), kf(10, 70, 30, 10, 12)],
        ),
        # the video has 30 frames: 25..30 interpolate towards a keyframe it never reaches
        StoredTrack(
            'keyframes past the end', 'fish', [kf(25, 10, 70, 20, 20), kf(40, 85, 70, 20, 20), kf(55, 5, 5, 5, 5)]
        ),
        # leaves through the top-left, crosses the frame and ends wholly outside on the right (frames 20..26)
        StoredTrack(
            'outside the frame',
            'crab',
            [kf(1, -10, -5, 30, 25), kf(21, 110, 80, 30, 25), kf(26, 110, 80, 30, 25, False)],
        ),
        StoredTrack(
            'rotated past the edge',
            'fish',
            [
                kf(5, 85, 40, 25, 15, rotation=30),
                kf(15, 90, 50, 25, 15, rotation=60),
                kf(20, 130, 50, 25, 15, False, 60),
            ],
        ),
        StoredTrack('keyframe at frame 0', 'crab', [kf(0, 0, 0, 10, 10), kf(10, 45, 45, 10, 10, False)]),
        StoredTrack('one disabled keyframe', 'fish', [kf(7, 30, 30, 10, 10, False)]),
        # imported results: no `enabled` (false in the UI), no `rotation` (0), frames as floats
        StoredTrack(
            'imported keys',
            'crab',
            [
                {'frame': 8.0, 'x': 60, 'y': 10, 'width': 10, 'height': 10},
                {'frame': 11.0, 'x': 70, 'y': 10, 'width': 10, 'height': 10},
            ],
        ),
    ),
)

QUAY = Clip(
    'quay',
    128,
    72,
    12,
    Fraction(25),
    (
        StoredTrack('past the bottom-right corner', 'crab', [kf(1, 50, 50, 60, 60)]),
        # rotated -90 about its top-left: the box stands above its anchor, half out through the top
        StoredTrack(
            'rotated out through the top',
            'fish',
            [kf(2, 10, 30, 50, 20, rotation=-90), kf(12, 30, 30, 50, 20, rotation=-90)],
        ),
        StoredTrack(
            'rotated wholly outside', 'fish', [kf(3, 120, 20, 10, 10, rotation=45), kf(6, 120, 20, 10, 10, False, 45)]
        ),
    ),
)

# A 29.97 fps (30000/1001) video in a project whose <Video framerate> says so: seqinfo.ini rounding
NTSC = Clip('ntsc', 64, 48, 8, Fraction(30000, 1001), (StoredTrack('plain', 'fish', [kf(1, 10, 10, 20, 20)]),))

CLIPS = (HARBOUR, QUAY)


# ---------------------------------------------------------------- what the UI shows


@dataclass(frozen=True)
class ShownBox:
    """A box as the UI draws it on `frame` (1-based), in Label Studio percents, rotation about the top-left."""

    clip: Clip = field(repr=False)
    track_id: int  # 1-based position among the task's videorectangle results, as the export numbers them
    label: str
    frame: int
    x: float
    y: float
    width: float
    height: float
    rotation: float

    @property
    def class_index(self) -> int:
        return LABELS.index(self.label)

    def corners(self) -> list[tuple[float, float]]:
        """Pixel corners top-left, top-right, bottom-right, bottom-left, rotated clockwise about the top-left."""
        w, h = self.clip.width, self.clip.height
        left, top, bw, bh = self.x * w / 100, self.y * h / 100, self.width * w / 100, self.height * h / 100
        angle = math.radians(self.rotation)
        cos, sin = math.cos(angle), math.sin(angle)
        return [
            (left + dx * cos - dy * sin, top + dx * sin + dy * cos) for dx, dy in ((0, 0), (bw, 0), (bw, bh), (0, bh))
        ]

    def bounds(self) -> tuple[float, float, float, float]:
        """(left, top, width, height) in pixels of the axis-aligned box around it (the box itself unrotated)."""
        xs, ys = zip(*self.corners(), strict=True)
        return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)

    def clipped_bounds(self) -> tuple[float, float, float, float] | None:
        """The bounds cut to the frame; None when nothing of the box is inside it."""
        left, top, width, height = self.bounds()
        x0, y0 = max(left, 0.0), max(top, 0.0)
        x1, y1 = min(left + width, self.clip.width), min(top + height, self.clip.height)
        if x1 <= x0 or y1 <= y0:
            return None
        return x0, y0, x1 - x0, y1 - y0

    def visible_polygon(self) -> list[tuple[float, float]]:
        """The part of the box inside the frame (Sutherland-Hodgman against the four edges); [] if none."""
        polygon = self.corners()
        w, h = self.clip.width, self.clip.height
        edges = ((0, 1, 0.0), (0, -1, -w), (1, 1, 0.0), (1, -1, -h))  # keep points with sign * p[axis] >= limit
        for axis, sign, limit in edges:
            kept = []
            for index, current in enumerate(polygon):
                previous = polygon[index - 1]
                inside_now, inside_before = sign * current[axis] >= limit, sign * previous[axis] >= limit
                if inside_now != inside_before:
                    t = (limit - sign * previous[axis]) / (sign * current[axis] - sign * previous[axis])
                    kept.append(tuple(p + (c - p) * t for p, c in zip(previous, current, strict=True)))
                if inside_now:
                    kept.append(current)
            polygon = kept
            if not polygon:
                return []
        return polygon

    def visible_area(self) -> float:
        polygon = self.visible_polygon()
        return (
            abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(polygon, polygon[1:] + polygon[:1], strict=True)))
            / 2
        )

    def clamped_corners(self) -> list[tuple[float, float]]:
        """The corners moved into the frame, each coordinate clamped (Ultralytics' `Instances.clip` on polygons)."""
        w, h = self.clip.width, self.clip.height
        return [(min(max(x, 0.0), w), min(max(y, 0.0), h)) for x, y in self.corners()]

    @property
    def inside(self) -> bool:
        """Wholly inside the frame (nothing to clip)."""
        return all(0 <= px <= self.clip.width and 0 <= py <= self.clip.height for px, py in self.corners())


def shown_boxes(clip: Clip) -> list[ShownBox]:
    """Every box the UI draws on the clip's real frames, by track then frame."""
    shown = []
    for track_id, track in enumerate(clip.tracks, 1):
        for box in reference_expand(track.sequence, clip.frames):
            geometry = {name: float(box[name]) for name in ('x', 'y', 'width', 'height', 'rotation')}
            shown.append(ShownBox(clip, track_id, track.label, box['frame'], **geometry))
    return shown


def shown_by_frame(clip: Clip) -> dict[int, list[ShownBox]]:
    """Frame (1..clip.frames) -> the boxes drawn on it, every frame present (empty list: no box)."""
    frames = {frame: [] for frame in range(1, clip.frames + 1)}
    for box in shown_boxes(clip):
        frames[box.frame].append(box)
    return frames


# ---------------------------------------------------------------- the Label Studio side


def write_clip_video(path: Path, clip: Clip) -> None:
    """The clip as a real H.264 file: decoded frame i is grey level 8*i (UI frame i + 1)."""
    with VideoWriter(path, clip.fps) as writer:
        for index in range(clip.frames):
            writer.write(np.full((clip.height, clip.width, 3), (8 * index) % 256, np.uint8))


def stored_result(track: StoredTrack, index: int, clip: Clip) -> dict:
    return {
        'id': f'r{index}-{clip.name}',
        'from_name': 'box',
        'to_name': 'video',
        'type': 'videorectangle',
        'origin': 'manual',
        'value': {
            'sequence': track.sequence,
            'labels': [track.label],
            'framesCount': clip.frames,
            'duration': clip.frames / float(clip.fps),
        },
    }


def make_project_with_clips(user, clips=CLIPS, framerate: float | str = 25):
    """A real project with one task per clip: the video uploaded as Label Studio stores uploads, one annotation."""
    from data_import.models import FileUpload
    from django.conf import settings
    from projects.models import Project
    from tasks.models import Annotation, Task

    project = Project.objects.create(
        title='hostile tracks',
        created_by=user,
        organization=user.active_organization,
        label_config=label_config(framerate),
    )
    tasks = []
    for clip in clips:
        relative = f'{settings.UPLOAD_DIR}/{project.id}/{UPLOAD_PREFIX}-{clip.name}.mp4'
        path = Path(settings.MEDIA_ROOT, relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_clip_video(path, clip)
        FileUpload.objects.create(user=user, project=project, file=relative)
        task = Task.objects.create(project=project, data={'video': f'/data/{relative}'})
        results = [stored_result(track, index, clip) for index, track in enumerate(clip.tracks, 1)]
        Annotation.objects.create(task=task, project=project, completed_by=user, result=results)
        tasks.append(task)
    return project, tasks


def export_bytes(client, project, format_name: str, **params) -> bytes:
    """The per-frame export as the API streams it (a 200 is asserted)."""
    response = client.get(f'/api/projects/{project.id}/export/video-frames', {'format': format_name, **params})
    assert response.status_code == 200, response.content
    return b''.join(response.streaming_content)


def extract(data: bytes, folder: Path) -> Path:
    """Unzip an export into `folder`, as a user would before pointing a tool at it."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(folder)
    return folder
