#!/usr/bin/env bash
# Debian's gRPC (1.51.1-3, the source of libgrpc29 and libgrpc++1.51) rebuilt with clang-14 and
# -fsanitize=thread, as shared libraries with Debian's SONAMEs, for the TSan test run
# (tools/sanitize.sh). Why: gRPC hands every callback, message and status from thread to thread
# through its own atomics, lock-free queues and combiners. Compiled without TSan, those
# hand-offs are invisible, while the code on both sides of them is instrumented (the grpcpp
# headers' inline CallOpSet/interceptor code, our reactors, protobuf messages, absl::Status).
# Instrumenting Abseil alone (gRPC 1.51's grpc_core::Mutex and gpr_mu are absl::Mutex, GPR_ABSEIL_SYNC)
# is not enough: measured 2026-12-07 with tools/absl_tsan.sh's Abseil and Debian's gRPC, 13 of
# the 17 concurrency tests failed with 770 reports; 61 were Abseil's own false positive
# (tools/tsan_suppressions.txt), 708 of the other 709 had gRPC frames on a stack (sendmsg,
# memcpy into slices, absl::Cord and absl::Status payloads handed over by gRPC's combiners), and
# one was a real race in our tests. With these libraries and that Abseil first on
# LD_LIBRARY_PATH: only the suppressed false positive and that real race, since fixed.
#
# Built: libgpr, libgrpc, libgrpc++, libupb, libaddress_sorting (what our binaries load from the
# package; libgrpc++_reflection stays Debian's: it is only a registered service). Output:
# $PROTEUS_GRPC_TSAN_DIR (default /opt/proteus/grpc-1.51.1-tsan)/lib. Idempotent: a no-op when
# its stamp file is there. Needs clang-14, cmake, python3, git, the -dev packages of
# tools/setup_debian.sh (it compiles against Debian's Abseil headers, which are those of
# tools/absl_tsan.sh's build) and deb.debian.org (the source package, checked against the
# SHA-256 sums of its .dsc). 10 min 15 s on 2 cores from scratch (836 files; measured 2026-12-07).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=1.51.1
debrev=3
prefix=${PROTEUS_GRPC_TSAN_DIR:-/opt/proteus/grpc-$version-tsan}
jobs=${PROTEUS_SAN_JOBS:-2}
stamp=$prefix/.built-$version-$debrev
if [[ -f $stamp ]]; then
  echo "grpc_tsan: $prefix is there"
  exit 0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo); fi

work=build/grpc-tsan
started=$SECONDS
# Debian's source tree (system Abseil, no BoringSSL, no OpenCensus), as the package was built.
source tools/debian_source.sh
debian_source_tree grpc_tsan http://deb.debian.org/debian/pool/main/g/grpc "$work" \
  "grpc_$version.orig.tar.gz" b55696fb249669744de3e71acc54a9382bea0dce7cd5ba379b356b12b82d4229 \
  "grpc_$version-$debrev.debian.tar.xz" 767b69da166bae708a54c4740056d9e847d57d89885173016bfc57ebbf154b2d
src=$work/src

# As debian/rules configures its shared build (every dependency from the system; build type None,
# so without NDEBUG: Debian's libgrpc++ calls the debug variants of gRPC's internal ref-counting
# functions), with TSan and -O1, and without the code generators (protoc plugins).
flags="-O1 -g -fno-omit-frame-pointer -fsanitize=thread"
cmake -S "$src" -B "$work/shared" -DCMAKE_BUILD_TYPE=None \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_CXX_STANDARD=17 \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" -DBUILD_SHARED_LIBS=ON -DgRPC_BUILD_TESTS=OFF \
  -DgRPC_ABSL_PROVIDER=package -DgRPC_CARES_PROVIDER=package -DgRPC_PROTOBUF_PROVIDER=package \
  -DgRPC_RE2_PROVIDER=package -DgRPC_SSL_PROVIDER=package -DgRPC_ZLIB_PROVIDER=package \
  -DgRPC_BACKWARDS_COMPATIBILITY_MODE=OFF -DgRPC_BUILD_CODEGEN=OFF \
  -DgRPC_BUILD_GRPC_CPP_PLUGIN=OFF -DgRPC_BUILD_GRPC_CSHARP_PLUGIN=OFF \
  -DgRPC_BUILD_GRPC_NODE_PLUGIN=OFF -DgRPC_BUILD_GRPC_OBJECTIVE_C_PLUGIN=OFF \
  -DgRPC_BUILD_GRPC_PHP_PLUGIN=OFF -DgRPC_BUILD_GRPC_PYTHON_PLUGIN=OFF \
  -DgRPC_BUILD_GRPC_RUBY_PLUGIN=OFF \
  -DProtobuf_PROTOC_LIBRARY=/usr/lib/x86_64-linux-gnu/libprotoc.so.32 >"$work/configure.log" 2>&1 ||
  { tail -n 40 "$work/configure.log" >&2; echo "grpc_tsan: configure failed" >&2; exit 1; }
# (Protobuf_PROTOC_LIBRARY: only grpc_plugin_support, not built, links libprotoc; without
# libprotoc-dev CMake would refuse to generate.)
libs=(gpr grpc grpc++ upb address_sorting)
cmake --build "$work/shared" -j "$jobs" --target "${libs[@]}" >"$work/build.log" 2>&1 ||
  { tail -n 40 "$work/build.log" >&2; echo "grpc_tsan: build failed ($work/build.log)" >&2; exit 1; }

"${SUDO[@]}" rm -rf "$prefix"
"${SUDO[@]}" mkdir -p "$prefix/lib"
for l in "${libs[@]}"; do
  "${SUDO[@]}" cp -a "$work/shared/lib$l.so".* "$prefix/lib/"
done

# Each must carry the SONAME Debian's package has and define every symbol Debian's copy does
# that something still loaded imports: the other rebuilt libraries, and Debian's gRPC libraries
# that are not rebuilt (libgrpc++_reflection & co.). Our binaries are checked by
# tools/sanitize.sh (LD_BIND_NOW).
deb=/usr/lib/x86_64-linux-gnu
sonames=(libgpr.so.29 libgrpc.so.29 libgrpc++.so.1.51 libupb.so.29 libaddress_sorting.so.29)
importers=()
for s in "${sonames[@]}"; do importers+=("$prefix/lib/$s"); done
for u in "$deb"/libgrpc*.so.*.*; do
  replaced=0
  for s in "${sonames[@]}"; do [[ $(readelf -d "$u" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p') == "$s" ]] && replaced=1; done
  (( replaced )) || importers+=("$u")
done
imports=$(for u in "${importers[@]}"; do nm -D --undefined-only "$u" | awk '{print $2}'; done | sort -u)
for s in "${sonames[@]}"; do
  [[ -e $prefix/lib/$s ]] || { echo "grpc_tsan: missing $s" >&2; exit 1; }
  missing=$(comm -23 <(nm -D --defined-only "$deb/$s" | awk 'NF>=3 {print $3}' | sort -u) \
                     <(nm -D --defined-only "$prefix/lib/$s" | awk 'NF>=3 {print $3}' | sort -u) |
            comm -12 - <(echo "$imports"))
  if [[ -n $missing ]]; then
    echo "grpc_tsan: $s lacks symbols that the loaded gRPC libraries import:" >&2
    echo "$missing" | head -n 20 >&2
    exit 1
  fi
done
"${SUDO[@]}" touch "$stamp"
echo "grpc_tsan: built ${libs[*]} into $prefix/lib in $((SECONDS - started)) s"
