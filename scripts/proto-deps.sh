#!/usr/bin/env bash
# Copies the googleapis .proto files the contracts import (google/api,
# google/rpc) out of the installed googleapis-common-protos wheel into an
# ignored build folder, for protoc and buf. Nothing is vendored by hand.
set -euo pipefail
python=$1
dest=$2
site=$("$python" -c 'import google.api, os; print(os.path.dirname(os.path.dirname(google.api.__path__[0])))')
for sub in google/api google/rpc; do
  mkdir -p "$dest/$sub"
  cp "$site/$sub"/*.proto "$dest/$sub/"
done
