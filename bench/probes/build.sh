#!/usr/bin/env bash
# Builds bench/probes/fp.wasm (see fp.c) with the same compiler choice as scripts/build-kernels.sh.
set -euo pipefail
cd "$(dirname "$0")"
if [ -z "${CLANG:-}" ]; then
  if command -v clang-19 >/dev/null; then CLANG=clang-19; else CLANG=clang; fi
fi
"$CLANG" --target=wasm32 -O3 -msimd128 -ffreestanding -nostdlib -ffp-contract=off -Wall -Wextra -Werror \
  -Wl,--no-entry -Wl,--import-memory -Wl,--strip-debug -o fp.wasm fp.c
echo "built bench/probes/fp.wasm ($(wc -c < fp.wasm) bytes)"
