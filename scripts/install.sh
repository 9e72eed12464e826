#!/usr/bin/env bash
# Install everything mto needs on a fresh Debian machine; quick when it is already there.
# Usage: bash scripts/install.sh [--test]
# Without root the apt step is skipped and the Fashion-MNIST subset shipped in the repo is used.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=()
[ -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] || apt_packages+=(dataset-fashion-mnist)
# --test: also Debian's Chromium, which the browser test drives (playwright never downloads one)
if [ "${1:-}" = "--test" ]; then
  [ -x /usr/bin/chromium ] || apt_packages+=(chromium chromium-driver)
fi
if [ ${#apt_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${apt_packages[@]}" >/dev/null
  else
    echo "install.sh: not root, skipping apt packages (${apt_packages[*]}); the app runs on the shipped" \
         "data subset, and the browser test needs /usr/bin/chromium" >&2
  fi
fi

python3 -m pip install -q --disable-pip-version-check torch==2.13.0   # the CPU build, before anything pulls a CUDA one
python3 -m pip install -q --disable-pip-version-check -r requirements.txt
python3 -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
