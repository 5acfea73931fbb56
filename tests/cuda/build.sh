#!/usr/bin/env bash
# Compiles the `cuda` feature without a GPU (issue 16): candle's CUDA backend, its PTX kernels
# (nvcc, for the compute capability CUDA_COMPUTE_CAP, default 90: H100/H200) and every scoresde
# crate that uses them. The CUDA toolkit comes from the registry's pip wheels, pinned to the
# versions that build together (cudarc 0.19 knows CUDA up to 13.4; nvcc's nvvm and crt must match
# its release), into target/cuda-toolkit. Only the libraries are built: linking a binary needs the
# driver's libcuda and cuBLAS/cuRAND/NVRTC, which a machine without a GPU does not have.
# Any failure (no registry, no nvcc, a kernel that does not compile) stops with status 1.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/cuda-toolkit
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q \
  "nvidia-cuda-nvcc==13.4.92" "nvidia-cuda-runtime==13.4.92" "nvidia-nvvm==13.4.92" \
  "nvidia-cuda-crt==13.4.92" "nvidia-cuda-cccl==13.3.5.0.6" \
  || { echo "tests/cuda/build.sh: could not install the CUDA toolkit wheels from the registry" >&2; exit 1; }
root=$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')
if [ ! -x "$root/bin/nvcc" ]; then
  echo "tests/cuda/build.sh: no nvcc under $root" >&2
  exit 1
fi
export PATH="$root/bin:$PATH" CUDA_ROOT="$root" CUDA_PATH="$root" CUDA_HOME="$root"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
nvcc --version | tail -n 1
cargo build --release -p scoresde -p scoresde-experiments --lib --features cuda
echo "tests/cuda/build.sh: the cuda feature compiles (compute capability $CUDA_COMPUTE_CAP)"
