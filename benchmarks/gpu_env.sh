# Sourced by the gpu_*.sh scripts on a lent GPU machine (no network there): installs the wheels carried
# in .whl/ to /tmp/site and this checkout in editable mode (as CI does: the source folders map onto the
# detseg.* namespace, and the tests import the repository's helpers), once per machine.
# polars (54 MB) is too big to carry; ultralytics imports it only to copy results.csv into a training
# checkpoint and for plots (gpu_distill.sh trains with --no-plots; without, the plots fail and training goes on):
# a stub makes the checkpoint step store an empty table.
export PYTHONPATH="/tmp/site:/tmp/stub${PYTHONPATH:+:$PYTHONPATH}" YOLO_OFFLINE=1 PYTHONUNBUFFERED=1
if ! (cd /tmp && python3 -c "import detseg.pipeline.cli" 2>/dev/null); then
    if ! compgen -G ".whl/*.whl" >/dev/null; then
        echo "no wheels in .whl/: run benchmarks/gpu_wheels.sh here and carry .whl" >&2; return 1
    fi
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || return 1
    python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . || return 1
    mkdir -p /tmp/stub/polars && echo 'def read_csv(*a, **k): raise ImportError("polars stub")' > /tmp/stub/polars/__init__.py
    if PYTHONPATH=/tmp/site python3 -c "import polars" 2>/dev/null; then rm -r /tmp/stub; fi
fi
true  # the file's status when sourced: a failed install has returned 1 above
