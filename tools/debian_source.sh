# Sourced by tools/absl_tsan.sh and tools/grpc_tsan.sh: Debian's source tree of a package, as the
# package was built (the upstream tarball with debian/patches applied), so that a rebuild has the
# ABI of the installed headers and libraries.
#
# debian_source_tree TOOL POOL_URL WORK ORIG_TARBALL ORIG_SHA256 DEBIAN_TARBALL DEBIAN_SHA256
#   Downloads both tarballs from POOL_URL into WORK/dl (kept, and re-fetched only when their
#   SHA-256 does not match: the sums are those of the package's .dsc), then unpacks a fresh
#   WORK/src. TOOL names the caller in messages. Needs python3 (no curl on a fresh machine), git.
debian_source_tree() {
  local tool=$1 pool=$2 work=$3 orig=$4 orig_sha=$5 debian=$6 debian_sha=$7
  mkdir -p "$work/dl"
  local f sha
  for f in "$orig" "$debian"; do
    sha=$orig_sha
    [[ $f == "$debian" ]] && sha=$debian_sha
    if ! echo "$sha  $work/dl/$f" | sha256sum -c --status 2>/dev/null; then
      echo "$tool: downloading $pool/$f"
      python3 -c 'import sys, urllib.request; open(sys.argv[2], "wb").write(urllib.request.urlopen(sys.argv[1], timeout=120).read())' \
        "$pool/$f" "$work/dl/$f"
      echo "$sha  $work/dl/$f" | sha256sum -c --quiet ||
        { echo "$tool: $f does not match its SHA-256 from the .dsc" >&2; return 1; }
    fi
  done
  local src=$work/src
  rm -rf "$src" && mkdir -p "$src"
  tar -C "$src" --strip-components=1 -xzf "$work/dl/$orig"
  tar -C "$src" -xJf "$work/dl/$debian"
  # git apply (git is installed; patch may not be), in a repository of its own so that paths are
  # taken relative to $src, not to this checkout.
  git -C "$src" init -q
  local p
  while read -r p; do
    [[ -z $p || $p == \#* ]] && continue
    git -C "$src" apply -p1 --whitespace=nowarn "debian/patches/$p" ||
      { echo "$tool: debian/patches/$p did not apply" >&2; return 1; }
  done <"$src/debian/patches/series"
}
