#!/usr/bin/env bash
# The GPU checks of the throughput issue, as one command for a GPU machine lent through the device tool.
#
# Prepare on a machine with the project installed (no GPU needed):
#   make device-kit        # .whl/: the wheels the GPU image lacks (zarr and its codecs, ~10 MB);
#                          # .devkit/: OpenCV's TV-L1 fields and per-core rate, computed here (the GPU image's
#                          # OpenCV has no contrib modules, so no TV-L1, and its wheel is too large to carry)
# Then, on the GPU machine (the device tool: carry [".whl", ".devkit"], timeout_s 600, about 8 minutes):
#   bash benchmarks/gpu_checks.sh
# Each step has its own time limit, so that one slow step cannot take the others' time; the logs go to $OUT.
# Steps: the CUDA tests (a pair's field whatever its companions; the fixed-point stopping sum), tvl1-torch batched
# against one OpenCV core (goal >= 30x) and the ~30 fps of GPU TV-L1 at 320x240, cross-clip batching against one
# clip per call (same bytes), fold-parallel LOSO against sequential for MEGANet at 224 px (goal >= 5x).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_checks}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "could not install the wheels of .whl/ (run make device-kit and carry .whl)"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD
[ -f .devkit/opencv_reference.npz ] || { echo "no .devkit/opencv_reference.npz (run make device-kit, carry .devkit)"; exit 1; }

failed=0
step() {  # step NAME SECONDS COMMAND...: run it under a limit, log it, note a failure and go on
  local name=$1 limit=$2 start rc
  shift 2
  echo "=== $name (limit ${limit} s): $*"
  start=$(date +%s)
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  rc=${PIPESTATUS[0]}
  echo "=== $name: exit $rc, $(( $(date +%s) - start )) s"
  [ "$rc" -eq 0 ] || failed=1
}

step device 60 python3 -c "import torch, zarr, cv2, mer; print(torch.__version__, torch.cuda.get_device_name(), \
'zarr', zarr.__version__, 'OpenCV', cv2.__version__, 'mer', mer.__file__)"
step tests 120 python3 -m pytest -q -p no:cacheprovider tests/test_cross_clip_batching.py \
  -k "companions or fixed_point"
step flow 150 python3 benchmarks/bench_flow.py --gpu-only .devkit/opencv_reference.npz
step cross-clip 90 python3 benchmarks/bench_flow.py --cross-clip-only --repeats 2
step train 240 python3 benchmarks/bench_train.py --skip-baseline --epochs 10
exit $failed
