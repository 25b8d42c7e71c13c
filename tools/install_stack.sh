#!/usr/bin/env bash
# Install the whole OpenMMLab stack this project needs into a virtual
# environment, from nothing: the current stack into ./.venv, or with --oldest
# the oldest supported one into ./.venv-oldest (CI tests both).
#
# The current stack (docs/installation.md says why each pin is what it is):
#   torch 2.14.1 / torchvision 0.29.1, mmcv 2.1.0 compiled with ops and patched
#   for C++20, onedl-mmengine 0.10.12, mmdet 3.2.0 and mmpose 1.3.2 without their
#   declared deps (chumpy does not build), xtcocotools rebuilt against numpy 2,
#   openmim without its setuptools downgrade, and this package, editable.
# The oldest stack: torch 2.1.2 / torchvision 0.16.2, numpy 1.26, the official
#   mmengine 0.10.7, the same mmcv 2.1.0 (compiled against torch 2.1.2 with
#   mmcv's own C++17), mmdet 3.2.0, mmpose 1.3.2: what MMPose's own
#   installation guide builds.
#
# Idempotent: a stamp in the venv records the finished install of this exact
# script; a second run returns at once. The compiled mmcv wheel is cached in
# $MMPOSE_AFL_CACHE (default ~/.cache/mmpose-afl), keyed by mmcv, torch and
# Python versions, so a fresh venv with a warm cache installs in minutes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
CACHE="${MMPOSE_AFL_CACHE:-$HOME/.cache/mmpose-afl}"

STACK=current
case "${1:-}" in
    --oldest) STACK=oldest ;;
esac

if [ "$STACK" = oldest ]; then
    VENV="${VENV:-$ROOT/.venv-oldest}"
    TORCH=2.1.2
    TORCHVISION=0.16.2
    # the official mmengine (under torch < 2.6 it loads its own checkpoints)
    MMENGINE_PKG=mmengine
    MMENGINE=0.10.7
    NUMPY_SPEC='numpy==1.26.4'
    # the last opencv-python 4 whose wheels accept numpy 1
    OPENCV_SPEC='opencv-python==4.10.0.84'
    # torch 2.1's headers build with mmcv's own C++17
    MMCV_CXX_STD=
else
    VENV="${VENV:-$ROOT/.venv}"
    TORCH=2.14.1
    TORCHVISION=0.29.1
    MMENGINE_PKG=onedl-mmengine
    MMENGINE=0.10.12
    # below 2.3: xtcocotools 1.14.3's masks (crowd regions) use NPY_OWNDATA,
    # which numpy 2.3 dropped, and MMPose 1.3.2's visualizer calls int() on a
    # one-element array, an error from numpy 2.4 (docs/installation.md)
    NUMPY_SPEC='numpy>=2,<2.3'
    # below 5: OpenCV 5 allows 128 channels, and MMPose's merge_data_samples
    # warps COCO-WholeBody's 133 heatmaps in one cv2.warpAffine
    OPENCV_SPEC='opencv-python>=4.10,<5'
    # torch >= 2.14 headers need C++20; mmcv's setup.py hard-codes older ones
    MMCV_CXX_STD=c++20
fi
MMCV=2.1.0
MMDET=3.2.0
MMPOSE=1.3.2
XTCOCOTOOLS=1.14.3
OPENMIM=0.3.9
# RTMPose's stock pipeline (MMPose's Albumentation): 1.4.x still takes its
# CoarseDropout(max_holes=..., max_height=...) arguments (with a deprecation
# warning), 2.x removed them; from 1.4.21 on an unseeded Compose draws from
# OS entropy, so runs of the same seed differ (docs/installation.md)
ALBUMENTATIONS=1.4.20
ALBUCORE=0.0.19

say() { printf '[install_stack] %s\n' "$*"; }
die() { printf '[install_stack] ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
    cat <<'USAGE'
usage: bash tools/install_stack.sh [--oldest] [-h|--help]

Install the whole verified OpenMMLab stack (torch, mmcv with ops, mmengine,
mmdet, mmpose, openmim) and this package, editable, into a virtual
environment, from nothing. `make install` runs it; every other make target
runs it first. Idempotent: a second run with the same script and
requirements.txt returns at once.

  --oldest   the oldest supported stack instead (torch 2.1.2, numpy 1.26,
             the official mmengine 0.10.7) into .venv-oldest; `make test`
             installs and tests it too.

Settings (environment variables):
  VENV              the virtual environment to create or complete
                    (default: .venv, or .venv-oldest with --oldest)
  PYTHON            the Python 3.11 interpreter to build it from
                    (default: python3)
  MMPOSE_AFL_CACHE  where the compiled mmcv wheel is cached, keyed by mmcv,
                    torch and Python versions (default: ~/.cache/mmpose-afl)
  MAX_JOBS          parallel compile jobs for mmcv (default: 2)

The first install of a stack compiles mmcv against its torch (the times are
in docs/installation.md); with the wheel cached, a fresh environment
installs in a few minutes. The pins and the
reasons for each are in docs/installation.md.
USAGE
}
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    ""|--oldest) ;;
    *) usage >&2; exit 2 ;;
esac

STAMP="$VENV/.mmpose-afl-stack-$(cat "$0" "$ROOT/requirements.txt" | sha1sum | cut -c1-12)"
if [ -f "$STAMP" ]; then
    say "stack already installed in $VENV (stamp $(basename "$STAMP"))"
    exit 0
fi

# --- preconditions, said plainly -------------------------------------------
command -v "$PY" >/dev/null || die "no '$PY' on PATH: Python 3.11 is needed (set PYTHON=/path/to/python3.11)."
pyver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$pyver" = "3.11" ] || die "Python $pyver found, but Python 3.11 is needed (torch $TORCH / torchvision $TORCHVISION wheels exist here only for 3.11). Set PYTHON=/path/to/python3.11."
command -v g++ >/dev/null || die "no C++ compiler: install g++ >= 10 (mmcv $MMCV ops are compiled with -std=c++20)."
gxx_major=$(g++ -dumpversion | cut -d. -f1)
[ "$gxx_major" -ge 10 ] || die "g++ $gxx_major found; mmcv must be compiled with -std=c++20, which needs g++ >= 10."
"$PY" -c 'import sysconfig, os, sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)' \
    || die "Python headers (Python.h) missing: install python3.11-dev."

# --- venv ------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
pipi() { "$VPY" -m pip install --disable-pip-version-check -q "$@"; }

say "build tools (setuptools bounded for pkg_resources)"
pipi -U pip 'setuptools>=77.0.3,<81' wheel ninja cython six

say "torch $TORCH / torchvision $TORCHVISION"
pipi "torch==$TORCH" "torchvision==$TORCHVISION"

# --- mmcv with ops, compiled once and cached ---------------------------------
tag="mmcv-$MMCV-torch-$TORCH-py$pyver-$(uname -m)"
wheeldir="$CACHE/wheels/$tag"
if ! ls "$wheeldir"/mmcv-*.whl >/dev/null 2>&1; then
    say "compiling mmcv $MMCV with ops against torch $TORCH; cached in $wheeldir"
    build="$(mktemp -d)"
    "$VPY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$build" "mmcv==$MMCV"
    tar -xzf "$build"/mmcv-"$MMCV".tar.gz -C "$build"
    src="$build/mmcv-$MMCV"
    if [ -n "$MMCV_CXX_STD" ]; then
        sed -i -e "s/'-std=c++14'/'-std=$MMCV_CXX_STD'/g" -e "s/'-std=c++17'/'-std=$MMCV_CXX_STD'/g" "$src/setup.py"
        grep -q -- "-std=$MMCV_CXX_STD" "$src/setup.py" || die "$MMCV_CXX_STD patch of mmcv's setup.py did not apply"
    fi
    # -g0: no debug symbols (Python's own CFLAGS carry -g), a third less
    # compile time for the same optimised code
    CFLAGS="-g0" MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" "$VPY" -m pip wheel -q --no-deps --no-build-isolation \
        -w "$build/dist" "$src"
    mkdir -p "$wheeldir"
    cp "$build"/dist/mmcv-*.whl "$wheeldir/"
    rm -rf "$build"
fi
say "mmcv from $wheeldir"
pipi --no-deps "$wheeldir"/mmcv-*.whl

# --- the rest of the stack ---------------------------------------------------
say "runtime dependencies"
pipi -r "$ROOT/requirements.txt" "$NUMPY_SPEC" "$OPENCV_SPEC"

say "$MMENGINE_PKG $MMENGINE, mmdet $MMDET, mmpose $MMPOSE, openmim $OPENMIM (no declared deps)"
pipi --no-deps "$MMENGINE_PKG==$MMENGINE" "mmdet==$MMDET" "mmpose==$MMPOSE" "openmim==$OPENMIM"

say "albumentations $ALBUMENTATIONS, albucore $ALBUCORE (no declared deps: opencv-python-headless would clash with opencv-python)"
pipi --no-deps "albumentations==$ALBUMENTATIONS" "albucore==$ALBUCORE"

say "xtcocotools $XTCOCOTOOLS rebuilt against this numpy"
# --no-cache-dir: pip would otherwise reuse a wheel it built against another numpy
pipi --no-cache-dir --no-deps --force-reinstall --no-binary xtcocotools --no-build-isolation "xtcocotools==$XTCOCOTOOLS"

say "mmpose_afl (editable)"
pipi --no-deps --no-build-isolation -e "$ROOT"

say "checking imports"
NO_ALBUMENTATIONS_UPDATE=1 "$VPY" - <<'PY'
import albumentations  # noqa
import mmcv, mmengine, mmpose, mmdet, torch, torchvision, xtcocotools.coco  # noqa
from mmcv.ops import nms  # noqa: compiled ops present
import mmpose.models, mmpose.datasets, mmpose.evaluation, mmpose.visualization  # noqa
import mmpose_afl  # noqa
print(f'torch {torch.__version__}, mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, '
      f'mmdet {mmdet.__version__}, mmpose {mmpose.__version__}')
PY
rm -f "$VENV"/.mmpose-afl-stack-*
touch "$STAMP"
say "done"
