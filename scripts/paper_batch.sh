#!/bin/bash
# The paper-scale batch (issue 18) in stages that each give a usable table, resumable, on a CPU.
#
#   scripts/paper_batch.sh [--jobs N] [SNAPSHOT]   # e.g. nohup scripts/paper_batch.sh > runs/batch-paper.log 2>&1 &
#
# It runs from a snapshot of HEAD (a detached git worktree, default ../snap, made anew when HEAD
# has moved since the last start), so that editing the
# package while the batch runs changes nothing under it, and writes into this checkout's runs/ and
# results/. Each stage is `ladder reproduce --scale paper --jobs N` on a pair of runs, then `ladder
# report --scale paper`, which writes results/paper/ and lands each finished run's small files
# under results/paper/runs/ for you to commit. A stopped batch resumes: finished or landed runs
# are skipped, an interrupted one resumes from its last epoch's checkpoint (on this machine:
# runs/ is not committed, so on a new machine an unfinished stage starts again). To stop after
# the stage (or, with --jobs 1, the run) that is running, `touch runs/paper-batch.stop`; the next
# start removes it.
#
# --jobs 2 (the default) runs a stage's two runs at once, one thread each: the most images per
# second on two cores (benchmarks/README.md section 7). --jobs 1 runs them one after the other
# with both threads, so that each finishes sooner: the choice where a pair of one-thread runs
# outlasts the machine (a 2-core AMD EPYC takes about 4 h for the pair, longer than a session).
set -euo pipefail
jobs=2
if [ "${1:-}" = "--jobs" ]; then
  jobs=${2:?--jobs needs a number}; shift 2
fi
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "paper_batch.sh: --jobs takes a positive whole number, not '$jobs'" >&2; exit 2; }
here=$(cd "$(dirname "$0")/.." && pwd)
snap=${1:-$here/../snap}
# a snapshot of this checkout's HEAD: an older one (from an earlier start) is replaced
if [ -d "$snap" ] && [ "$(git -C "$snap" rev-parse HEAD)" != "$(git -C "$here" rev-parse HEAD)" ]; then
  git -C "$here" worktree remove --force "$snap"
fi
[ -d "$snap" ] || git -C "$here" worktree add -f "$snap" HEAD --detach
export LADDER_DATA=${LADDER_DATA:-$here/../shared/data} PYTHONPATH=$snap PYTHONHASHSEED=0
ladder=$here/.venv/bin/ladder
# seed 0 of the ten rows of Tables 2-3 and SM Table 1, LaDDer and its GMM baseline first, then
# seeds 1 and 2 (the verdict needs three per row) with Fig 2's shared frozen latent after seed
# 1's LaDDer and GMM pair, then SM Table 2's d_t ablation at seed 0 (d_t = 8 is the LaDDer row),
# then Fig 2's frozen latent at seeds 1 and 2 (the verdict reads it over seeds). Fig 5 (SLP
# against SP) loads a trained model, so `fig5-<dataset>-<prior>-seed<s>` stands for that prior's
# run followed at once by its Fig 5 run, on the machine that holds the checkpoint. Seed 0's LaDDer, GMM and MNIST
# Normal runs landed before Fig 5 ran one model at a time: their Fig 5 comes last, as it trains
# them again (`ladder reproduce` retrains a landed run that another run needs). Last, beyond the
# paper, the hierarchical prior with SM E's d_t = 2 (hierarchical-dt: is the hyper latent's size
# why its Fashion-MNIST samples are far closer than the paper's?), and the VampPrior with an
# encoder std head that keeps a gradient on its floor (vamp-std-head). Fig 2's run is about as
# long as a LaDDer run since its grid's panels take K = 100 importance samples (benchmarks/
# README.md, section 10): start it, like any run here, early in a session. After those, seeds 1
# and 2 of SM Table 2's d_t = 2 and 16, so that the ablation's leads rest on more than one seed.
row() {  # the run (with its Fig 5 where Fig 5 has that prior) of a data set, prior and seed
  case $2 in ladder|gmm|normal) echo "fig5-$1-$2-seed$3";; *) echo "$1-$2-seed$3";; esac
}
stages=(mnist-ladder-seed0,mnist-gmm-seed0 mnist-normal-seed0,mnist-hierarchical-seed0
        fashion-ladder-seed0,fashion-gmm-seed0 mnist-vamp-seed0,fashion-vamp-seed0
        "$(row fashion normal 0),fashion-hierarchical-seed0")
for seed in 1 2; do
  stages+=("$(row mnist ladder $seed),$(row mnist gmm $seed)")
  [ "$seed" = 1 ] && stages+=(fig2-mnist-seed0)
  stages+=("$(row mnist normal $seed),$(row mnist hierarchical $seed)"
           "$(row fashion ladder $seed),$(row fashion gmm $seed)" "$(row mnist vamp $seed),$(row fashion vamp $seed)"
           "$(row fashion normal $seed),$(row fashion hierarchical $seed)")
done
stages+=(mnist-ladder-dt2-seed0,mnist-ladder-dt16-seed0 fashion-ladder-dt2-seed0,fashion-ladder-dt16-seed0
         mnist-ladder-dt4-seed0,fashion-ladder-dt4-seed0 fig2-mnist-seed1,fig2-mnist-seed2
         fig5-mnist-normal-seed0,fig5-mnist-ladder-seed0
         fig5-mnist-gmm-seed0,fig5-fashion-ladder-seed0 fig5-fashion-gmm-seed0,fashion-hierarchical-dt2-seed0
         mnist-vamp-relu_leaky_grad-seed0,fashion-vamp-relu_leaky_grad-seed0)
for seed in 1 2; do
  stages+=("mnist-ladder-dt2-seed$seed,mnist-ladder-dt16-seed$seed"
           "fashion-ladder-dt2-seed$seed,fashion-ladder-dt16-seed$seed")
done
stop=$here/runs/paper-batch.stop
rm -f "$stop"
cd "$snap"
# one run at a time: a stage's runs one by one, each reported (and so landed) as soon as it ends
if [ "$jobs" = 1 ]; then
  IFS=, read -r -a stages <<< "$(IFS=,; echo "${stages[*]}")"
fi
for only in "${stages[@]}"; do
  [ -e "$stop" ] && { echo "=== $(date -u +%FT%TZ) stopped: $stop exists"; exit 0; }
  echo "=== $(date -u +%FT%TZ) $only"
  # a failed run is reported and left for the next start; the batch goes on to the next stage
  nice -n 10 "$ladder" reproduce --scale paper --only "$only" --jobs "$jobs" --runs "$here/runs" \
      --results "$here/results" || echo "=== stage $only did not finish every run"
  (cd "$here" && "$ladder" report --scale paper --runs "$here/runs" --results "$here/results") \
      || echo "=== nothing to report yet"
done
echo "=== $(date -u +%FT%TZ) all stages done"
