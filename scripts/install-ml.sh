#!/usr/bin/env bash
# The model server's stack in the project venv: CPU torch, mmcv 2.1.0 with compiled ops, mmengine, mmdet.
#
# mmcv 2.1.0 has no wheel on the registry and its setup.py needs pkg_resources (setuptools < 81),
# while Label Studio wants setuptools >= 83: the wheel is built once in a separate build venv and
# cached outside the checkout, keyed by mmcv, torch and Python versions. Idempotent; a few
# seconds when everything is installed already.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY=$VENV/bin/python
TORCH_VERSION=2.13.0
MMCV_VERSION=2.1.0
MMENGINE_VERSION=0.10.7
MMDET_VERSION=3.3.0
OPENCV_HEADLESS=opencv-python-headless==4.12.0.88
# ByteTrack for video pre-annotation (ls_extensions/video/tracking.py): supervision 0.31 no longer ships it.
# trackers declares opencv-python (a second cv2); its tracker needs only numpy, scipy and supervision: --no-deps
TRACKERS=trackers==2.6.1
SUPERVISION=supervision==0.31.2  # the Detections trackers speak (also a test extra, for the export readers)
PYTAG=$($PY -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')
CACHE=${LS_EXT_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ls-extensions/wheels-torch$TORCH_VERSION-$PYTAG}
BUILD_VENV=${LS_EXT_BUILD_VENV:-$CACHE/build-venv}

check() {
    $PY - <<PYEOF 2>/dev/null
import importlib.metadata as md, sys
want = {'torch': '$TORCH_VERSION', 'mmcv': '$MMCV_VERSION', 'mmengine': '$MMENGINE_VERSION', 'mmdet': '$MMDET_VERSION',
        'trackers': '${TRACKERS#*==}'}
for name, version in want.items():
    if not md.version(name).startswith(version):
        sys.exit(1)
try:
    md.version('opencv-python')
    sys.exit(1)  # both opencv wheels write cv2: keep only the headless one
except md.PackageNotFoundError:
    pass
import cv2, mmcv.ops, mmdet, trackers, supervision, scipy.signal  # noqa: F401  (mmcv.ops needs the compiled _ext)
from mmdet.apis import inference_detector, init_detector  # noqa: F401
PYEOF
}

if check; then
    echo "install-ml: torch $TORCH_VERSION, mmcv $MMCV_VERSION (ops), mmengine, mmdet, $TRACKERS already installed"
    exit 0
fi

# CPU torch, pinned: an unpinned 'torch' pulls a multi-GB CUDA build
$VENV/bin/pip install -q "torch==$TORCH_VERSION"

mkdir -p "$CACHE"
wheel=$(ls "$CACHE"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -1 || true)
if [ -z "$wheel" ]; then
    echo "install-ml: building mmcv $MMCV_VERSION with ops (10-15 minutes on 2 cores, once) into $CACHE"
    if [ ! -x "$BUILD_VENV/bin/python" ]; then
        python3 -m venv "$BUILD_VENV"
    fi
    "$BUILD_VENV/bin/pip" install -q "torch==$TORCH_VERSION" 'setuptools>=77.0.3,<81' wheel ninja numpy
    MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} \
        "$BUILD_VENV/bin/pip" wheel --no-build-isolation --no-deps -w "$CACHE" "mmcv==$MMCV_VERSION"
    wheel=$(ls "$CACHE"/mmcv-$MMCV_VERSION-*.whl | head -1)
fi

$VENV/bin/pip install -q "$wheel" "mmengine==$MMENGINE_VERSION" "mmdet==$MMDET_VERSION"
# mmcv pulls opencv-python, which overwrites Label Studio's headless cv2: put headless back
if $VENV/bin/pip show -q opencv-python >/dev/null 2>&1; then
    $VENV/bin/pip uninstall -q -y opencv-python
    $VENV/bin/pip install -q --force-reinstall --no-deps "$OPENCV_HEADLESS"
fi

$VENV/bin/pip install -q --no-deps "$TRACKERS"
$VENV/bin/pip install -q "$SUPERVISION"  # scipy, which smooths the tracks, comes with mmdet and supervision

if ! check; then
    echo "install-ml: the MMDetection stack does not import; see the output above" >&2
    exit 1
fi
echo "install-ml: done (mmcv wheel: $wheel)"
