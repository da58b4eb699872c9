#!/usr/bin/env bash
# Generates the Python package `sfmesh` from protos/ into the folder given
# (default gen/): messages, gRPC stubs and .pyi files. `make gen` runs it.
set -euo pipefail
out=${1:-gen}
python=${PYTHON:-.venv/bin/python}
deps=build/proto-deps
scripts/proto-deps.sh "$python" "$deps"
rm -rf "$out/sfmesh"
mkdir -p "$out"
mapfile -t protos < <(find protos -name '*.proto' | sort)
"$python" -m grpc_tools.protoc -I protos -I "$deps" \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" "${protos[@]}"
# protoc writes no package markers; the folders become regular packages.
find "$out/sfmesh" -type d -exec touch {}/__init__.py \;
