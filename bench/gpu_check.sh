#!/usr/bin/env bash
# The GPU checks in one script, for a bare NVIDIA machine: Python with PyTorch
# (CUDA) and no internet. Two steps:
#
#   bash bench/gpu_check.sh --fetch     here, online: the wheels the GPU machine
#                                       lacks, for its Python, into .whl/
#                                       (ignored by git; about 45 MiB)
#   bash bench/gpu_check.sh [OUT]       there: installs .whl/ into /tmp/site, then
#                                       1. the GPU tests (tests/local/test_gpu.py:
#                                          fp32 ≥ 60 dB against apply_model on the
#                                          same GPU, bf16/fp16 ≥ 40 dB, a real
#                                          out-of-memory retried) and the virtual-
#                                          device tests, on the real GPU machine;
#                                       2. bench/devices.py --gpu-only: apply_model
#                                          on the GPU against ours in fp32, bf16 and
#                                          fp16, full-size htdemucs.
#                                       Logs and the table go to OUT (default
#                                       ./gpu-check-out, or $OUT when set).
# Test models are built by the tests and the bench themselves (random weights,
# the published architecture); nothing is downloaded. Takes about 5 minutes on
# an H200; each step has its own time limit so the table always comes back.
set -uo pipefail
cd "$(dirname "$0")/.."

# Packages SoundForge's engine, tests and bench import that a PyTorch CUDA image
# usually lacks (numpy, pyyaml, einops, tqdm, pytest are assumed there). The
# versions are constraints.txt's.
PACKAGES=(demucs julius lameenc av soundfile soxr cffi pycparser pydantic pydantic_core
          pydantic-settings annotated-types typing-inspection python-dotenv pytest-timeout)
TARGET_PYTHON=${TARGET_PYTHON:-3.12}

if [[ "${1:-}" == "--fetch" ]]; then
  mkdir -p .whl  # ignored by .gitignore; the device tool's `carry` takes it along
  for name in "${PACKAGES[@]}"; do
    pin=$(grep -i -E "^${name//_/[-_]}==" constraints.txt | head -1)
    [[ -n "$pin" ]] || { echo "gpu_check: $name is not pinned in constraints.txt" >&2; exit 2; }
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$TARGET_PYTHON" \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform manylinux1_x86_64 -d .whl "$pin" || { echo "gpu_check: no wheel for $pin" >&2; exit 1; }
  done
  du -sh .whl
  exit 0
fi

OUT_DIR=${1:-${OUT:-gpu-check-out}}
mkdir -p "$OUT_DIR"
PY=${PYTHON:-python3}
{
  echo "== machine"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$PY" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
} 2>&1 | tee "$OUT_DIR/machine.txt"

if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || { echo "gpu_check: installing .whl failed" >&2; exit 1; }
  export PYTHONPATH=/tmp/site:$PWD/src:$PWD
else
  export PYTHONPATH=$PWD/src:$PWD
fi
export SOUNDFORGE_DATA_DIR=/tmp/soundforge-gpu-check HF_HUB_OFFLINE=1

echo "== GPU tests" | tee "$OUT_DIR/tests.txt"
timeout 240 "$PY" -m pytest -q -p no:cacheprovider -o addopts="" \
  tests/local/test_gpu.py tests/local/test_devices.py 2>&1 | tee -a "$OUT_DIR/tests.txt" | tail -25
tests_rc=${PIPESTATUS[0]}

echo "== GPU bench" | tee "$OUT_DIR/bench.txt"
timeout 300 "$PY" bench/devices.py --gpu-only 2>&1 | tee -a "$OUT_DIR/bench.txt" | tail -20
bench_rc=${PIPESTATUS[0]}

echo "gpu_check: tests exit $tests_rc, bench exit $bench_rc (logs in $OUT_DIR)"
[[ $tests_rc -eq 0 && $bench_rc -eq 0 ]]
