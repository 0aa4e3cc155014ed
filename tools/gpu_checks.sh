#!/usr/bin/env bash
# Every GPU measurement the package READMEs wait for, as one run sized to a short lease (one
# NVIDIA GPU, ~10 minutes): ar-world's batch-1 bf16 rollout speed at ~300M (raster and
# diagonal, eager / CUDA graphs / compiled, graphs-vs-eager logit check, profile), then
# diffusion-world's DiT-base rollout speed (history cache off / per frame / carried, CUDA
# graphs). Each part has its own time limit, so a slow first part still leaves the second its
# turn; logs and JSON go to $OUT (default results/gpu).
#
# The GPU image has PyTorch, Lightning and most of our dependencies but not diffusers,
# jsonargparse (with its signature extras) or av: fetch them as wheels first, where PyPI is
# reachable, with `bash tools/gpu_checks.sh --fetch-wheels` (writes .whl/, which git ignores
# through .git/info/exclude), and carry .whl to the GPU machine. Without a GPU this prints the
# device check's error and stops.
#
#   bash tools/gpu_checks.sh --fetch-wheels     # here (network), once
#   bash tools/gpu_checks.sh                    # there (GPU); AR_S / DIFF_S override limits
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=(diffusers==0.42.1 jsonargparse==4.53.0 docstring-parser==0.18.0 typeshed-client==2.14.0
        av==18.1.0)

if [[ "${1:-}" == "--fetch-wheels" ]]; then
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    platforms=()
    for n in 17 24 27 28 31 34; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
    exec python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp "${platforms[@]}" --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}"
fi

OUT=${OUT:-results/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/wmkit-site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/wmkit-site
fi
src=$(printf '%s:' "$PWD"/packages/*/src)
export PYTHONPATH="${src}${PYTHONPATH:-}"

python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print(torch.cuda.get_device_name(0), torch.__version__)" 2>&1 | tee "$OUT/gpu.txt" || exit 1

timeout "${AR_S:-360}" python3 tools/bench_ar_world.py --part gpu --device cuda --size 300M \
    --max-frames 4 --grids 24x14 --skip-train --profile --out "$OUT/bench_ar_world_gpu.json" \
    2>&1 | tee "$OUT/ar_world.log"
echo "ar-world exit: ${PIPESTATUS[0]}"

timeout "${DIFF_S:-200}" python3 tools/bench_diffusion_world.py --gpu-speed --device cuda \
    --repeats 2 --out "$OUT/bench_diffusion_world_gpu.json" 2>&1 | tee "$OUT/diffusion_world.log"
echo "diffusion-world exit: ${PIPESTATUS[0]}"
