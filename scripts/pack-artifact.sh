#!/usr/bin/env bash
# Per-architecture install artifact (issue 21): edgefit-<version>-linux-<arch>.tar.gz holding
# dist/src, assets, profiles, systemd, install.sh, package.json/lock, .npmrc, the shm-map addon
# (native/shm-map/build/Release/shm_map.node) and the production node_modules of a tree built for that arch, with only that arch's onnxruntime binaries, so a
# fleet installs without compiling on every box:
#   tar xzf edgefit-0.1.0-linux-arm64.tar.gz && cd edgefit-0.1.0-linux-arm64 && sudo ./install.sh
#
#   scripts/pack-artifact.sh --arch arm64|x64 [--from DIR] [--node PATH] [--out DIR]
#     --from DIR   a checkout built for that arch (npm ci && npm run build there); default: this one
#     --node PATH  a Node >= 20 of that arch (under qemu-user for a foreign one); default: node on PATH
#     --out DIR    where the tarball goes (default: the current folder)
# The tree is exactly what install.sh installs (it selects the production dependencies, keeps
# this arch's onnxruntime binaries and checks every native module's ELF machine and glibc): the
# script runs install.sh --root into a throwaway root and packs its /opt/edgefit.
set -euo pipefail

ARCH=""
FROM=$(cd "$(dirname "$0")/.." && pwd)
NODE=$(command -v node || true)
OUT=$PWD
die() {
  echo "pack-artifact: $*" >&2
  exit 1
}
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) [ $# -ge 2 ] || die "--arch needs arm64 or x64"; ARCH=$2; shift 2 ;;
    --from) [ $# -ge 2 ] || die "--from needs a directory"; FROM=$(cd "$2" && pwd); shift 2 ;;
    --node) [ $# -ge 2 ] || die "--node needs a node binary"; NODE=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || die "--out needs a directory"; mkdir -p "$2"; OUT=$(cd "$2" && pwd); shift 2 ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
case "$ARCH" in arm64 | x64) ;; *) die "--arch arm64|x64 is required" ;; esac
[ -n "$NODE" ] && [ -x "$NODE" ] || die "no node to run (--node PATH)"
NODE_ARCH=$("$NODE" -p 'process.arch') || die "$NODE does not run here (a foreign arch needs qemu-user and binfmt_misc)"
[ "$NODE_ARCH" = "$ARCH" ] || die "$NODE is $NODE_ARCH, not $ARCH: pass --node with a $ARCH Node"
[ -f "$FROM/dist/src/cli/main.js" ] && [ -d "$FROM/node_modules" ] || die "$FROM is not a built checkout (npm ci && npm run build there)"
VERSION=$("$NODE" -p 'require(process.argv[1]).version' "$FROM/package.json")
NAME="edgefit-$VERSION-linux-$ARCH"

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/edgefit-pack.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
# install.sh refuses a tree whose native modules are not $ARCH ELFs (or need a newer glibc than
# this box's), and prints the installed size; its config and operator key in the root are dropped
sh "$FROM/install.sh" --root "$STAGE/root" --node "$NODE" >"$STAGE/install.log" 2>&1 || {
  cat "$STAGE/install.log" >&2
  die "install.sh --root failed for $ARCH (lines above)"
}
grep 'installed tree' "$STAGE/install.log" | sed 's/^install.sh: /pack-artifact: from install.sh: /'
mv "$STAGE/root/opt/edgefit" "$STAGE/$NAME"
cp -a "$FROM/install.sh" "$STAGE/$NAME/"
ls -d "$STAGE/$NAME/node_modules/onnxruntime-node/bin"/napi-v*/linux/"$ARCH" >/dev/null 2>&1 || die "no linux/$ARCH onnxruntime binaries in the tree"
# a fleet artifact carries the mmap addon (install.sh checked its ELF machine and glibc with the rest)
[ -f "$STAGE/$NAME/native/shm-map/build/Release/shm_map.node" ] ||
  die "no native/shm-map/build/Release/shm_map.node in the tree: build it in $FROM first (npm run build:native)"
# reproducible-ish: fixed owner and sorted names, so two packs of one tree differ only in mtimes
tar --sort=name --owner=0 --group=0 --numeric-owner -C "$STAGE" -czf "$OUT/$NAME.tar.gz.tmp" "$NAME"
mv "$OUT/$NAME.tar.gz.tmp" "$OUT/$NAME.tar.gz"
SIZE_KB=$(du -k "$OUT/$NAME.tar.gz" | cut -f1)
TREE_KB=$(du -sk "$STAGE/$NAME" | cut -f1)
echo "pack-artifact: $OUT/$NAME.tar.gz: $((SIZE_KB / 1024)) MB ($((TREE_KB / 1024)) MB unpacked; linux/$ARCH onnxruntime only)"
