#!/usr/bin/env bash
# The PyTorch/XLA check: build .venv-xla (torch 2.9 + torch_xla 2.9.0: the `xla` extra, which
# cannot share .venv's torch 2.13) and run tests/xla on XLA's CPU backend with the network cut.
# tests/xla/test_spmd.py starts its own runs with 4 and 1 virtual XLA:CPU devices
# (CPU_NUM_DEVICES, which torch_xla reads, and XLA_FLAGS=--xla_force_host_platform_device_count)
# to check that SPMD over every device trains the same model as one device.
#
# Never install torch-tpu or libtpu here: without a TPU, libtpu probes a cloud metadata
# service over the network. TPU_SKIP_MDS_QUERY=1 and `unshare -n` (when available) make sure
# nothing leaves the machine even so.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-xla
PY=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import torch_xla' 2>/dev/null; then
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    # torch_xla 2.9.0 is built against torch 2.9.0 exactly (PyPI's wheel, ~7 GB with its CUDA
    # libraries; they are never loaded here)
    pin="$VENV/xla-constraints.txt"
    printf 'torch==2.9.0\ntorch_xla==2.9.0\n' > "$pin"
    "$VENV/bin/pip" install -q -c "$pin" 'torch==2.9.0' 'torch_xla==2.9.0'
    "$VENV/bin/pip" install -q -c "$pin" -e '.[xla,dev]'
fi
for bad in libtpu torch-tpu libtpu-nightly; do
    if "$VENV/bin/pip" show -q "$bad" >/dev/null 2>&1; then
        echo "xla_check: $bad is installed in $VENV; refusing to run (it probes the network)" >&2
        exit 1
    fi
done

export PJRT_DEVICE=CPU TPU_SKIP_MDS_QUERY=1
export ANIREC_CPU_PYTHON="${ANIREC_CPU_PYTHON:-$PWD/.venv/bin/python}"
CMD=("$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/xla)
if unshare -n true 2>/dev/null; then
    exec unshare -n "${CMD[@]}"
else
    echo "xla_check: unshare -n not available; running with the network up" >&2
    exec "${CMD[@]}"
fi
