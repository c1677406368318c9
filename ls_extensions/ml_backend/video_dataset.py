"""Training samples from annotated videos: the tracks as the UI draws them, on the frames worth learning from.

One annotated video task flows: its annotation's `videorectangle` results (the label in the region's
value, or in a `labels` result of the same id) are expanded to per-frame pixel boxes with the UI's
rule (`video.interpolation`: hidden spans give no box; keyframes past the file's last frame are
counted); the video is downloaded as `/predict` reads it (`video_predict.VideoLoader`: the same hosts
and token as images) and checked the same way (a variable frame rate, or a rate off the config's,
would pair boxes with other frames than the annotator saw: that task is skipped with the reason);
`video.frame_sampling` picks the frames; those are decoded once, in order (UI frame f is decoded frame
f - 1), into PNG files of the job's `FrameStore`; each becomes a lazy `Sample` grouped by its task.
So memory holds one frame at a time whatever the videos, the held-out split keeps a video on one side,
and an adapter gets frames as it gets images. Every frame of an annotated video is labelled: a frame
without boxes is a negative (README, "Training on videos").
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from ls_extensions.ml_backend.adapters.base import Sample
from ls_extensions.ml_backend.video_predict import VideoError, check_video, option_number, task_frame_rate
from ls_extensions.video.frame_sampling import DEFAULT_MAX_GAP, DEFAULT_MOTION_IOU, DEFAULT_STRIDE, FrameSampling
from ls_extensions.video.regions import region_labels


def sampling_from_options(options) -> FrameSampling:
    """The server's `--option video_train_stride / video_train_motion_iou / video_train_max_gap`, else the
    defaults; ValueError naming a bad value (the server refuses to start with it)."""
    options = options or {}
    max_gap = option_number(options, 'video_train_max_gap', int, DEFAULT_MAX_GAP, 1, 100_000)
    return FrameSampling(
        stride=option_number(options, 'video_train_stride', int, min(DEFAULT_STRIDE, max_gap), 1, max_gap),
        motion_iou=option_number(options, 'video_train_motion_iou', float, DEFAULT_MOTION_IOU, 0.0, 1.0),
        max_gap=max_gap,
    )


class FrameStore:
    """Chosen video frames as lossless PNG files under the job's work directory (removed with it)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.frames = 0
        self.bytes = 0

    def put(self, name: str, image: np.ndarray) -> Path:
        ok, encoded = cv2.imencode('.png', cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise OSError(f'cannot encode frame {name}')
        path = self.root / f'{name}.png'
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encoded.tobytes())
        self.frames += 1
        self.bytes += len(encoded)
        return path

    @staticmethod
    def reader(path: Path):
        def read():
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise OSError(f'frame file {path} is missing or unreadable')
            return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

        return read


def video_tracks(annotation: dict, control, stats: Counter) -> list[tuple[str, object]]:
    """`(label, ExpansionPlan)` of each well-formed track of the control in `annotation`; the rest counted."""
    from ls_extensions.video.interpolation import ExpansionPlan, MalformedSequence

    results = annotation.get('result')
    results = [r for r in results if isinstance(r, dict)] if isinstance(results, list) else []
    companions = {r.get('id'): r.get('value') for r in results if r.get('type') == 'labels'}
    companions = {k: v for k, v in companions.items() if isinstance(v, dict)}
    tracks = []
    for result in results:
        if result.get('type') != 'videorectangle' or result.get('from_name') != control.from_name:
            continue
        value = result.get('value')
        labels = region_labels(result, value, companions) if isinstance(value, dict) else []
        if not labels or not isinstance(labels[0], str):
            stats['malformed_regions'] += 1
            continue
        try:
            tracks.append((labels[0], ExpansionPlan(value.get('sequence'))))
        except MalformedSequence:
            stats['malformed_regions'] += 1
    return tracks


def track_boxes(tracks, label_map, frames_count, width, height, stats: Counter, dropped: Counter):
    """`({frame: {track: xyxy}}, {track: class})` of the tracks on the video's frames, in pixels."""
    from ls_extensions.video.geometry import bounding_box

    by_frame, classes = {}, {}
    for track, (label, plan) in enumerate(tracks):
        k = label_map.class_for(label)
        if k is None:
            dropped[label] += 1
            continue
        if int(plan.keyframes['frame'].max()) > frames_count:
            stats['keyframes_past_end'] += int(np.sum(plan.keyframes['frame'] > frames_count))
        boxes = plan.expand(1, frames_count)
        if not len(boxes):
            stats['empty_tracks'] += 1
            continue
        left, top, w, h = bounding_box(boxes.x, boxes.y, boxes.width, boxes.height, boxes.rotation, width, height)
        xyxy = np.column_stack([left, top, left + w, top + h])
        xyxy = np.clip(xyxy, 0, [width, height, width, height])
        usable = (xyxy[:, 2] - xyxy[:, 0] >= 1) & (xyxy[:, 3] - xyxy[:, 1] >= 1)
        stats['degenerate_boxes'] += int(np.sum(~usable))
        classes[track] = k
        for frame, box in zip(boxes.frame[usable].tolist(), xyxy[usable].tolist(), strict=True):
            by_frame.setdefault(frame, {})[track] = box
    return by_frame, classes


def video_samples(task, annotation, control, label_map, loader, store, sampling, stats, dropped):
    """The lazy samples of one annotated video task; VideoError with the reason it cannot be used."""
    import av

    from ls_extensions.video.frame_sampling import choose_frames
    from ls_extensions.video.frames import iter_frames

    data = task.get('data') if isinstance(task.get('data'), dict) else {}
    fps = task_frame_rate(control, data)
    tracks = video_tracks(annotation, control, stats)
    task_id = str(task.get('id'))
    samples = []
    with loader.download(data.get(control.value_key)) as path:
        video = check_video(path, fps)
        by_frame, classes = track_boxes(
            tracks, label_map, video.frames_count, video.width, video.height, stats, dropped
        )
        chosen = choose_frames(video.frames_count, by_frame, sampling)
        try:
            for frame, image in iter_frames(path, chosen):
                boxes = by_frame.get(frame, {})
                stored = store.put(f'{task_id}/{frame:06d}', image)
                samples.append(
                    Sample(
                        boxes=np.array(list(boxes.values()), np.float32).reshape(-1, 4),
                        labels=np.array([classes[t] for t in boxes], np.int64),
                        key=f'{task_id}/{frame}',
                        group=task_id,
                        load=store.reader(stored),
                        size=(video.height, video.width),
                    )
                )
        except (ValueError, av.FFmpegError) as exc:  # a damaged file, or one shorter than its header said
            raise VideoError(f'the video cannot be decoded to its end ({str(exc)[:200]})') from None
    stats['video_frames'] += video.frames_count
    stats['video_frames_used'] += len(samples)
    stats['boxes'] += sum(len(s.boxes) for s in samples)
    return samples
