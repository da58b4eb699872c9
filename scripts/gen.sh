#!/usr/bin/env bash
# Generates the Python package `sfmesh` from protos/ into the folder given
# (default gen/): messages, gRPC stubs, .pyi files, and descriptors.binpb,
# the descriptor set with source comments that reflection serves.
# `make gen` runs it.
set -euo pipefail
out=${1:-gen}
python=${PYTHON:-.venv/bin/python}
deps=build/proto-deps
scripts/proto-deps.sh "$python" "$deps"
rm -rf "$out/sfmesh"
mkdir -p "$out/sfmesh/v1"
mapfile -t protos < <(find protos -name '*.proto' | sort)
"$python" -m grpc_tools.protoc -I protos -I "$deps" \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  --include_imports --include_source_info \
  --descriptor_set_out="$out/sfmesh/v1/descriptors.binpb" "${protos[@]}"
# protoc writes no package markers; the folders become regular packages.
find "$out/sfmesh" -type d -exec touch {}/__init__.py \;
