#!/usr/bin/env bash
# The prepared GPU check of issue 13: run it FIRST on a machine with an H100/H200.
# It installs the carried wheels, then runs tools/gpu_check.py (at most GPU_CHECK_BUDGET=420 s,
# each section with its own limit; one failing section never hides the others) and
# tools/triton_sass.py. Writes everything under $OUT (or ./gpu_check_out).
#
#   device tool: run(command="bash tools/gpu_check.sh", carry=[".whl"], timeout_s=540)
#
# The project's GPU machines have Python 3.12, torch 2.11, triton 3.6 and no pydantic or
# pygame: the wheels flock needs beyond that are carried in an ignored .whl/ folder
# (tools/results/README.md says how to download them).
set -u
OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
unset TRITON_INTERPRET
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD || echo "wheel install failed" | tee "$OUT/wheels.err"
else
  export PYTHONPATH=$PWD
fi
status() { echo "{\"part\": \"$1\", \"rc\": $2, \"seconds\": $3}" >> "$OUT/parts.jsonl"; }
part() {  # part NAME TIMEOUT_S CMD...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  echo "=== $name (limit ${limit}s)"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  status "$name" "$rc" $((SECONDS - t0))
  tail -n 25 "$OUT/$name.log"
}
part env 30 python3 -c "
import json, platform, torch, triton
print(json.dumps({'python': platform.python_version(), 'torch': torch.__version__, 'triton': triton.__version__,
                  'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))"
cp "$OUT/env.log" "$OUT/env.json" 2>/dev/null
# 1. the check itself (tools/gpu_check.py): Triton vs dense / torch grid, ensembles, host syncs,
#    full steps with and without CUDA graphs, kernel time by CUDA events, fused mean shift;
#    each section in its own child process with its own limit, gpu_check.json under $OUT
part gpu_check $(( ${GPU_CHECK_BUDGET:-420} + 30 )) python3 tools/gpu_check.py --out "$OUT" \
  --budget "${GPU_CHECK_BUDGET:-420}"
# 2. static proxies with the machine's Triton (3.6): registers, spills, barriers, loop size
part sass 45 python3 tools/triton_sass.py --json "$OUT/triton_sass.json"
# 3. optional (GPU_CHECK_TESTS=1): the Triton and CUDA-graph tests compiled, not interpreted
if [ "${GPU_CHECK_TESTS:-0}" = 1 ]; then
  part tests 150 python3 -m pytest -q -p no:cacheprovider -x tests/test_triton_grid.py tests/test_cuda_graphs.py \
    --junitxml="$OUT/tests.xml"
fi
echo "=== summary"
cat "$OUT/parts.jsonl"
tail -n 12 "$OUT/gpu_check.log"
