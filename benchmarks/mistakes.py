"""Does "Possible mistake" find the wrong annotations? Injected errors in a synthetic pool, ranked by the product.

A synthetic detection pool (``ls_extensions.ml_backend.synthetic``: perfect ground truth) gets errors at
known rates, each in its own tasks: a box dropped (``missing``), a box shifted by 45% of its size in x and
y (``off``), a box relabelled (``wrong_label``) and a box around nothing added (``spurious``). The model
(our plain-PyTorch adapter) is trained on the pool as labelled, errors included, as a team's model would
be; its predictions are stored as Label Studio predictions, so the product's signals compare them with
the annotations, and the ranking read back is the product's own: ``GET /api/projects/<id>/mistakes/``,
likeliest first (``?kind=`` for one kind).

Per kind: precision of the first k tasks of the ranking (how many hold an injected error of that kind),
k = the number of tasks given that kind's error; ``any``: the overall ranking against every injected
error. Random order's precision is that kind's share of the tasks; the stored uncertainty, ranking the
same labelled tasks, is the other baseline (does disagreement add anything to "the model is unsure?").
Last, what the comparison adds to an annotation save (the signal that refreshes the task's row), against the
same saves with that receiver disconnected, in the same process.

    .venv/bin/python benchmarks/mistakes.py            # 3 seeds of 200 tasks, 5% of each kind
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from active_learning import setup_django  # noqa: E402  (the same Django set-up as the other simulated benchmark)

KINDS = ('missing', 'spurious', 'off', 'wrong_label')
SIZE = 128


# -- the pool and its errors (pure) ----------------------------------------------------------------------


def iou(a, b):
    ax, ay, aw, ah, _ = a
    bx, by, bw, bh, _ = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


def inject(rng, boxes, kind):
    """The boxes with one error of ``kind``."""
    boxes = list(boxes)
    at = int(rng.integers(len(boxes)))
    x, y, w, h, k = boxes[at]
    if kind == 'missing':
        del boxes[at]
    elif kind == 'wrong_label':
        boxes[at] = (x, y, w, h, 1 - k)
    elif kind == 'off':
        dx, dy = (int(round(0.45 * side)) * int(rng.choice((-1, 1))) for side in (w, h))
        boxes[at] = (min(max(0, x + dx), SIZE - w), min(max(0, y + dy), SIZE - h), w, h, k)
    else:  # spurious: a box where nothing is, overlapping no object
        for _ in range(100):
            bw, bh = (int(v) for v in rng.integers(16, 33, size=2))
            new = (int(rng.integers(0, SIZE - bw)), int(rng.integers(0, SIZE - bh)), bw, bh, int(rng.integers(2)))
            if all(iou(new, b) == 0 for b in boxes):
                break
        boxes.append(new)
    return boxes


def noisy_pool(seed, count, rate):
    """[(image, true boxes, labelled boxes, injected kind or None)]: ``rate`` of the tasks per kind."""
    from ls_extensions.ml_backend.synthetic import dataset

    rng = np.random.default_rng(1000 + seed)
    items = dataset(count, seed=seed, size=SIZE)
    per_kind = int(round(rate * count))
    order = rng.permutation(count)
    kind_of = {int(order[i * per_kind + j]): kind for i, kind in enumerate(KINDS) for j in range(per_kind)}
    pool = []
    for i, (image, boxes) in enumerate(items):
        kind = kind_of.get(i)
        pool.append((image, boxes, inject(rng, boxes, kind) if kind else list(boxes), kind))
    return pool


def injected_with(kind_of, kind):
    """Whether a task holds an injected error of ``kind`` (``any``: of any kind)."""
    if kind == 'any':
        return lambda task: kind_of[task] is not None
    return lambda task: kind_of[task] == kind


def precision_at(ranked, holds, k):
    """Share of the first ``k`` of ``ranked`` for which ``holds``; a list shorter than k counts its lack as misses."""
    return sum(bool(holds(task)) for task in ranked[:k]) / k if k else float('nan')


# -- the model and the product ---------------------------------------------------------------------------


def train(seed, pool, epochs):
    from ls_extensions.ml_backend.adapters.base import Sample
    from ls_extensions.ml_backend.adapters.torch_example import TorchExampleAdapter
    from ls_extensions.ml_backend.synthetic import to_arrays

    options = {'classes': 'fish,crab', 'seed': seed, 'epochs': epochs}
    samples = [Sample(image, *to_arrays(labelled), key=str(i)) for i, (image, _, labelled, _) in enumerate(pool)]
    fitted = TorchExampleAdapter(options=options).fit(samples, Path(tempfile.mkdtemp(prefix='mistakes-')))
    return TorchExampleAdapter(checkpoint=fitted.checkpoint, options=options)


def make_project(user, pool, name):
    """The pool as a Label Studio project: data-URI tasks, each annotated with its labelled boxes."""
    from projects.models import Project
    from tasks.models import Annotation, Task

    from ls_extensions.ml_backend.synthetic import to_ls_result
    from tests.label_configs import IMAGE_BOXES
    from tests.ml_backend.support import png_data_uri

    project = Project.objects.create(
        title=name, label_config=IMAGE_BOXES, created_by=user, organization=user.active_organization
    )
    ids = []
    for image, _, labelled, _ in pool:
        task = Task.objects.create(project=project, data={'image': png_data_uri(image)})
        Annotation.objects.create(
            task=task, project=project, completed_by=user, result=to_ls_result(labelled, SIZE, SIZE)
        )
        ids.append(task.id)
    return project, ids


def predict(adapter, project, ids, pool):
    """The model's boxes on every task as predictions of version 'v1' (the product's signals compare them)."""
    from tasks.models import Prediction

    from ls_extensions.ml_backend.labels import rectangle_region

    classes = ('fish', 'crab')
    for task_id, detections in zip(ids, adapter.predict([image for image, *_ in pool]), strict=True):
        regions = [
            {
                **rectangle_region(
                    'label', 'image', d.x1, d.y1, d.x2 - d.x1, d.y2 - d.y1, SIZE, SIZE, classes[d.class_index]
                ),
                'score': d.score,
            }
            for d in detections
        ]
        score = min((d.score for d in detections), default=0.0)
        Prediction.objects.create(task_id=task_id, project=project, model_version='v1', score=score, result=regions)


def ranking(client, project, kind=None):
    """Task ids as the product ranks them (its API, likeliest mistake first)."""
    query = {'page_size': 1000, **({'kind': kind} if kind else {})}
    response = client.get(f'/api/projects/{project.id}/mistakes/', query)
    if response.status_code != 200:
        raise SystemExit(f'mistakes API: {response.status_code} {response.content[:300]!r}')
    return [row['task'] for row in response.json()['results']]


def by_uncertainty(project):
    from ls_extensions.scoring.models import TaskUncertainty

    rows = TaskUncertainty.objects.filter(project=project, value__isnull=False).order_by('-value', 'task_id')
    return list(rows.values_list('task_id', flat=True))


def save_cost(ids, rounds=3, per_round=40):
    """ms per annotation save on labeled, predicted tasks: with our comparison (the signal that refreshes the
    task's row) and without it (Label Studio's save alone), interleaved rounds in the same process."""
    from django.db.models.signals import post_save
    from tasks.models import Annotation

    from ls_extensions.scoring import signals

    annotations = list(Annotation.objects.filter(task_id__in=ids[:per_round]))
    hook = {'sender': Annotation, 'dispatch_uid': 'ls_ext_scoring_annotation_saved'}
    times = {'with the comparison': [], 'without it': []}
    for _ in range(rounds):
        for name in times:
            if name == 'without it':
                post_save.disconnect(**hook)
            try:
                started = time.perf_counter()
                for annotation in annotations:
                    annotation.save()
                times[name].append((time.perf_counter() - started) * 1000 / len(annotations))
            finally:
                if name == 'without it':
                    post_save.connect(signals.annotation_saved, **hook)
    return {name: float(np.median(values)) for name, values in times.items()}


# -- the run ---------------------------------------------------------------------------------------------


def run(args):
    from tests.conftest import logged_in_client, make_user

    user = make_user('reviewer@example.org')
    client = logged_in_client(user)
    table = {kind: {'ours': [], 'uncertainty': []} for kind in (*KINDS, 'any')}
    injected = {}
    started = time.monotonic()
    for seed in range(args.seeds):
        pool = noisy_pool(seed, args.tasks, args.rate)
        project, ids = make_project(user, pool, f'mistakes seed {seed}')
        kind_of = {task_id: kind for task_id, (*_, kind) in zip(ids, pool, strict=True)}
        predict(train(seed, pool, args.epochs), project, ids, pool)
        uncertain = by_uncertainty(project)
        for kind in (*KINDS, 'any'):
            wanted = injected_with(kind_of, kind)
            k = sum(wanted(t) for t in ids)
            injected[kind] = k
            table[kind]['ours'].append(
                precision_at(ranking(client, project, None if kind == 'any' else kind), wanted, k)
            )
            table[kind]['uncertainty'].append(precision_at(uncertain, wanted, k))
        print(f'seed {seed}: ' + ' '.join(f'{kind} {table[kind]["ours"][-1]:.2f}' for kind in table), flush=True)
    cost = save_cost(ids)
    report(table, injected, time.monotonic() - started, args)
    base = cost['without it']
    print('\nannotation save on a labeled, predicted task (in-process, SQLite, median of 3 rounds of 40):')
    for name, ms in cost.items():
        print(f'{name:>20s} {ms:7.2f} ms  {ms / base:5.2f}x')


def report(table, injected, seconds, args):
    print(
        f'\nprecision@k of the ranking, k = tasks holding the error; mean ± std over {args.seeds} seeds of '
        f'{args.tasks} tasks, {args.rate:.0%} of the tasks per kind'
    )
    print(f'{"kind":>12s} {"k":>4s} {"Possible mistake":>17s} {"by uncertainty":>15s} {"random":>7s} {"ratio":>7s}')
    for kind, runs in table.items():
        ours, unsure = np.array(runs['ours']), np.array(runs['uncertainty'])
        random_precision = injected[kind] / args.tasks
        print(
            f'{kind:>12s} {injected[kind]:>4d} {ours.mean():>10.2f}±{ours.std():.2f} '
            f'{unsure.mean():>9.2f}±{unsure.std():.2f} {random_precision:>7.2f} {ours.mean() / random_precision:>6.1f}x'
        )
    print(f'\n{seconds:.0f} s in all')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--tasks', type=int, default=200)
    parser.add_argument('--rate', type=float, default=0.05, help='share of the tasks given each kind of error')
    parser.add_argument('--epochs', type=int, default=15)
    args = parser.parse_args()
    setup_django()
    run(args)


if __name__ == '__main__':
    main()
