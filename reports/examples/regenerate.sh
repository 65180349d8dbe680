#!/usr/bin/env bash
# Regenerate every example under reports/examples/ from the data the repository ships (run from the repo root;
# `idealrt X` is the same as `python -m idealrt X`). Nothing here is typed in by hand.
set -euo pipefail
cd "$(dirname "$0")/../.."
run() { python -m idealrt "$@"; }
ex=reports/examples
for fit in calibration/fits/*_*.json; do  # one calibration report per fitted GPU and stack
  name=$(basename "$fit" .json)
  run report --gpu "${name%_*}" --stack "${name##*_}" -o "$ex/calibration-$name.html"
done
run sweep --model llama-3.1-8b,llama-3.1-70b,mixtral-8x7b --gpu h100-sxm,h200 --prompt 128:8192:x4 --output 128 \
    --batch 1,8,32 --tp 1,2,4,8 --html "$ex/whatif.html" > /dev/null
study=(study --accuracy "$ex/accuracy-mmlu.csv" --csv "$ex/study.csv" --html "$ex/study.html")
{ echo "\$ idealrt ${study[*]}"; run "${study[@]}"; } > "$ex/study.txt"
