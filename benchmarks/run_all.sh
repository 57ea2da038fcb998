#!/usr/bin/env bash
# Every benchmark of benchmarks/README.md in one command, each JAX and PyTorch side by side in one
# process, logs under OUT (default benchmarks/results/<date>). On a GPU (PyTorch and JAX on the same
# card) the rows run in bfloat16 and float32; on a CPU in float32 only, at sizes a laptop finishes.
#
#   bash benchmarks/run_all.sh [OUT]          # everything
#   ONLY="bilstm encoders" bash benchmarks/run_all.sh   # a subset: bilstm encoders speech fusion lpgnet
#   PRECISIONS=bf16 bash benchmarks/run_all.sh          # bf16 and/or float32 (GPU default: both)
#   EXTRA=--keep-host-memory bash benchmarks/run_all.sh # flags for every benchmark: here mer-jax's host-memory setting
#
# Each benchmark has its own time limit (LIMIT seconds, default 900), so one slow row cannot stop the rest.
# LPGNet's seeds run in float32 only, as the paper trains.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/results/$(date +%Y-%m-%d)}
LIMIT=${LIMIT:-900}
ONLY=${ONLY:-bilstm encoders speech fusion lpgnet}
EXTRA=${EXTRA:-}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 USE_TF=0 TF_CPP_MIN_LOG_LEVEL=3
# JAX and PyTorch share the card: JAX allocates as it goes instead of taking 75% up front.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
if python3 -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')"; then
  GPU=1; PRECISIONS=${PRECISIONS:-bf16 float32}; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/device.txt"
else
  GPU=0; PRECISIONS=${PRECISIONS:-float32}; lscpu | grep -E "Model name|^CPU\(s\)" | tee "$OUT/device.txt"
fi

run() {  # run NAME ARGS...: one benchmark, its log in OUT/NAME.log
  local name=$1; shift
  echo "=== $name: python3 $* $EXTRA" | tee "$OUT/$name.log"
  # shellcheck disable=SC2086  # EXTRA holds several flags
  timeout "$LIMIT" python3 "$@" $EXTRA 2>&1 | tee -a "$OUT/$name.log"
  echo "=== $name: exit ${PIPESTATUS[0]}" | tee -a "$OUT/$name.log"
}

for precision in $PRECISIONS; do
  flag=$([ "$precision" = bf16 ] && echo --bf16)
  tag=${flag:+-bf16}
  for what in $ONLY; do
    case $what in
      bilstm) run "bilstm$tag" benchmarks/bilstm_throughput.py $flag ;;
      encoders) run "encoders$tag" benchmarks/encoder_throughput.py --size base $flag \
                  $([ $GPU = 1 ] || echo "--steps 2 --warmup 1") ;;
      speech) run "speech$tag" benchmarks/speech_encoder_throughput.py $flag \
                $([ $GPU = 1 ] || echo "--steps 2") ;;
      fusion) run "fusion$tag" benchmarks/dynamic_fusion_efficiency.py $flag \
                $([ $GPU = 1 ] && echo "--steps 5 --warmup 2" || echo "--steps 2 --warmup 1") ;;
      lpgnet) [ -n "$tag" ] && continue  # float32 only, as the paper trains
              run lpgnet benchmarks/lpgnet_seeds.py \
                $([ $GPU = 1 ] && echo "--timed-epochs 3" || echo "--timed-epochs 1 --torch-seeds 2") ;;
      *) echo "unknown benchmark $what (known: bilstm encoders speech fusion lpgnet)"; exit 2 ;;
    esac
  done
done
