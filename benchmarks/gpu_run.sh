#!/usr/bin/env bash
# Everything the GPU tables need, in one run on a machine with a CUDA GPU: the GPU, the
# conformance suite on cupy, on torch's CUDA device and (where JAX has a GPU build) on JAX's
# GPU, the book's chapter-10 loops there, the compiled-step tests on JAX's GPU, then the
# throughput table of benchmarks/step.py --gpu (batch 8192, widths 4096). It needs nnx's
# test dependencies and CuPy and torch with CUDA in the Python it runs. The figures go into
# benchmarks/RESULTS.md with the date and the GPU; the exit status is 1 if any part failed.
#
#     bash benchmarks/gpu_run.sh            # PYTHON=/path/to/python picks the interpreter
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if ! "$py" -c "import nnx, cupy, torch" ; then
    echo "gpu_run: $py cannot import nnx, cupy and torch; install nnx's dependencies first."
    exit 1
fi
date -u +"date     %Y-%m-%dT%H:%M:%SZ"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$py" -c "import cupy, torch; print('cupy', cupy.__version__, ' torch', torch.__version__)"

targets="cupy torch:cuda"
if "$py" -c "import jax, sys; sys.exit(not any(d.platform == 'gpu' for d in jax.devices()))" \
        2>/dev/null; then
    targets="$targets jax:gpu"
else
    echo "gpu_run: no JAX with a GPU in $py: the jax:gpu rows are skipped."
fi
status=0
for target in $targets; do
    echo "== nnx conformance --backend $target"
    "$py" -m nnx.cli conformance --backend "$target" || status=1
done
# The book's chapter-10 loops and every method's host-data door, on the GPU backends (the
# NumPy reference runs inside the tests; a GPU backend that cannot load fails, not skips).
echo "== pytest tests/conformance/test_book.py tests/conformance/test_host_inputs.py"
NNX_TEST_BACKENDS=cupy,torch:cuda "$py" -m pytest -q -p no:cacheprovider \
    tests/conformance/test_book.py tests/conformance/test_host_inputs.py || status=1
if [[ $targets == *jax:gpu* ]]; then
    echo "== pytest tests/unit/test_compiled.py on jax:gpu"
    NNX_DEVICE=gpu "$py" -m pytest -q -p no:cacheprovider tests/unit/test_compiled.py || status=1
fi
echo "== python benchmarks/step.py --gpu"
"$py" benchmarks/step.py --gpu || status=1
exit $status
