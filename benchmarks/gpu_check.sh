#!/usr/bin/env bash
# The GPU check of issue 7, in one go (< 8 minutes on one H100/H200): the CUDA tests, then the GPU
# benchmarks (fused vs hand-written vs compiled cells, bf16; trace latency on cuda), each printing ratios.
#   bash benchmarks/gpu_check.sh            (from the repository root, on a machine with a CUDA GPU)
# Needs torch (CUDA build), numpy, pytest; not streamlit/plotly: only test files that import neither run.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
status=0
echo "== machine"
$PY -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(), '|',
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')" || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
echo "== GPU tests (tests/test_gpu.py; compile and DDP tests on the CPU side too)"
timeout 300 $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_compile.py tests/test_distributed.py \
    tests/test_train.py tests/test_resume.py -x -rs || status=1
echo "== training speed on cuda: fused vs cells (eager, compiled, bf16)"
timeout 180 $PY benchmarks/bench_compile.py --device cuda --steps 20 --rounds 3 --batch 64 || status=1
echo "== trace latency on cuda (2,000 tokens, 2×256 LSTM, every gate kept)"
timeout 60 $PY benchmarks/bench_trace.py --device cuda --repeats 5 || status=1
echo "== gpu_check: $([ $status = 0 ] && echo ok || echo FAILED)"
exit $status
