#!/bin/bash
# Pack what the paper batch needs on a lent GPU machine into .gpu/ (ignored by git), here, where
# PyPI can be reached; scripts/gpu_batch.sh unpacks it there. That machine has python3 with
# PyTorch, NumPy, SciPy, scikit-learn, Matplotlib and torchmetrics but no papermill or Jupyter
# kernel, reaches no network, and gets only this checkout (64 MiB with what `carry` names):
#
#   scripts/gpu_prepare.sh [--python 3.12] [DATASET ...]   # default: mnist
#
# - .gpu/whl/: wheels of papermill, a Jupyter kernel and prdc, at the versions of this checkout's
#   .venv, for that machine's CPython (3.12) on x86-64 Linux;
# - .gpu/data/<Folder>/raw/*.gz: the data sets' IDX files from $LADDER_DATA, compressed (MNIST
#   10 MiB, Fashion-MNIST 30 MiB: with the checkout, one data set per call fits).
#
# Then call the device tool's `run` with carry [".gpu"] and the command scripts/gpu_batch.sh
# prints at its top.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
python=3.12
if [ "${1:-}" = "--python" ]; then
  python=${2:?--python needs a version such as 3.12}; shift 2
fi
datasets=("${@:-mnist}")
data=${LADDER_DATA:-$here/../shared/data}
# papermill, nbclient and an IPython kernel with what they import, and prdc (a ladder dependency)
packages=(papermill entrypoints tenacity nbclient nbformat fastjsonschema jsonschema
          jsonschema-specifications referencing rpds-py jupyter_client jupyter_core platformdirs
          traitlets pyzmq tornado ipykernel comm debugpy ipython ipython_pygments_lexers jedi parso
          matplotlib-inline pexpect ptyprocess prompt_toolkit wcwidth stack_data executing
          asttokens pure_eval nest-asyncio2 prdc)
pins=$("$here/.venv/bin/python" - "${packages[@]}" <<'EOF'
import importlib.metadata as metadata
import sys

for name in sys.argv[1:]:
    print(f"{name}=={metadata.version(name)}")
EOF
)
rm -rf "$here/.gpu"
mkdir -p "$here/.gpu/whl" "$here/.gpu/data"
# shellcheck disable=SC2086
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$python" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d "$here/.gpu/whl" $pins
for dataset in "${datasets[@]}"; do
  case $dataset in
    mnist) folder=MNIST;; fashion) folder=FashionMNIST;;
    *) echo "gpu_prepare.sh: no data set '$dataset' (mnist or fashion; CelebA does not fit)" >&2; exit 2;;
  esac
  [ -d "$data/$folder/raw" ] || { echo "gpu_prepare.sh: no $data/$folder/raw; set LADDER_DATA" >&2; exit 2; }
  mkdir -p "$here/.gpu/data/$folder/raw"
  for f in "$data/$folder/raw/"*-ubyte; do
    gzip -9 -c "$f" > "$here/.gpu/data/$folder/raw/$(basename "$f").gz"
  done
done
echo "gpu_prepare.sh: $(ls "$here/.gpu/whl" | wc -l) wheels and ${datasets[*]} in .gpu/ ($(du -sh "$here/.gpu" | cut -f1)); the checkout's tracked files: $(git -C "$here" ls-files -z | (cd "$here" && xargs -0 du -cb 2>/dev/null) | tail -1 | cut -f1) bytes"
