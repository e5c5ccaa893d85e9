#!/usr/bin/env bash
# Set up, then compress the bundled digits model (StandardScaler + LogisticRegression) to an
# int8 .esb blob, check it against scikit-learn on held-out data, inspect it and predict with it;
# export it to ONNX and benchmark both against scikit-learn on this machine (out/report/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
cd "$root"
mkdir -p out
set -x
edgesparse compress models/digits_pipeline.pkl -o out/digits.esb \
  --check-data models/digits_pipeline.test.npz
edgesparse inspect out/digits.esb
python -c "import numpy as np; np.save('out/digits_X5.npy', np.load('models/digits_pipeline.test.npz')['X'][:5])"
edgesparse predict out/digits.esb out/digits_X5.npy --proba
edgesparse predict out/digits.esb out/digits_X5.npy
edgesparse compress models/digits_pipeline.pkl -o out/digits.onnx \
  --check-data models/digits_pipeline.test.npz
edgesparse bench out/digits.esb out/digits.onnx models/digits_pipeline.pkl --target host \
  --data models/digits_pipeline.test.npz --runs 300 --warmup 30 -o out/report
