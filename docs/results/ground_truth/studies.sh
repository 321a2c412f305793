#!/usr/bin/env bash
# The studies on the Fashion-MNIST ground truth (README.md beside this file); run from the repository root after
#   python -m spikenas.analyze ground_truth --output-dir docs/results/ground_truth --executor ray --workers 2
#   python bench/ground_truth_scores.py ...   (the training-free scores of every record, see README.md)
set -euo pipefail
GT=docs/results/ground_truth
for set in 2O-1cell 3O-1cell 3O-2cell; do
    scores=$(python -c "import csv, sys; print(','.join(sorted({r['score'] for r in csv.DictReader(open(sys.argv[1]))})))" \
        "$GT/scores/$set.csv")
    python -m spikenas.analyze selection --bench "$GT/$set.csv" --folds 5 --values "$GT/scores/$set.csv" \
        --scores "conv_depth,live_convs,live_skips,params,$scores" --seeds 0,1,2 --output-dir "$GT/selection/$set" \
        --rules "none;live_convs;live_skips;params;threshold_rise;threshold_rise,live_convs;hamming;threshold_rise,hamming;\
threshold_rise,sahd;threshold_rise,naswot_nodes;threshold_rise,meco_potential;threshold_rise,zico;threshold_rise,synflow"
    python -m spikenas.analyze rerank --bench "$GT/$set.csv" --curves "$GT/${set}_curves.csv.gz" --folds 5 \
        --max-epochs 16 --top 4 --epochs 1,3 --window 2 --output-dir "$GT/rerank/$set"
    python -m spikenas.analyze guard --bench "$GT/$set.csv" --curves "$GT/${set}_curves.csv.gz" \
        --noise-floor "$GT/noise_floor.csv" --schedule 4:1,3:2:2 --schedule 6:1,2,3:2:1 --schedule 2:3:2:1 \
        --output-dir "$GT/guard/$set"
done
