#!/usr/bin/env bash
# Multi-process training on one machine through torchrun (NCCL on GPUs, gloo on CPU).
#   scripts/dist_train.sh <processes> --config cfgs/pretrain.yaml --exp_name <name> [main.py flags]
# Multi-node: call torchrun yourself with --nnodes/--rdzv_endpoint and `main.py --launcher pytorch`.
set -euo pipefail
if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 <processes> main.py-flags..." >&2
  exit 2
fi
procs=$1
shift
cd "$(dirname "$0")/.."
exec torchrun --standalone --nproc_per_node="$procs" main.py --launcher pytorch "$@"
