#!/usr/bin/env bash
# Builds the WebAssembly kernels (src/kernels/matmul.c, and the organism's fused decode step
# src/model/fastDecoder.c) into .wasm files beside them (committed, so users
# need no compiler). Needs clang and wasm-ld with the WebAssembly target; the committed binaries are
# built with Debian's clang 19 (bookworm: apt-get install -y clang-19 lld-19), which folds constant
# offsets into WebAssembly loads (clang 14 does not: its matmul runs slower under V8). Uses
# clang-19 if present, else clang; CLANG=/path/to/clang overrides. Output is deterministic for a
# given clang version.
# matmul.wasm and fastDecoder.wasm import a shared memory (threads: every worker runs its own instance
# over it), so they are built with atomics, and fastDecoder.wasm must not use the stack (every instance's
# stack pointer would start at the same address): the build fails if it touches a global. matmul-heap.wasm is the same source built for
# another imported shared memory of up to 4 GiB: matmul.ts runs it inside the tfjs-wasm backend's
# own heap (made shared by src/engine/wasmHeap.ts), on the caller's thread and in every worker: no
# copies. So it must never write anywhere but through the pointers it is given: the build fails if
# it has a data section or touches a global (the stack pointer).
# matmul-fma.wasm and matmul-heap-fma.wasm: the same two with -DRLVR_FMA (relaxed-SIMD fused
# multiply-add in the micro-kernel; matmul.ts uses them unless RLVR_MATMUL=exact).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${CLANG:-}" ]; then
  if command -v clang-19 >/dev/null; then CLANG=clang-19; else CLANG=clang; fi
fi
FLAGS=(
  --target=wasm32 -O3 -msimd128 -mbulk-memory -ffreestanding -nostdlib
  -ffp-contract=off -fno-fast-math -Wall -Wextra -Werror
  -Wl,--no-entry -Wl,--export=__heap_base -Wl,-z,stack-size=65536 -Wl,--strip-debug
)
SHARED=(-matomics -Wl,--import-memory -Wl,--shared-memory -Wl,--max-memory=2147483648)
for src in src/model/fastDecoder.c src/kernels/matmul.c; do
  out="${src%.c}.wasm"
  "$CLANG" "${FLAGS[@]}" "${SHARED[@]}" -o "$out" "$src"
  echo "built $out ($(wc -c < "$out") bytes) with $("$CLANG" --version | head -1)"
done
OBJDUMP="${OBJDUMP:-$(dirname "$(command -v "$CLANG")")/$(basename "$CLANG" | sed 's/^clang/llvm-objdump/')}"
command -v "$OBJDUMP" >/dev/null || OBJDUMP=llvm-objdump
if command -v "$OBJDUMP" >/dev/null && "$OBJDUMP" -d src/model/fastDecoder.wasm | grep -q 'global\.'; then
  echo "src/model/fastDecoder.wasm uses the stack (global.get/set): its threads would share one stack; keep its functions free of stack arrays" >&2
  exit 1
fi
FMA=(-DRLVR_FMA -mrelaxed-simd)
"$CLANG" "${FLAGS[@]}" "${SHARED[@]}" "${FMA[@]}" -o src/kernels/matmul-fma.wasm src/kernels/matmul.c
echo "built src/kernels/matmul-fma.wasm ($(wc -c < src/kernels/matmul-fma.wasm) bytes)"
for variant in "" "-fma"; do
  heap="src/kernels/matmul-heap$variant.wasm"
  extra=()
  [ -n "$variant" ] && extra=("${FMA[@]}")
  "$CLANG" "${FLAGS[@]}" -matomics -Wl,--import-memory -Wl,--shared-memory -Wl,--max-memory=4294967296 ${extra[@]+"${extra[@]}"} -o "$heap" src/kernels/matmul.c
  if command -v "$OBJDUMP" >/dev/null; then
    if "$OBJDUMP" -h "$heap" | grep -qw DATA || "$OBJDUMP" -d "$heap" | grep -q 'global\.'; then
      echo "$heap uses static data or the stack (global.get/set): it cannot run inside another module's heap; keep its functions free of stack arrays" >&2
      exit 1
    fi
    check="checked with $OBJDUMP: no data, no globals used"
  else
    check="not checked (no llvm-objdump); matmul.ts still refuses a data section"
  fi
  echo "built $heap ($(wc -c < "$heap") bytes; $check)"
done
