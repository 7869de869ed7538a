#!/usr/bin/env bash
# Build the C examples: wasm32-wasi modules into examples/wasm/ (committed) and native
# binaries into examples/build/ (ignored) for the overhead benchmark.
# Needs: clang lld wasi-libc libclang-rt-14-dev-wasm32 gcc (`make toolchain` installs them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$here/wasm" "$here/build"
for src in "$here"/c/*.c; do
  name="$(basename "$src" .c)"
  clang --target=wasm32-wasi --sysroot=/usr -O2 -Wl,--strip-all -o "$here/wasm/$name.wasm" "$src"
  gcc -O2 -o "$here/build/$name" "$src" -lm
  echo "built $name"
done
