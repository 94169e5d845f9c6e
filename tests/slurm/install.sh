#!/usr/bin/env bash
# Install SLURM's daemons and MUNGE from Debian's packages where they are missing (CI runs this
# before the tests; tests/test_experiments_slurm.py starts a one-node cluster from them).
set -euo pipefail
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null 2>&1 \
  || { apt-get update >/dev/null && apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null; }
