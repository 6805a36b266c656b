#!/usr/bin/env bash
# Builds the native addon (src/native/*.c) into build/rlvr_native.node with the system C compiler
# ($CC, else cc, gcc or clang) and the Node-API headers of the node-api-headers package. It runs at
# `npm ci` / `npm install` (postinstall) and never fails the install: without a compiler, or off
# x86-64, it says why and the WebAssembly kernels serve instead (src/engine/native.ts says so too).
# The kernels pick AVX-512 or AVX2+FMA at run time, so one build runs on any x86-64 CPU.
set -uo pipefail
cd "$(dirname "$0")/.."
out=build/rlvr_native.node
if [ "${RLVR_NATIVE:-}" = "0" ]; then
  echo "native addon: not built (RLVR_NATIVE=0)"
  exit 0
fi
if [ "$(uname -m)" != "x86_64" ]; then
  echo "native addon: not built (it has kernels for x86-64 only; this is $(uname -m)); the WebAssembly kernels serve"
  exit 0
fi
CC="${CC:-}"
if [ -z "$CC" ]; then
  for c in cc gcc clang clang-19; do
    if command -v "$c" >/dev/null; then CC=$c; break; fi
  done
fi
if [ -z "$CC" ]; then
  echo "native addon: not built (no C compiler: install gcc or clang, then npm run build:native); the WebAssembly kernels serve"
  exit 0
fi
inc=node_modules/node-api-headers/include
if [ ! -f "$inc/node_api.h" ]; then
  echo "native addon: not built ($inc/node_api.h missing: run npm ci first); the WebAssembly kernels serve"
  exit 0
fi
mkdir -p build
# -ffp-contract=off: no multiply-add is fused unless a kernel asks for it (the bit-for-bit contract
# with the WebAssembly kernels, src/native/gemm.c)
if "$CC" -std=c11 -D_GNU_SOURCE -O3 -fPIC -shared -fvisibility=hidden -ffp-contract=off -fno-fast-math \
  -Wall -Wextra -Werror -I"$inc" -DNAPI_VERSION=8 -DNODE_GYP_MODULE_NAME=rlvr_native \
  -o "$out.tmp" src/native/*.c -lpthread -lm; then
  mv "$out.tmp" "$out"
  echo "native addon: built $out with $("$CC" --version | head -1)"
else
  rm -f "$out.tmp"
  echo "native addon: the build failed (above); the WebAssembly kernels serve"
fi
exit 0
