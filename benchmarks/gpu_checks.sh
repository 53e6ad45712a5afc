#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one command for a lent GPU machine (CI has none):
#   1. `pytest -m gpu`: tests/test_cuda.py and tests/test_cuda_integrations.py;
#   2. the CLI on CUDA: `tune` on its embedded default, then `fit --plan` on CUDA and on the CPU;
#   3. the default test run with CUDA visible (`device="auto"` picks the GPU there), to find
#      what breaks on CUDA only; a failure there may be a test that expects CPU numbers.
# Logs go to $OUT (or runs/gpu-checks). Optional: SUPERCONVERGE_DATA for the data-marked tests;
# WHEELS, a folder of wheels to install first (packages the machine lacks); PARTS, which of
# "tests cli suite" to run (default all three).
set -u
cd "$(dirname "$0")/.."
out=${OUT:-runs/gpu-checks}
mkdir -p "$out" && out=$(cd "$out" && pwd)
export PYTHONUNBUFFERED=1
if [ -n "${WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$WHEELS"/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi -L
python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())"
python3 -m superconverge --version
parts=" ${PARTS:-tests cli suite} "
if [[ $parts == *" tests "* ]]; then
start=$SECONDS
timeout "${GPU_TESTS_S:-240}" python3 -m pytest -p no:cacheprovider -q -m gpu \
  tests/test_cuda.py tests/test_cuda_integrations.py 2>&1 | tee "$out/gpu_tests.log" | tail -40
echo "== gpu tests: $((SECONDS - start)) s"
fi
if [[ $parts == *" cli "* ]]; then
start=$SECONDS
{
  runs=$(mktemp -d)
  python3 -m superconverge tune --device cuda --out "$runs/tune" 2>&1 | tail -8; echo "rc ${PIPESTATUS[0]}"
  python3 -m superconverge fit --plan "$runs/tune/plan.json" --device cuda --out "$runs/gpu" \
    2>&1 | tail -3; echo "rc ${PIPESTATUS[0]}"
  python3 -m superconverge fit --plan "$runs/tune/plan.json" --device cpu --out "$runs/cpu" \
    2>&1 | tail -3; echo "rc ${PIPESTATUS[0]}"
  python3 -m superconverge fit --plan "$runs/tune/plan.json" --device cuda:7 --out "$runs/x" \
    2>&1 | tail -3; echo "rc ${PIPESTATUS[0]} (2 expected: one GPU)"
  python3 -c "import json,sys; [print(f, json.load(open(f))['environment']['device']) for f in sys.argv[1:]]" \
    "$runs"/tune/plan.json "$runs"/gpu/plan.json "$runs"/cpu/plan.json
} 2>&1 | tee "$out/cli.log"
echo "== cli: $((SECONDS - start)) s"
fi
if [[ $parts == *" suite "* ]]; then
start=$SECONDS
# -v: each test's outcome is printed as it ends, and failures.txt gets each traceback, so a run
# stopped by the timeout still says what failed and why
SUPERCONVERGE_TEST_CUDA=1 SUPERCONVERGE_FAILURE_LOG="$out/failures.txt" timeout "${SUITE_S:-300}" python3 -m pytest -p no:cacheprovider -v --tb=short -p no:benchmark \
  -n "${SUITE_PROCESSES:-12}" --timeout 120 -o addopts="-ra --strict-markers --doctest-modules -m 'not slow and not gpu'" \
  2>&1 | tee "$out/suite.log" | grep -E "FAILED|ERROR|passed|failed" | tail -60
echo "== suite with CUDA visible: $((SECONDS - start)) s"
fi
