#!/usr/bin/env bash
# Builds the WebAssembly kernels in src/kernels/*.c into src/kernels/*.wasm (committed, so users
# need no compiler). Needs clang and wasm-ld with the WebAssembly target, e.g. on Debian/Ubuntu:
#   apt-get install -y clang lld
# CLANG=/path/to/clang overrides the compiler. Output is deterministic for a given clang version.
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG="${CLANG:-clang}"
FLAGS=(
  --target=wasm32 -O3 -msimd128 -mbulk-memory -ffreestanding -nostdlib
  -ffp-contract=off -fno-fast-math -Wall -Wextra -Werror
  -Wl,--no-entry -Wl,--export=__heap_base -Wl,-z,stack-size=65536 -Wl,--strip-debug
)
for name in decode matmul; do
  src="src/kernels/$name.c"
  [ -f "$src" ] || continue
  "$CLANG" "${FLAGS[@]}" -o "src/kernels/$name.wasm" "$src"
  echo "built src/kernels/$name.wasm ($(wc -c < "src/kernels/$name.wasm") bytes) with $("$CLANG" --version | head -1)"
done
