"""Model server throughput on this machine's CPU: predict images/s (batched vs one by one) and training s/epoch.

    .venv/bin/python benchmarks/ml_backend.py              # tiny RTMDet (needs scripts/install-ml.sh) + torch example
    .venv/bin/python benchmarks/ml_backend.py --quick      # fewer images and iterations
    .venv/bin/python benchmarks/ml_backend.py --threads 2

Two levels, side by side:
- `adapter`: the adapter's ``predict`` on N synthetic 128x128 images in batches of B and one by one,
  in process (model time only);
- `HTTP /predict`: the real server process (``python -m ls_extensions.ml_backend.server``), one
  request with all N tasks (images as data URIs, so no Label Studio is involved) against N requests
  of one task each - what "Retrieve predictions" costs through the protocol;
- `fit`: seconds per epoch of the adapter's training loop on N annotated images.
"""

import argparse
import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from ls_extensions.ml_backend import synthetic  # noqa: E402
from ls_extensions.ml_backend.adapters.base import Sample, load_adapter_class  # noqa: E402

TINY = REPO / 'ls_extensions/ml_backend/configs/tiny_rtmdet.py'
IMAGE_BOXES = """<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">
<Label value="fish"/><Label value="crab"/></RectangleLabels></View>"""


def samples(n, seed=0):
    return [Sample(img, *synthetic.to_arrays(boxes)) for img, boxes in synthetic.dataset(n, seed=seed)]


def data_uri(img):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format='PNG')
    return 'data:image/png;base64,' + base64.b64encode(buf.getvalue()).decode()


def post(url, payload):
    req = urllib.request.Request(url, json.dumps(payload).encode(), {'Content-Type': 'application/json'})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def bench(name, adapter_path, config, n, batch, fit_iters_option, threads):
    rows = []
    cls = load_adapter_class(adapter_path)
    train = samples(n, seed=1)
    adapter = cls(config=config, options=fit_iters_option)
    images = [s.image for s in train]
    adapter.predict(images[:2])  # warm-up
    t = time.perf_counter()
    for i in range(0, n, batch):
        adapter.predict(images[i : i + batch])
    batched = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for img in images:
        adapter.predict([img])
    single = n / (time.perf_counter() - t)
    rows.append((name, f'adapter predict, batch {batch}', f'{batched:.1f} img/s', f'{batched / single:.2f}x'))
    rows.append((name, 'adapter predict, one by one', f'{single:.1f} img/s', '1.00x'))

    port = free_port()
    args = [sys.executable, '-m', 'ls_extensions.ml_backend.server', '--port', str(port), '--adapter', adapter_path]
    args += ['--threads', str(threads), '--batch-size', str(batch), '--model-dir', tempfile.mkdtemp(prefix='bench-ml-')]
    if config:
        args += ['--config', str(config)]
    proc = subprocess.Popen(
        args,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, 'LS_EXT_EGRESS': 'enforce'},
    )
    try:
        url = f'http://127.0.0.1:{port}'
        for _ in range(300):
            try:
                urllib.request.urlopen(url + '/health', timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        tasks = [{'id': i, 'data': {'image': data_uri(img)}} for i, img in enumerate(images)]
        post(url + '/predict', {'tasks': tasks[:2], 'label_config': IMAGE_BOXES})
        t = time.perf_counter()
        post(url + '/predict', {'tasks': tasks, 'label_config': IMAGE_BOXES})
        http_batched = n / (time.perf_counter() - t)
        t = time.perf_counter()
        for task in tasks:
            post(url + '/predict', {'tasks': [task], 'label_config': IMAGE_BOXES})
        http_single = n / (time.perf_counter() - t)
    finally:
        proc.terminate()
        proc.wait(10)
    rows.append(
        (
            name,
            f'HTTP /predict, {n} tasks in 1 request',
            f'{http_batched:.1f} img/s',
            f'{http_batched / http_single:.2f}x',
        )
    )
    rows.append((name, 'HTTP /predict, 1 task per request', f'{http_single:.1f} img/s', '1.00x'))

    result = adapter.fit(train, tempfile.mkdtemp(prefix='bench-fit-'))
    m = result.metrics
    rows.append((name, f'fit on {n} images ({m.get("epochs")} epochs)', f'{m["seconds_per_epoch"]:.2f} s/epoch', ''))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--images', type=int, default=None)
    parser.add_argument('--batch', type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n = args.images or (16 if args.quick else 64)
    rows = []
    try:
        import mmdet  # noqa: F401

        iters = '40' if args.quick else '100'
        rows += bench(
            'tiny RTMDet (mmdet)',
            'ls_extensions.ml_backend.adapters.mmdet_adapter.MMDetAdapter',
            TINY,
            n,
            args.batch,
            {'iters': iters},
            args.threads,
        )
    except ImportError:
        print('MMDetection not installed (scripts/install-ml.sh): tiny RTMDet rows skipped')
    rows += bench(
        'torch example',
        'ls_extensions.ml_backend.adapters.torch_example.TorchExampleAdapter',
        None,
        n,
        args.batch,
        {'epochs': '5'},
        args.threads,
    )
    print(f'\nML backend on CPU, torch threads={args.threads}, {n} synthetic 128x128 images, batch {args.batch}')
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    header = ('model', 'what', 'throughput', 'vs one by one')
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    print('  '.join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print('  '.join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == '__main__':
    main()
