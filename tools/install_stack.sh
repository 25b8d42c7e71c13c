#!/usr/bin/env bash
# Install the whole OpenMMLab stack this project needs into ./.venv, from nothing.
#
# The verified stack (docs/installation.md says why each pin is what it is):
#   torch 2.14.1 / torchvision 0.29.1, mmcv 2.1.0 compiled with ops and patched
#   for C++20, onedl-mmengine 0.10.12, mmdet 3.2.0 and mmpose 1.3.2 without their
#   declared deps (chumpy does not build), xtcocotools rebuilt against numpy 2,
#   openmim without its setuptools downgrade, and this package, editable.
#
# Idempotent: a stamp in .venv records the finished install of this exact
# script; a second run returns at once. The compiled mmcv wheel is cached in
# $MMPOSE_AFL_CACHE (default ~/.cache/mmpose-afl), keyed by mmcv, torch and
# Python versions, so a fresh .venv with a warm cache installs in minutes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
CACHE="${MMPOSE_AFL_CACHE:-$HOME/.cache/mmpose-afl}"

TORCH=2.14.1
TORCHVISION=0.29.1
MMCV=2.1.0
MMENGINE=0.10.12
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
usage: bash tools/install_stack.sh [-h|--help]

Install the whole verified OpenMMLab stack (torch, mmcv with ops, mmengine,
mmdet, mmpose, openmim) and this package, editable, into a virtual
environment, from nothing. `make install` runs it; every other make target
runs it first. Idempotent: a second run with the same script and
requirements.txt returns at once.

Settings (environment variables):
  VENV              the virtual environment to create or complete
                    (default: .venv in the repo)
  PYTHON            the Python 3.11 interpreter to build it from
                    (default: python3)
  MMPOSE_AFL_CACHE  where the compiled mmcv wheel is cached, keyed by mmcv,
                    torch and Python versions (default: ~/.cache/mmpose-afl)
  MAX_JOBS          parallel compile jobs for mmcv (default: 2)

The first install compiles mmcv (13-20 minutes on 2 cores); with the wheel
cached, a fresh environment installs in a few minutes. The pins and the
reasons for each are in docs/installation.md.
USAGE
}
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") ;;
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
    say "compiling mmcv $MMCV with ops (13-20 min on 2 cores); cached in $wheeldir"
    build="$(mktemp -d)"
    "$VPY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$build" "mmcv==$MMCV"
    tar -xzf "$build"/mmcv-"$MMCV".tar.gz -C "$build"
    src="$build/mmcv-$MMCV"
    # torch >= 2.14 headers need C++20; mmcv's setup.py hard-codes older standards.
    sed -i -e "s/'-std=c++14'/'-std=c++20'/g" -e "s/'-std=c++17'/'-std=c++20'/g" "$src/setup.py"
    grep -q -- "-std=c++20" "$src/setup.py" || die "C++20 patch of mmcv's setup.py did not apply"
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" "$VPY" -m pip wheel -q --no-deps --no-build-isolation \
        -w "$build/dist" "$src"
    mkdir -p "$wheeldir"
    cp "$build"/dist/mmcv-*.whl "$wheeldir/"
    rm -rf "$build"
fi
say "mmcv from $wheeldir"
pipi --no-deps "$wheeldir"/mmcv-*.whl

# --- the rest of the stack ---------------------------------------------------
say "runtime dependencies"
pipi -r "$ROOT/requirements.txt"

say "onedl-mmengine $MMENGINE, mmdet $MMDET, mmpose $MMPOSE, openmim $OPENMIM (no declared deps)"
pipi --no-deps "onedl-mmengine==$MMENGINE" "mmdet==$MMDET" "mmpose==$MMPOSE" "openmim==$OPENMIM"

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
