"""Does the uncertainty stream save labels? A simulated annotator over a synthetic detection pool.

The pool is built so that selection can matter: scenes of easy objects (large, full contrast) and hard
ones (small, faint), a rare class (about 1 object in 10), and each scene repeated as near-duplicates (the
objects shifted a pixel or two, new noise: neighbouring video frames). A fixed test set of fresh scenes.

Per seed: the same random seed set is labelled in every strategy's project; then, per round, the model
(our plain-PyTorch adapter with ``--quick``, 48 px; the tiny MMDetection model otherwise, at 64 px through a
copy of its config, ``--iters`` iterations for every model whatever its labels) trains from scratch on the
labelled tasks, predicts every unlabelled one as Label Studio predictions of a new version, built by the
model server's own function at its default score threshold (our signals store and rank their uncertainty),
and the simulated annotator takes ``k`` tasks from Label Studio's real ``/api/projects/<id>/next/`` (our
stream's pick, or Label Studio's own sampling for the baselines) and labels each with its ground truth.
mAP@0.5 on the test set after each round.

Strategies: ``random`` (Label Studio's "Uniform sampling"), ``by id`` (its "Sequential sampling"), each of our
measures (score, min_region, entropy, margin) and ``diverse`` (the default measure, one task per cluster
of near-duplicates first).

    .venv/bin/python benchmarks/active_learning.py --quick     # plain-PyTorch model, under 10 minutes
    .venv/bin/python benchmarks/active_learning.py --iters 400 --rounds 3   # MMDetection, 40 scenes x 5 (1.5 h)
    .venv/bin/python benchmarks/active_learning.py --quick --shared-background   # near-duplicates alike, as frames
    .venv/bin/python benchmarks/active_learning.py --report benchmarks/results/active_learning_2026-12-04_*.txt
    .venv/bin/python benchmarks/active_learning.py --quick --shared-background --seeds 5 \
        --strategies random,margin,diverse --warmup 0,16,24,32   # how long a warm-up pays (the default's source)

``--first-seed``/``--strategies`` run the cells a run lacks; ``--report`` builds the table from saved lines.
``--warmup`` runs each of our strategies once per warm-up, through the stream's own rule (``warmup_annotations``:
a random task until that many are labelled); the seed set is a warm-up of its own, so 0 means the seed set's.
"""

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLASSES = ('fish', 'crab')  # crab is the rare class
STRATEGIES = ('random', 'by id', 'score', 'min_region', 'entropy', 'margin', 'diverse')
BASELINES = ('random', 'by id')  # Label Studio's own sampling: no warm-up of ours applies
WARMUP = ' warm-up '  # in a run's name: "margin warm-up 24"


def runs_of(strategies, warmups):
    """[(name, strategy, warm-up)]: each strategy once per warm-up (the baselines once, without one)."""
    runs = []
    for strategy in strategies:
        for warmup in [0] if strategy in BASELINES else warmups:
            runs.append((f'{strategy}{WARMUP}{warmup}' if warmup else strategy, strategy, warmup))
    return runs


def run_order(name):
    """Sort key of a run's name: the strategies' order, each strategy's warm-ups rising."""
    strategy, _, warmup = name.partition(WARMUP)
    return (STRATEGIES.index(strategy) if strategy in STRATEGIES else len(STRATEGIES), int(warmup or 0))


def setup_django():
    os.environ.setdefault('LABEL_STUDIO_BASE_DATA_DIR', tempfile.mkdtemp(prefix='active-learning-'))
    os.environ['DJANGO_SETTINGS_MODULE'] = 'settings.offline'
    sys.path.insert(0, str(REPO))
    import django

    import tests.conftest  # noqa: F401  (our tests package, before Label Studio's own shadows it)

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.LS_EXT_SCORING_RUNNER = 'inline'
    call_command('migrate', verbosity=0, interactive=False)


# -- the pool (pure) -------------------------------------------------------------------------------------


def scene(rng, size, hard):
    """Objects of one scene: [(x, y, w, h, class index, contrast)]; crab about 1 in 10."""
    objects = []
    for _ in range(int(rng.integers(1, 4))):
        side = int(rng.integers(7, 11)) if hard else int(rng.integers(14, 22))
        x, y = (int(v) for v in rng.integers(2, size - side - 2, size=2))
        objects.append((x, y, side, side, int(rng.random() < 0.1), 0.45 if hard else 1.0))
    return objects


def draw(rng, size, objects, shift=(0, 0), background=None):
    """The scene as an image and its boxes shifted by ``shift`` pixels: on ``background`` with ±6 of new noise,
    or on a new full-amplitude noise background."""
    from PIL import Image, ImageDraw

    from ls_extensions.ml_backend.synthetic import COLOURS

    if background is None:
        background = rng.integers(70, 150, size=(size, size, 3)).astype(np.float64)
    else:
        background = background + rng.integers(-6, 7, size=background.shape)
    image = Image.fromarray(background.astype(np.uint8))
    pen = ImageDraw.Draw(image)
    boxes = []
    for x, y, w, h, k, contrast in objects:
        x, y = min(max(0, x + shift[0]), size - w), min(max(0, y + shift[1]), size - h)
        colour = tuple(int(110 + contrast * (c - 110)) for c in COLOURS[k])
        shape = pen.rectangle if k == 0 else pen.ellipse
        shape([x, y, x + w - 1, y + h - 1], fill=colour)
        boxes.append((x, y, w, h, k))
    return np.asarray(image), boxes


def pool(seed, scenes, copies, size, shared_background=False):
    """[(image, boxes, scene index)]: ``copies`` near-duplicates of each scene, a third of the scenes hard;
    each copy on new noise, or (``shared_background``, like a video's frames) on its scene's own background."""
    rng = np.random.default_rng(seed)
    items = []
    for s in range(scenes):
        objects = scene(rng, size, hard=s % 3 == 0)
        background = scene_background(rng, size) if shared_background else None
        for _ in range(copies):
            shift = tuple(int(v) for v in rng.integers(-2, 3, size=2))
            image, boxes = draw(rng, size, objects, shift, background)
            items.append((image, boxes, s))
    order = rng.permutation(len(items))  # task ids do not follow scenes
    return [items[i] for i in order]


def scene_background(rng, size):
    """A scene's own background: a grey gradient in a random direction, so that a 4x4 average hash has a
    clear side per cell (flat noise would put every cell at the mean)."""
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:size, 0:size] / size
    ramp = np.cos(angle) * x + np.sin(angle) * y
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-9)
    return np.repeat((80 + 60 * ramp)[..., None], 3, axis=2)


def ahead_from(budgets, curve, baseline):
    """The first budget after the seed set from which ``curve`` stays at or above ``baseline``, or None."""
    for start in range(1, len(budgets)):
        if all(c >= b for c, b in zip(curve[start:], baseline[start:], strict=True)):
            return budgets[start]
    return None


def best_warmup(budgets, shares):
    """(the warm-up whose runs reach 90% of their seed's own full-pool mAP with the fewest labels, on average
    over our strategies, the smallest of equals; {warm-up: that average}), or None without warm-up runs.
    ``shares``: run name: mean share of the full pool per budget. A run that never reaches it counts one round
    past the last budget; the seed set is a warm-up of its own, so a run without one counts as the seed set's."""
    never = budgets[-1] + budgets[1] - budgets[0]
    labels = {}
    for name, share in shares.items():
        strategy, _, warmup = name.partition(WARMUP)
        if strategy not in BASELINES:
            reached = labels_to_reach(budgets, share, 0.9) or never
            labels.setdefault(max(int(warmup or 0), budgets[0]), []).append(reached)
    if len(labels) < 2:
        return None
    means = {warmup: float(np.mean(found)) for warmup, found in sorted(labels.items())}
    return min(means, key=lambda warmup: (means[warmup], warmup)), means


def labels_to_reach(budgets, curve, target):
    """The first budget whose mAP reaches ``target``, or None."""
    return next((b for b, value in zip(budgets, curve, strict=True) if value >= target), None)


# -- the model -------------------------------------------------------------------------------------------


def mmdet_config(size, work):
    """The tiny RTMDet config at ``size`` pixels (the shipped one is 128): a quarter of the pixels per step."""
    shipped = (REPO / 'ls_extensions' / 'ml_backend' / 'configs' / 'tiny_rtmdet.py').read_text()
    if 'image_size = 128\n' not in shipped:
        raise SystemExit('tiny_rtmdet.py no longer sets image_size = 128; update benchmarks/active_learning.py')
    path = Path(work) / f'tiny_rtmdet_{size}.py'
    path.write_text(shipped.replace('image_size = 128\n', f'image_size = {size}\n'))
    return path


def make_adapter(args, seed, checkpoint=None):
    """The plain-PyTorch adapter (``--quick``) or the tiny MMDetection model, new or from a checkpoint."""
    options = {'classes': ','.join(CLASSES), 'seed': seed}
    if args.quick:
        from ls_extensions.ml_backend.adapters.torch_example import TorchExampleAdapter

        return TorchExampleAdapter(checkpoint=checkpoint, options={**options, 'epochs': 12})
    from ls_extensions.ml_backend.adapters.mmdet_adapter import MMDetAdapter

    return MMDetAdapter(config=args.config, checkpoint=checkpoint, options={**options, 'iters': args.iters})


def train(args, seed, items, work):
    """A model trained on ``items`` from scratch: every round's model trains as long, whatever its labels."""
    from ls_extensions.ml_backend.adapters.base import Sample
    from ls_extensions.ml_backend.synthetic import to_arrays

    adapter = make_adapter(args, seed)
    samples = [Sample(image, *to_arrays(boxes), key=str(i)) for i, (image, boxes, _) in enumerate(items)]
    fitted = adapter.fit(samples, Path(tempfile.mkdtemp(dir=work)))
    return make_adapter(args, seed, fitted.checkpoint)


def test_map(adapter, test_set):
    from ls_extensions.ml_backend.metrics import mean_average_precision
    from ls_extensions.ml_backend.synthetic import to_arrays

    detections = [[d.as_tuple() for d in per] for per in adapter.predict([image for image, _, _ in test_set])]
    return mean_average_precision(detections, [to_arrays(b) for _, b, _ in test_set], len(CLASSES))['mAP']


# -- the product -----------------------------------------------------------------------------------------


def make_project(user, strategy, items, name, warmup=0):
    """A Label Studio project holding the pool as data-URI tasks, with ``strategy``'s sampling; our stream's
    own warm-up rule serves a random task until ``warmup`` tasks are labelled."""
    from projects.models import Project
    from tasks.models import Task

    from ls_extensions.scoring import services
    from ls_extensions.scoring.models import ScoringPolicy
    from tests.label_configs import IMAGE_BOXES  # fish and crab boxes on an image
    from tests.ml_backend.support import png_data_uri

    sampling = {'random': Project.UNIFORM, 'by id': Project.SEQUENCE}.get(strategy, Project.UNCERTAINTY)
    project = Project.objects.create(
        title=name, label_config=IMAGE_BOXES, created_by=user, organization=user.active_organization, sampling=sampling
    )
    tasks = [Task.objects.create(project=project, data={'image': png_data_uri(image)}) for image, _, _ in items]
    if sampling == Project.UNCERTAINTY:
        services.choose_stream(project, True)
        fields = {'warmup_annotations': warmup, 'diverse': strategy == 'diverse'}
        if strategy != 'diverse':  # a measure's name; diverse keeps the default measure
            fields['measure'] = strategy
        ScoringPolicy.objects.filter(project=project).update(**fields)
    return project, [t.id for t in tasks]


def label(task_id, boxes, user, size):
    from tasks.models import Annotation, Task

    from ls_extensions.ml_backend.synthetic import to_ls_result

    task = Task.objects.get(pk=task_id)
    result = to_ls_result(boxes, size, size, classes=CLASSES)
    Annotation.objects.create(task=task, project=task.project, completed_by=user, result=result)


def store_predictions(adapter, project, ids, items, version):
    """The model's boxes on every unlabelled task as Label Studio predictions, built by the model server's own
    function at its default score threshold (our signals store and rank their uncertainty)."""
    from tasks.models import Prediction, Task

    from ls_extensions.ml_backend.labels import DEFAULT_SCORE_THRESHOLD, LabelMap, image_prediction, parse_controls

    control = parse_controls(project.label_config).image
    label_map = LabelMap(CLASSES, control)
    unlabeled = set(Task.objects.filter(id__in=ids, is_labeled=False).values_list('id', flat=True))
    todo = [(i, task_id) for i, task_id in enumerate(ids) if task_id in unlabeled]
    outputs = adapter.predict([items[i][0] for i, _ in todo])
    for (i, task_id), detections in zip(todo, outputs, strict=True):
        shape = items[i][0].shape
        prediction = image_prediction(detections, shape, control, label_map, version, DEFAULT_SCORE_THRESHOLD)
        Prediction.objects.create(task_id=task_id, project=project, **prediction)


def pick(client, project):
    response = client.get(f'/api/projects/{project.id}/next/')
    if response.status_code != 200:
        raise SystemExit(f'next task: {response.status_code} {response.content[:300]!r}')
    return response.json()['id']


# -- the run ---------------------------------------------------------------------------------------------


def run(args):
    from tests.conftest import logged_in_client, make_user

    size = 48 if args.quick else 64
    scenes, copies = (30, 4) if args.quick else (40, 5)
    budgets = list(range(args.seed_labels, args.seed_labels + args.k * args.rounds + 1, args.k))
    work = tempfile.mkdtemp(prefix='al-work-')
    if not args.quick:
        args.config = mmdet_config(size, work)
    user = make_user('annotator@example.org')
    client = logged_in_client(user)
    runs = runs_of(args.strategies, args.warmup)
    curves = {name: {} for name, _, _ in runs}  # run: {seed: mAP per budget}
    scenes_seen = {name: {} for name, _, _ in runs}  # run: {seed: scenes among its labels}
    full = {}  # seed: the full pool's mAP
    started = time.monotonic()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        items = pool(100 + seed, scenes, copies, size, args.shared_background)
        test_set = pool(900 + seed, 40, 1, size, args.shared_background)
        full[seed] = test_map(train(args, seed, items, work), test_set)
        print(f'seed {seed} full pool ({len(items)} labels) {full[seed]:.3f}', flush=True)
        seed_set = list(np.random.default_rng(seed).choice(len(items), args.seed_labels, replace=False))
        first = train(args, seed, [items[i] for i in seed_set], work)
        first_map = test_map(first, test_set)
        for name, strategy, warmup in runs:
            project, ids = make_project(user, strategy, items, f'{name} seed {seed}', warmup)
            index = {task_id: i for i, task_id in enumerate(ids)}
            labelled = [int(i) for i in seed_set]
            for i in labelled:
                label(ids[i], items[i][1], user, size)
            model, curve = first, [first_map]
            for round_ in range(args.rounds):
                store_predictions(model, project, ids, items, f'r{round_}')
                for _ in range(args.k):
                    task_id = pick(client, project)
                    label(task_id, items[index[task_id]][1], user, size)
                    labelled.append(index[task_id])
                model = train(args, seed, [items[i] for i in labelled], work)
                curve.append(test_map(model, test_set))
            curves[name][seed] = curve
            scenes_seen[name][seed] = len({items[i][2] for i in labelled})
            print(
                f'seed {seed} {name:10s} '
                + ' '.join(f'{v:.3f}' for v in curve)
                + f'  ({scenes_seen[name][seed]} scenes)',
                flush=True,
            )
    report(budgets, curves, scenes_seen, full)
    print(f'\n{time.monotonic() - started:.0f} s in all')


LINE = re.compile(r'^seed (\d+) (.+?) +((?:\d\.\d{3} ?)+) +\((\d+) scenes\)$')
FULL = re.compile(r'^seed (\d+) full pool \(\d+ labels\) (\d\.\d{3})$')


def read_lines(paths, k, seed_labels):
    """The per-seed lines that runs printed (one run or several, e.g. seeds run apart), as report's inputs."""
    curves, scenes_seen, full = {}, {}, {}
    for path in paths:
        for line in (line.strip() for line in Path(path).read_text().splitlines()):
            if match := FULL.match(line):
                full.setdefault(int(match[1]), []).append(float(match[2]))
            elif match := LINE.match(line):
                strategy, seed = match[2].strip(), int(match[1])
                curves.setdefault(strategy, {})[seed] = [float(v) for v in match[3].split()]
                scenes_seen.setdefault(strategy, {})[seed] = int(match[4])
    if not full or not curves:
        raise SystemExit(f'no per-seed lines in {", ".join(map(str, paths))}')
    seeds = {strategy: sorted(runs) for strategy, runs in curves.items()}
    lengths = {len(curve) for runs in curves.values() for curve in runs.values()}
    if any(found != sorted(full) for found in seeds.values()) or len(lengths) != 1:
        raise SystemExit(
            f'not every strategy has a run of the same length for every seed: {seeds}, full {sorted(full)}'
        )
    rounds = lengths.pop() - 1
    budgets = list(range(seed_labels, seed_labels + k * rounds + 1, k))
    ordered = sorted(curves, key=run_order)
    if reruns := {seed: values for seed, values in full.items() if len(values) > 1}:
        print(
            'full pool of a seed run more than once (the mean counts): '
            + '; '.join(f'seed {seed} {" ".join(f"{v:.3f}" for v in values)}' for seed, values in reruns.items())
        )
    return budgets, {s: curves[s] for s in ordered}, scenes_seen, {seed: float(np.mean(v)) for seed, v in full.items()}


def share_curves(curves, full):
    """run: the mean over seeds of each budget's mAP as a share of its seed's own full-pool mAP."""
    seeds = sorted(full)
    own = np.array([[full[seed]] for seed in seeds])
    return {name: (np.array([runs[seed] for seed in seeds]) / own).mean(0) for name, runs in curves.items()}


def report(budgets, curves, scenes_seen, full):
    """Mean ± std per budget, the labels to 90% of the full pool (of the mean, and of each seed's own), and
    the budget from which each strategy stays ahead of random. ``curves``: strategy: {seed: mAP per budget}."""
    seeds = sorted(full)
    print(
        f'\nmAP@0.5 on the test set, mean ± std over {len(seeds)} seeds; full pool: {np.mean(list(full.values())):.3f}'
        f' (seeds {", ".join(f"{seed}: {full[seed]:.3f}" for seed in seeds)})'
    )
    width = max(10, *map(len, curves))  # the runs' names, right-aligned
    print(f'{"labels":>{width}s} ' + ' '.join(f'{b:>11d}' for b in budgets) + '  scenes labelled')
    means, shares = {}, share_curves(curves, full)
    for strategy, runs in curves.items():
        values = np.array([runs[seed] for seed in seeds])
        means[strategy], std = values.mean(0), values.std(0)
        print(
            f'{strategy:>{width}s} '
            + ' '.join(f'{m:.3f}±{s:.3f}' for m, s in zip(means[strategy], std, strict=True))
            + f'  {np.mean([scenes_seen[strategy][seed] for seed in seeds]):.1f}'
        )
    target = 0.9 * float(np.mean(list(full.values())))
    print(
        f'\nlabels to reach 90% of the full-pool mAP: of the mean ({target:.3f}), and on average 90% of each'
        " seed's own; the ratio to random"
    )
    reach = {s: labels_to_reach(budgets, mean, target) for s, mean in means.items()}
    own = {s: labels_to_reach(budgets, share, 0.9) for s, share in shares.items()}
    for strategy in curves:
        cells = []
        for found in (reach, own):
            labels, base = found[strategy], found.get('random')
            if labels and base:
                ratio = f'{labels / base:.2f}'
            elif labels and 'random' in found:  # random needs more than the last budget
                ratio = f'<{labels / budgets[-1]:.2f}'
            else:
                ratio = 'n/a'
            cells.append(f'{labels or f">{budgets[-1]}":>12} {ratio:>6s}')
        print(f'{strategy:>{width}s} ' + '   '.join(cells))
    if 'random' in means:
        print('\nahead of random (mean mAP at or above it at this budget and every later one):')
        for strategy, mean in means.items():
            if strategy != 'random':
                start = ahead_from(budgets, mean, means['random'])
                print(f'{strategy:>{width}s} {f"from {start} labels" if start else "no":>16s}')
    if found := best_warmup(budgets, shares):
        best, labels = found
        print(
            f'\nwarm-up (labelled at random before the stream ranks; none: the {budgets[0]} seed labels): labels to'
            " 90% of each seed's own full pool, mean over our strategies (never: one round past the budget)"
        )
        print('  '.join(f'{warmup}: {mean:.1f}' for warmup, mean in labels.items()) + f'  -> {best}')


def parse_warmups(parser, text, seed_labels, last_budget):
    """The ``--warmup`` values: 0, or more than the seed set and less than the last budget (any other value
    runs the same as 0 or as the warm-up's random sample throughout)."""
    try:
        warmups = sorted({int(value) for value in text.split(',') if value.strip()})
    except ValueError:
        parser.error(f'--warmup wants whole numbers, got {text!r}')
    if wrong := [w for w in warmups if w and not seed_labels < w < last_budget]:
        parser.error(f'--warmup {wrong}: 0, or between the {seed_labels} seed labels and the last budget {last_budget}')
    return warmups or [0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='plain-PyTorch model, small pool (under 10 min)')
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--seed-labels', type=int, help='random labels before the first model (8 quick, 16)')
    parser.add_argument('--k', type=int, help='labels per round (8 quick, 16)')
    parser.add_argument('--rounds', type=int, default=4)
    parser.add_argument('--iters', type=int, default=300, help='MMDetection training iterations per model')
    parser.add_argument(
        '--shared-background',
        action='store_true',
        help="each scene's near-duplicates on one background with a little new noise (like a video's frames)",
    )
    parser.add_argument('--first-seed', type=int, default=0, help='seeds first-seed .. first-seed + seeds - 1')
    parser.add_argument('--strategies', help=f'a comma list of {", ".join(STRATEGIES)} (by_id for by id); all')
    parser.add_argument(
        '--warmup',
        default='0',
        help='a comma list of warm-ups: each of our strategies runs once per value, its stream serving a random'
        ' task until that many are labelled (0: none, the default)',
    )
    parser.add_argument('--report', nargs='+', metavar='LOG', help='the table from the per-seed lines of saved runs')
    args = parser.parse_args()
    args.seed_labels = args.seed_labels or (8 if args.quick else 16)
    args.k = args.k or (8 if args.quick else 16)
    if args.report:
        report(*read_lines(args.report, args.k, args.seed_labels))
        return
    names = [name.strip() for name in (args.strategies or '').split(',') if name.strip()]
    args.strategies = [{'by_id': 'by id'}.get(name, name) for name in names] or list(STRATEGIES)
    if unknown := set(args.strategies) - set(STRATEGIES):
        parser.error(f'unknown strategies: {", ".join(sorted(unknown))}')
    args.warmup = parse_warmups(parser, args.warmup, args.seed_labels, args.seed_labels + args.k * args.rounds)
    setup_django()
    run(args)


if __name__ == '__main__':
    main()
