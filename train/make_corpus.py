#!/usr/bin/env python3
"""Builds the byte-level training corpus of issue 7 from Debian's linux-source-6.1 package.

Reproducible and offline: the only input is the kernel tarball that `apt-get install
linux-source-6.1` puts under /usr/src (no network access here). The tarball is streamed and only the
selected members are read; nothing else is extracted.

Documents:
  prose  Documentation/**/*.rst and Documentation/**/*.txt
  code   C sources (*.c, *.h) outside Documentation/, at least --min-code-bytes long
         (the long documents of the curriculum's later stages)
Split BY FILE: a document's split is a pure function of its path inside the tree (the top-level
"linux-source-6.1/" stripped): the first 8 bytes of sha256(path), as a big-endian integer, modulo
1000, below 1000*train_share -> train, below 1000*(train_share+val_share) -> validation, else test.
So adding or removing files never moves another file between splits.

Output, per split S in {train, validation, test}, under --out:
  S.bin    the documents' bytes concatenated, in path order
  S.tsv    one line per document: offset<TAB>length<TAB>kind<TAB>path
  MANIFEST.json  the inputs (tarball name, size, sha256), the options, and per split the number of
           documents, bytes and the sha256 of S.bin, so two runs can be compared.

Usage: python3 train/make_corpus.py --out /tmp/corpus [--kinds prose,code] [--max-doc-bytes N]
"""

import argparse
import hashlib
import json
import os
import sys
import tarfile

DEFAULT_TARBALL = "/usr/src/linux-source-6.1.tar.xz"
SPLITS = ("train", "validation", "test")


def split_of(path, train_share, val_share):
    h = int.from_bytes(hashlib.sha256(path.encode("utf-8")).digest()[:8], "big") % 1000
    if h < round(1000 * train_share):
        return "train"
    if h < round(1000 * (train_share + val_share)):
        return "validation"
    return "test"


def kind_of(path, size, min_code_bytes):
    if path.startswith("Documentation/") and path.endswith((".rst", ".txt")):
        return "prose"
    if not path.startswith("Documentation/") and path.endswith((".c", ".h")):
        return "code" if size >= min_code_bytes else None
    return None


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tarball", default=DEFAULT_TARBALL)
    ap.add_argument("--out", required=True)
    ap.add_argument("--kinds", default="prose,code", help="comma list of prose, code")
    ap.add_argument("--min-code-bytes", type=int, default=16384)
    ap.add_argument("--max-doc-bytes", type=int, default=0, help="truncate documents (0: no)")
    ap.add_argument("--train-share", type=float, default=0.90)
    ap.add_argument("--val-share", type=float, default=0.05)
    args = ap.parse_args(argv)
    kinds = set(k for k in args.kinds.split(",") if k)
    if not kinds <= {"prose", "code"}:
        ap.error("--kinds: unknown kind in %r" % args.kinds)
    if not os.path.exists(args.tarball):
        sys.exit("--tarball: %s not found; run `apt-get install linux-source-6.1`" % args.tarball)

    docs = {s: [] for s in SPLITS}  # split -> [(path, kind, bytes)]
    with tarfile.open(args.tarball, mode="r|*") as tar:  # streamed: members in archive order
        for m in tar:
            if not m.isfile():
                continue
            parts = m.name.split("/", 1)
            if len(parts) != 2:
                continue
            path = parts[1]
            kind = kind_of(path, m.size, args.min_code_bytes)
            if kind not in kinds:
                continue
            data = tar.extractfile(m).read()
            if args.max_doc_bytes > 0:
                data = data[: args.max_doc_bytes]
            if not data:
                continue
            docs[split_of(path, args.train_share, args.val_share)].append((path, kind, data))

    os.makedirs(args.out, exist_ok=True)
    manifest = {
        "tarball": os.path.basename(args.tarball),
        "tarball_bytes": os.path.getsize(args.tarball),
        "tarball_sha256": file_sha256(args.tarball),
        "options": {k: v for k, v in vars(args).items() if k not in ("out", "tarball")},
        "splits": {},
    }
    for s in SPLITS:
        entries = sorted(docs[s], key=lambda e: e[0])
        offset = 0
        with open(os.path.join(args.out, s + ".bin"), "wb") as b, \
             open(os.path.join(args.out, s + ".tsv"), "w", encoding="utf-8") as t:
            for path, kind, data in entries:
                b.write(data)
                t.write("%d\t%d\t%s\t%s\n" % (offset, len(data), kind, path))
                offset += len(data)
        manifest["splits"][s] = {
            "documents": len(entries),
            "bytes": offset,
            "bin_sha256": file_sha256(os.path.join(args.out, s + ".bin")),
        }
    with open(os.path.join(args.out, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    print(json.dumps(manifest["splits"], sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1:])
