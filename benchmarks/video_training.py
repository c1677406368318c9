"""Training on annotated videos: peak memory against video length, and which frames to keep.

    .venv/bin/python benchmarks/video_training.py            # memory: 20 videos x 300 / x 3000 frames; sampling rules
    .venv/bin/python benchmarks/video_training.py --quick    # memory: 20 x 100 / x 1000; shorter training

Synthetic fish videos (tests/ml_backend/fish_videos.py: 256x144, 25 fps, written as `frames_to_video` writes
them): red rectangles ("fish") and blue ellipses ("crab") on a still textured background, moving through a
random waypoint every second, each annotated as Label Studio stores a drawn track (a keyframe per waypoint). Every row runs the model server's own code: `training.build_dataset` (download, timing
check, UI interpolation, `frame_sampling`, the frame store) and the tiny MMDetection model's `fit`.

Table 1, each row in a fresh process: peak RSS of building the dataset and training, with the frames in
the frame store (ours, lazy) and, as the baseline, with every chosen frame held in memory (what the image
path does). Table 2, one learning round: 2 unseen videos pre-annotated by `/predict`'s own code
(`video_predict.predict_video`: detector, ByteTrack, keyframe reduction) before and after training on 4
annotated videos, scored by motmetrics against the drawn truth, with the keyframes an annotator sets to
correct the tracks against drawing them from scratch, and the seconds for one long video. Table 3:
training on the frames each sampling rule keeps from 6 videos, the same number of iterations, mAP@0.5 on
every 10th frame of 2 held-out videos.
"""

from __future__ import annotations

import argparse
import base64
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.ml_backend.fish_videos import CONFIG, HEIGHT, WIDTH, track_results, write_video  # noqa: E402

TINY = REPO / 'ls_extensions/ml_backend/configs/tiny_rtmdet.py'
ADAPTER = 'ls_extensions.ml_backend.adapters.mmdet_adapter.MMDetAdapter'
# (name, stride, motion IoU, max gap): every frame; ours; a fixed stride without motion; sparser
RULES = [('every frame', 1, 1.0, 1), ('ours (default)', 5, 0.7, 50), ('every 5th', 5, 0.0, 5), ('sparse', 25, 0.5, 100)]


def annotated_task(task_id: int, uri: str, objects, frames: int) -> dict:
    results = track_results(objects, frames)
    return {'id': task_id, 'data': {'video': uri}, 'annotations': [{'id': task_id, 'result': results}]}


def video_tasks(root: Path, count: int, frames: int, first_seed: int, distinct: bool = True):
    """`count` annotated video tasks; with `distinct=False` they share one file (the memory rows: what
    matters there is length and number, and writing 20 x 3000 frames takes minutes)."""
    tasks, uri, objects = [], None, None
    for i in range(count):
        if distinct or uri is None:
            path = root / f'video{first_seed + i}.mp4'
            objects = write_video(path, frames, first_seed + i)
            uri = 'data:video/mp4;base64,' + base64.b64encode(path.read_bytes()).decode()
        tasks.append(annotated_task(first_seed + i, uri, objects, frames))
    return tasks


def sources(work: Path, rule):
    from ls_extensions.ml_backend.images import ImageLoader
    from ls_extensions.ml_backend.labels import parse_controls
    from ls_extensions.ml_backend.training import DatasetSources
    from ls_extensions.ml_backend.video_dataset import FrameStore
    from ls_extensions.ml_backend.video_predict import VideoLoader

    return DatasetSources(parse_controls(CONFIG), ImageLoader(), VideoLoader(), FrameStore(work), rule)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_row(videos: int, frames: int, held: bool, iters: int) -> dict:
    """One table-1 row, in this (fresh) process."""
    from ls_extensions.ml_backend.adapters.base import Sample, load_adapter_class
    from ls_extensions.ml_backend.training import build_dataset
    from ls_extensions.video.frame_sampling import FrameSampling

    adapter = load_adapter_class(ADAPTER)(config=TINY, options={'iters': iters, 'batch_size': 8})
    with tempfile.TemporaryDirectory() as tmp:
        tasks = video_tasks(Path(tmp), videos, frames, 1, distinct=False)
        ready = rss_mb()
        started = time.perf_counter()
        src = sources(Path(tmp) / 'store', FrameSampling())
        samples, stats = build_dataset(tasks, src, adapter.classes)
        if held:  # the baseline: every chosen frame decoded and kept, as images are
            samples = [Sample(image=s.image, boxes=s.boxes, labels=s.labels, key=s.key, group=s.group) for s in samples]
        built = time.perf_counter()
        adapter.fit(samples, Path(tmp) / 'fit')
        fitted = time.perf_counter()
        return {
            'held': held,
            'videos': videos,
            'frames': frames,
            'kept': len(samples),
            'store_mb': stats.get('frame_store_mb', 0.0),
            'build_s': round(built - started, 1),
            'fit_s': round(fitted - built, 1),
            'ready_mb': round(ready),
            'peak_mb': round(rss_mb()),
        }


def sampling_rows(iters: int, frames: int) -> list[dict]:
    from ls_extensions.ml_backend.adapters.base import load_adapter_class
    from ls_extensions.ml_backend.training import build_dataset, evaluate
    from ls_extensions.video.frame_sampling import FrameSampling

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train_tasks = video_tasks(root, 6, frames, 100)
        held_tasks = video_tasks(root, 2, frames, 200)
        cls = load_adapter_class(ADAPTER)
        base = cls(config=TINY, options={'iters': iters, 'batch_size': 8})
        held, _ = build_dataset(held_tasks, sources(root / 'held', FrameSampling(10, 0.0, 10)), base.classes)
        for name, stride, motion, gap in RULES:
            started = time.perf_counter()
            src = sources(root / name.replace(' ', '_'), FrameSampling(stride, motion, gap))
            samples, stats = build_dataset(train_tasks, src, base.classes)
            built = time.perf_counter()
            result = base.fit(samples, root / 'fit')
            fitted = time.perf_counter()
            trained = cls(config=TINY, checkpoint=result.checkpoint)
            rows.append(
                {
                    'rule': f'{name}: stride {stride}, IoU {motion}, gap {gap}',
                    'kept': len(samples),
                    'of': stats['video_frames'],
                    'store_mb': stats.get('frame_store_mb', 0.0),
                    'build_s': round(built - started, 1),
                    'fit_s': round(fitted - built, 1),
                    'map': evaluate(trained, held),
                }
            )
    return rows


def to_correct(truths, drawn, frames: int) -> tuple[int, int]:
    """(keyframes an annotator sets to correct the predicted tracks, keyframes to draw the truth from scratch).

    From scratch: our reducer's keyframes of each true track at IoU 0.9 (what a careful annotator needs).
    Correcting: each true object takes the predicted track overlapping it most; every run of frames where
    that track is missing or off (IoU < 0.9) costs the true track's keyframes inside the run plus one at
    each end, an object no track follows costs its scratch keyframes, and each predicted track no object
    takes costs one action (delete it).
    """
    from ls_extensions.video.track_keyframes import box_iou, reduce_track

    def iou(a, b):
        xywh = lambda v: np.column_stack([v[:, :2], v[:, 2:] - v[:, :2]])  # noqa: E731
        return box_iou(xywh(a), xywh(b))

    frame_ids = np.arange(1, frames + 1)
    scratch = correct = 0
    taken = set()
    for _, xyxy in truths:
        keys = {k['frame'] for k in reduce_track(frame_ids, xyxy, WIDTH, HEIGHT, frames, min_iou=0.9)}
        scratch += len(keys)
        overlaps = {}
        for f in range(1, frames + 1):
            for index, box in drawn.get(f, {}).items():
                overlaps[index] = overlaps.get(index, 0.0) + float(iou(xyxy[f - 1 : f], box[None])[0])
        if not overlaps:
            correct += len(keys)
            continue
        best = max(overlaps, key=overlaps.get)
        taken.add(best)
        good = np.array(
            [best in drawn.get(f, {}) and iou(xyxy[f - 1 : f], drawn[f][best][None])[0] >= 0.9 for f in frame_ids]
        )
        bad_runs = np.flatnonzero(np.diff(np.concatenate([[0], (~good).astype(int), [0]])) == 1)
        ends = np.flatnonzero(np.diff(np.concatenate([[0], (~good).astype(int), [0]])) == -1)
        for start, stop in zip(bad_runs.tolist(), ends.tolist(), strict=True):
            correct += 2 + sum(1 for k in keys if start + 1 < k < stop)
    correct += len({i for boxes in drawn.values() for i in boxes} - taken)
    return correct, scratch


def predicted_scores(adapter, tests, frames, options):
    """Totals of one model's predictions of the test videos: MOTA/IDF1 per video, keyframes, boxes, effort."""
    from ls_extensions.ml_backend.labels import LabelMap, parse_controls
    from ls_extensions.ml_backend.video_predict import VideoLoader, predict_video
    from tests.video.synthetic_tracks import Truth, mot_scores, shown_boxes

    control = parse_controls(CONFIG).video
    totals = {'mota': [], 'idf1': [], 'keyframes': 0, 'per_frame': 0, 'correct': 0, 'scratch': 0, 'seconds': 0.0}
    for task, truths in tests:
        started = time.perf_counter()
        prediction = predict_video(
            task,
            control,
            VideoLoader(),
            lambda images: adapter.predict(images, 0.3),
            LabelMap(adapter.classes, control),
            options=options,
            batch_size=8,
            score_threshold=0.3,
            version='benchmark',
        )
        totals['seconds'] += time.perf_counter() - started
        regions = prediction['result']
        drawn = shown_boxes(dict(enumerate(regions)), frames, WIDTH, HEIGHT)  # what the UI draws
        truth = [Truth(i + 1, 0, np.arange(1, frames + 1), xyxy) for i, (_, xyxy) in enumerate(truths)]
        scores = mot_scores(truth, drawn, frames)
        totals['mota'].append(scores['mota'])
        totals['idf1'].append(scores['idf1'])
        totals['keyframes'] += sum(len(r['value']['sequence']) for r in regions)
        totals['per_frame'] += sum(len(boxes) for boxes in drawn.values())
        correct, scratch = to_correct(truths, drawn, frames)
        totals['correct'] += correct
        totals['scratch'] += scratch
    totals['fps'] = len(tests) * frames / totals['seconds']
    return totals


def round_rows(iters: int, frames: int, annotated: int, long_frames: int, runs: int = 3):
    """Table 2: pre-annotating 2 unseen videos before and after one round of training on `annotated` videos,
    `runs` trainings (NumPy seeds 0.., which mmdet's random flip draws from); the seconds for one long video."""
    from ls_extensions.ml_backend.adapters.base import load_adapter_class
    from ls_extensions.ml_backend.training import build_dataset
    from ls_extensions.ml_backend.video_predict import VideoOptions
    from ls_extensions.video.frame_sampling import FrameSampling
    from tests.ml_backend.fish_videos import true_boxes

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cls = load_adapter_class(ADAPTER)
        base = cls(config=TINY, options={'iters': iters, 'batch_size': 8})
        samples, _ = build_dataset(
            video_tasks(root, annotated, frames, 300), sources(root / 'round', FrameSampling()), base.classes
        )
        trained = []
        for run in range(runs):
            np.random.seed(run)
            trained.append(cls(config=TINY, checkpoint=base.fit(samples, root / f'fit{run}').checkpoint))
        tests = []
        for seed in (400, 401):
            path = root / f'test{seed}.mp4'
            objects = write_video(path, frames, seed)
            uri = 'data:video/mp4;base64,' + base64.b64encode(path.read_bytes()).decode()
            tests.append(({'id': seed, 'data': {'video': uri}}, true_boxes(objects, frames)))
        variants = [
            ('before: config initialisation', [base], VideoOptions()),
            (f'after 1 round ({annotated} videos), raw tracks', trained, VideoOptions(smooth=0)),
            (f'after 1 round ({annotated} videos), ours', trained, VideoOptions()),
        ]
        rows = []
        for name, models, options in variants:
            per_model = [predicted_scores(model, tests, frames, options) for model in models]
            rows.append({'name': name, 'models': per_model})
        path = root / 'long.mp4'
        write_video(path, long_frames, 500)
        uri = 'data:video/mp4;base64,' + base64.b64encode(path.read_bytes()).decode()
        long_run = predicted_scores(
            trained[0], [({'id': 500, 'data': {'video': uri}}, [])], long_frames, VideoOptions()
        )
    return rows, long_frames / long_run['fps']


def main():
    warnings.filterwarnings('ignore', category=FutureWarning)  # mmdet's torch.cuda.amp calls, on every forward
    warnings.filterwarnings('ignore', message='torch.meshgrid')
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--tables', default='memory,sampling,round', help='which tables (comma separated)')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(memory_row(**json.loads(args.child))))
        return
    tables = set(args.tables.split(','))
    if 'memory' in tables:
        memory_table(args.quick)
    if 'sampling' in tables or 'round' in tables:
        training_tables(args.quick, tables)


def memory_table(quick):
    short, long_ = (100, 1000) if quick else (300, 3000)
    iters = 20 if quick else 30
    rows = []
    for frames in (short, long_):
        for held in (False, True):
            child = json.dumps({'videos': 20, 'frames': frames, 'held': held, 'iters': iters})
            out = subprocess.run(
                [sys.executable, __file__, '--child', child], capture_output=True, text=True, check=True
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f'Peak memory: 20 annotated videos, tiny MMDetection fit ({iters} iterations of 8), a fresh process per row')
    print(f'{"frames":>7} {"frames":>7} {"kept":>6} {"store":>7} {"build":>6} {"fit":>6} {"after":>8} {"peak":>8}')
    print(f'{"kept in":>7} {"/video":>7} {"":>6} {"MB":>7} {"s":>6} {"s":>6} {"setup MB":>8} {"RSS MB":>8}')
    for r in rows:
        kept_in = 'memory' if r['held'] else 'store'
        print(
            f'{kept_in:>7} {r["frames"]:>7} {r["kept"]:>6} {r["store_mb"]:>7} {r["build_s"]:>6} {r["fit_s"]:>6} '
            f'{r["ready_mb"]:>8} {r["peak_mb"]:>8}'
        )
    lazy = {r['frames']: r['peak_mb'] for r in rows if not r['held']}
    held = {r['frames']: r['peak_mb'] for r in rows if r['held']}
    print(
        f'peak RSS, {long_} vs {short} frames per video: store {lazy[long_] / lazy[short]:.2f}x, '
        f'in memory {held[long_] / held[short]:.2f}x; in memory / store at {long_}: {held[long_] / lazy[long_]:.2f}x'
    )
    print()


def training_tables(quick, tables):
    frames = 250 if quick else 750
    train_iters = 60 if quick else 300
    if 'round' in tables:
        round_table(train_iters, frames, 500 if quick else 3000)
    if 'sampling' in tables:
        sampling_table(train_iters, frames)


def round_table(train_iters, frames, long_frames):
    rows, long_seconds = round_rows(train_iters, frames, 4, long_frames)
    print(
        f'One learning round: the tiny model pre-annotates 2 unseen videos of {frames} frames (3 objects each); '
        f'after training: mean [min, max] of {len(rows[-1]["models"])} trainings'
    )
    print(
        f'{"model":<40} {"MOTA":>18} {"IDF1":>18} {"keyframes":>10} {"boxes":>7} {"fewer":>6} {"to correct":>11} '
        f'{"scratch":>8} {"fps":>6}'
    )

    def spread(values):
        return f'{np.mean(values):.3f} [{min(values):.2f}, {max(values):.2f}]'

    for r in rows:
        models = r['models']
        mota = [float(np.mean(m['mota'])) for m in models]
        idf1 = [float(np.mean(m['idf1'])) for m in models]
        mean = {
            k: float(np.mean([m[k] for m in models])) for k in ('keyframes', 'per_frame', 'correct', 'scratch', 'fps')
        }
        fewer = mean['per_frame'] / mean['keyframes'] if mean['keyframes'] else 0.0
        print(
            f'{r["name"]:<40} {spread(mota):>18} {spread(idf1):>18} {mean["keyframes"]:>10.0f} {mean["per_frame"]:>7.0f} '
            f'{fewer:>5.1f}x {mean["correct"]:>11.0f} {mean["scratch"]:>8.0f} {mean["fps"]:>6.1f}'
        )
    print(
        '(keyframes: in the predicted tracks; boxes: drawn boxes, one keyframe each as one-per-frame writes them; raw '
        'tracks: video_smooth=0; to correct / scratch: keyframes an annotator sets to fix the tracks / to draw them)'
    )
    print(f'one {long_frames}-frame video pre-annotated by the trained model in {long_seconds:.1f} s')
    print()


def sampling_table(train_iters, frames):
    print(f'Sampling rules: 6 training videos x {frames} frames, {train_iters} iterations of 8 each, 2 held-out videos')
    print(f'{"rule":<44} {"kept":>11} {"store MB":>9} {"build s":>8} {"fit s":>6} {"mAP@0.5":>8}')
    for r in sampling_rows(train_iters, frames):
        print(
            f'{r["rule"]:<44} {r["kept"]:>5}/{r["of"]:<5} {r["store_mb"]:>9} {r["build_s"]:>8} {r["fit_s"]:>6} '
            f'{r["map"]:>8.3f}'
        )


if __name__ == '__main__':
    main()
