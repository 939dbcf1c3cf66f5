#!/usr/bin/env bash
# Packs the Debian 12 libraries the GPU build needs (gRPC, protobuf, Abseil, prometheus-cpp,
# nlohmann-json, GoogleTest: runtime and -dev packages) into one folder for a GPU machine that has
# no package manager: `apt-get download` + `dpkg -x`, no installation here. Output: $1
# (default .deps/gpu-deps.tgz), about 10 MB; tools/gpu_build.sh unpacks and uses it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:-.deps/gpu-deps.tgz}
packages=(
  libgrpc++1.51 libgrpc29 libprotobuf32 libprotoc32 libabsl20220623
  libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libprometheus-cpp-push1.0
  libcivetweb1 libre2-9 libc-ares2
  libgrpc++-dev libgrpc-dev libprotobuf-dev libabsl-dev prometheus-cpp-dev
  libre2-dev libc-ares-dev libcivetweb-dev civetweb
  protobuf-compiler protobuf-compiler-grpc
  nlohmann-json3-dev libgtest-dev libgmock-dev googletest
)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download "${packages[@]}" >/dev/null)
mkdir -p "$work/root"
for deb in "$work"/*.deb; do dpkg -x "$deb" "$work/root"; done
# Static archives and docs are not needed: the build links the shared libraries.
find "$work/root" \( -name '*.a' ! -name 'libgtest*.a' ! -name 'libgmock*.a' \) -delete
rm -rf "$work/root/usr/share/doc" "$work/root/usr/share/man" "$work/root/usr/src"
mkdir -p "$(dirname "$out")"
tar -C "$work/root" -czf "$out" .
echo "gpu-deps: $(du -h "$out" | cut -f1) in $out (${#packages[@]} packages)"
