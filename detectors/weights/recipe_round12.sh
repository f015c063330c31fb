#!/usr/bin/env bash
# Round 12 (model card): round 11's recipe with a longer budget (1.8 h instead of 1.2), the run in OUT/D12 beside
# round 11's; its data is round 11's (STEP=data or all remakes it into OUT). Judged by round 4's rule.
#   STEP  all (default) | data | train | judge
set -euo pipefail
RUN=D12 HOURS="${HOURS:-1.8}" OUT="${OUT:-runs/round11}" exec bash detectors/weights/recipe_round11.sh
