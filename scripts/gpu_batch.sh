#!/bin/bash
# The paper batch on a lent GPU machine (the library's device tool), after scripts/gpu_prepare.sh
# packed .gpu/ here. In one `run` call (carry [".gpu"], timeout_s 600):
#
#   bash scripts/gpu_batch.sh 'mnist-*-seed1' 8 480
#
# runs the paper-scale runs matching the pattern, N at a time on the one GPU (a run uses a small
# part of it), until the deadline in seconds, then `ladder report --scale paper`, and leaves in
# $OUT the landed small files of every finished run (results-paper.tgz, to unpack in the
# checkout's root and commit), each run's log and metrics (logs.tgz) and nvidia-smi's record.
# A run cut off by the deadline keeps its checkpoint in runs/ on that machine: the same command
# in the next call, while the machine is warm, resumes it. Runs landed under results/paper/runs/
# are skipped, so the pattern can stay the same from call to call. GPU_BATCH_SCALE=quick runs the
# same steps at the quick scale (how the script is tested on a CPU).
set -uo pipefail
only=${1:?usage: gpu_batch.sh PATTERN [JOBS] [DEADLINE_S]}
jobs=${2:-8}
deadline=${3:-480}
scale=${GPU_BATCH_SCALE:-paper}
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
started=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .gpu/whl/*.whl || { echo "gpu_batch.sh: the wheels in .gpu/whl did not install" >&2; exit 2; }
export PYTHONPATH=/tmp/site:$PWD LADDER_DATA=/tmp/ladder-data PYTHONHASHSEED=0 PYTHONUNBUFFERED=1
for packed in .gpu/data/*/raw/*.gz; do
  target=$LADDER_DATA/${packed#.gpu/data/}
  mkdir -p "$(dirname "$target")"
  [ -f "${target%.gz}" ] || gunzip -c "$packed" > "${target%.gz}"
done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
nvidia-smi dmon -s um -d 10 > "$out/nvidia-smi-dmon.txt" 2>&1 &
monitor=$!
left=$(( deadline - ($(date +%s) - started) ))
echo "gpu_batch.sh: $scale/$only, $jobs at a time, $left s left"
timeout --signal=INT --kill-after=30 "$left" \
    python3 -m ladder reproduce --scale "$scale" --only "$only" --jobs "$jobs"
echo "gpu_batch.sh: reproduce ended (rc $?) after $(( $(date +%s) - started )) s"
kill "$monitor" 2>/dev/null
python3 -m ladder report --scale "$scale" > "$out/report.txt" 2>&1 || echo "gpu_batch.sh: nothing to report"
tar czf "$out/results-$scale.tgz" "results/$scale"
find "runs/$scale" -maxdepth 2 \( -name log.txt -o -name metrics.jsonl -o -name done.json -o -name attempts.jsonl \) -print0 \
    | tar czf "$out/logs.tgz" --null -T -
ls -la "$out"
