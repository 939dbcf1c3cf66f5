#!/usr/bin/env bash
# Debian's Abseil (20220623.1-1+deb12u2, the source of libabsl20220623) rebuilt with clang-14 and
# -fsanitize=thread, as shared libraries with Debian's SONAMEs (libabsl_*.so.20220623), for the
# TSan test run (tools/sanitize.sh). Why: absl::Mutex is a futex-based lock of its own, and its
# happens-before annotations for TSan are compiled in only when Abseil itself is built with
# -fsanitize=thread. Against Debian's gcc-built libraries every access guarded by an absl::Mutex
# (ours, and gRPC's grpc_core::Mutex, which wraps it) looks like a race. With these libraries first
# on LD_LIBRARY_PATH, our binaries and Debian's libgrpc++/libgrpc (their DT_NEEDED libabsl_*)
# both load the instrumented copies.
#
# Output: $PROTEUS_ABSL_TSAN_DIR (default /opt/proteus/absl-20220623.1-tsan)/lib. Idempotent: a
# no-op when its stamp file is there. Needs clang-14, cmake, python3 (tools/setup_debian.sh) and
# deb.debian.org (the source package, checked against the SHA-256 sums of its .dsc).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=20220623.1
debrev=1+deb12u2
prefix=${PROTEUS_ABSL_TSAN_DIR:-/opt/proteus/absl-$version-tsan}
jobs=${PROTEUS_SAN_JOBS:-2}
stamp=$prefix/.built-$version-$debrev
if [[ -f $stamp ]]; then
  echo "absl_tsan: $prefix is there"
  exit 0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo); fi

work=build/absl-tsan
started=$SECONDS
# Debian's source tree (SONAME 20220623, inline namespace debian3, absl::string_view etc. as their
# own types, the hardened mode, the CVE fix): the same ABI as the installed headers and libraries.
source tools/debian_source.sh
debian_source_tree absl_tsan http://deb.debian.org/debian/pool/main/a/abseil "$work" \
  "abseil_$version.orig.tar.gz" abfe2897f3a30edaa74bc34365afe3c2a3cd012091a97dc7e008f7016adcd5fe \
  "abseil_$version-$debrev.debian.tar.xz" e08490fc7b6f3beca1925953b0c4fb92df2de5e2a01295e4641e2a3d4e528eeb
src=$work/src
grep -q 'INLINE_NAMESPACE_NAME debian3' "$src/absl/base/options.h" ||
  { echo "absl_tsan: Debian's patches did not apply" >&2; exit 1; }

# As debian/rules builds its shared libraries (C++17, BUILD_SHARED_LIBS, build type None: no
# NDEBUG), with TSan and -O1.
cmake -S "$src" -B "$work/shared" -DCMAKE_BUILD_TYPE=None \
  -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_CXX_STANDARD=17 \
  -DBUILD_SHARED_LIBS=ON -DBUILD_TESTING=OFF -DABSL_PROPAGATE_CXX_STD=ON \
  -DCMAKE_CXX_FLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=thread" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" \
  -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib >/dev/null
cmake --build "$work/shared" -j "$jobs" >"$work/build.log" 2>&1 ||
  { tail -n 40 "$work/build.log" >&2; echo "absl_tsan: build failed ($work/build.log)" >&2; exit 1; }
"${SUDO[@]}" rm -rf "$prefix"
"${SUDO[@]}" cmake --install "$work/shared" >/dev/null
# Only the shared libraries are needed (compiling uses Debian's identical headers).
"${SUDO[@]}" rm -rf "$prefix/include" "$prefix/lib/cmake" "$prefix/lib/pkgconfig"

# Every libabsl_*.so.20220623 that Debian ships must be here, or the loader would mix in an
# uninstrumented one.
missing=0
for lib in /usr/lib/x86_64-linux-gnu/libabsl_*.so.20220623; do
  name=$(basename "$lib")
  if [[ ! -e $prefix/lib/$name ]]; then echo "absl_tsan: missing $name" >&2; missing=1; fi
done
(( missing == 0 )) || exit 1
"${SUDO[@]}" touch "$stamp"
echo "absl_tsan: built $(ls "$prefix"/lib/libabsl_*.so.20220623 | wc -l) libraries into $prefix/lib in $((SECONDS - started)) s"
