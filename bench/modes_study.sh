#!/usr/bin/env bash
# On a GPU machine: one four-mode study (or its continuation: the same command resumes it) under
# /tmp/runs, stopped with Ctrl-C's signal after SECONDS so a device call always returns; the log
# and the experiment directory without checkpoints or event files (in parts of 15 MB) go to $OUT.
# usage: bench/modes_study.sh NAME SECONDS sweeps/run.py-arguments...
# Measured with it: bench/RESULTS.md, "Where the noise comes from".
set -uo pipefail
name=$1 seconds=$2
shift 2
mkdir -p /tmp/runs "${OUT:=/tmp/out}"
start=$(date +%s)
timeout -s INT "$seconds" python3 sweeps/run.py --modes all --storage-path /tmp/runs --name "$name" "$@" > "$OUT/$name.log" 2>&1
echo "$name: exit $? after $(( $(date +%s) - start )) s"
grep -E "finished|trials in" "$OUT/$name.log" | tail -2
tar cJf "/tmp/$name.tar.xz" --exclude='checkpoint_*' --exclude='events.out.*' -C /tmp/runs "$name"
split -b 15M "/tmp/$name.tar.xz" "$OUT/$name.tar.xz.part-"
