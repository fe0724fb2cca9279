#!/bin/sh
# edgefit installer for Debian, Raspberry Pi OS, Ubuntu/JetPack (arm64, x86_64).
#   ./install.sh                 install or upgrade in place, enable and start the service
#   ./install.sh --uninstall     stop, disable and remove (state in /var/lib/edgefit is kept unless --purge)
#   ./install.sh --root DIR      install into a throwaway root (CI): no systemctl, no useradd
#   ./install.sh --operator-key PUBFILE   pin this operator public key (default: generate a pair in /etc/edgefit/keys)
#   ./install.sh --node PATH     the Node.js (>= 20, outside /home) the service runs with (default: node on PATH)
#   ./install.sh --node-from-npm fetch Node 20 for this CPU from the npm registry (node-linux-<arch>, with the system npm) into /opt/edgefit/node
# Every path is quoted; no command is built from input strings.
set -eu

ROOT=""
MODE=install
PURGE=0
OPERATOR_KEY=""
NODE=""
NODE_FROM_NPM=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || { echo "install.sh: --root needs a directory" >&2; exit 2; }; ROOT="$2"; shift 2 ;;
    --uninstall) MODE=uninstall; shift ;;
    --purge) PURGE=1; shift ;;
    --operator-key) [ $# -ge 2 ] || { echo "install.sh: --operator-key needs a public key file" >&2; exit 2; }; OPERATOR_KEY="$2"; shift 2 ;;
    --node) [ $# -ge 2 ] || { echo "install.sh: --node needs the path of a node binary" >&2; exit 2; }; NODE="$2"; shift 2 ;;
    --node-from-npm) NODE_FROM_NPM=1; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

SRC=$(cd "$(dirname "$0")" && pwd)
PREFIX="$ROOT/opt/edgefit"
ETC="$ROOT/etc/edgefit"
STATE="$ROOT/var/lib/edgefit"
UNIT="$ROOT/etc/systemd/system/edgefit.service"
SVC_USER=edgefit
say() { echo "install.sh: $*"; }
die() { echo "install.sh: $*" >&2; exit 1; }

if [ "$MODE" = uninstall ]; then
  if [ -z "$ROOT" ] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now edgefit.service 2>/dev/null || true
  fi
  rm -f "$UNIT"
  rm -rf "$PREFIX"
  [ -z "$ROOT" ] && command -v systemctl >/dev/null 2>&1 && systemctl daemon-reload || true
  if [ "$PURGE" = 1 ]; then rm -rf "$STATE" "$ETC"; say "removed edgefit, its config and state"; else say "removed edgefit (config in $ETC and state in $STATE kept; --purge removes them)"; fi
  exit 0
fi

# ---- checks ----
# The userland first: Node 20 and onnxruntime-node need a 64-bit glibc >= 2.28; on an older one
# node itself fails with "GLIBC_2.28 not found", which says nothing about what to do.
GLIBC_MIN=28
[ "$(getconf LONG_BIT 2>/dev/null || echo 64)" = 64 ] || die "32-bit userland: onnxruntime-node and Node 20 ship no armhf/i386 builds for edgefit. Install a 64-bit OS (Raspberry Pi OS 64-bit, Ubuntu arm64)."
GLIBC=$(getconf GNU_LIBC_VERSION 2>/dev/null | sed -n 's/^glibc \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p')
[ -n "$GLIBC" ] || GLIBC=$(ldd --version 2>/dev/null | sed -n '1s/.* \([0-9][0-9]*\.[0-9][0-9]*\)$/\1/p')
[ -n "$GLIBC" ] || die "cannot read the C library version (getconf GNU_LIBC_VERSION, ldd --version): edgefit needs glibc >= 2.$GLIBC_MIN (musl/Alpine is not supported)"
GLIBC_MAJOR=${GLIBC%%.*}
GLIBC_MINOR=${GLIBC#*.}
if [ "$GLIBC_MAJOR" -lt 2 ] || { [ "$GLIBC_MAJOR" -eq 2 ] && [ "$GLIBC_MINOR" -lt "$GLIBC_MIN" ]; }; then
  die "glibc $GLIBC is too old: Node 20 and onnxruntime need glibc >= 2.$GLIBC_MIN. JetPack 4 (Jetson Nano) and Ubuntu 18.04 cannot run edgefit; use JetPack 5+ / Ubuntu 20.04+ or Debian 10+."
fi
say "glibc $GLIBC (>= 2.$GLIBC_MIN needed): ok"

# The Node the unit runs. ProtectHome=yes hides /home and /root from the service (and sudo does
# not see nvm's PATH), so a Node from nvm would fail at the first start.
NODE_HINT="install a system Node >= 20: NodeSource (deb.nodesource.com, node_20.x), or run install.sh --node-from-npm (Node 20 from the npm registry into /opt/edgefit/node, with the system npm: apt install npm)"
if [ "$NODE_FROM_NPM" = 1 ]; then
  case "$(uname -m)" in
    aarch64|arm64) NPM_ARCH=arm64 ;;
    x86_64|amd64) NPM_ARCH=x64 ;;
    *) die "--node-from-npm: no Node 20 build for $(uname -m) (arm64 and x86_64 only)" ;;
  esac
  command -v npm >/dev/null 2>&1 || die "--node-from-npm needs the system npm (Debian, Raspberry Pi OS: apt install npm)"
  NODE_DIR="$ROOT/opt/edgefit/node"
  if [ ! -x "$NODE_DIR/bin/node" ] || [ "$("$NODE_DIR/bin/node" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -lt 20 ]; then
    # the registry's per-platform package holds the official binary (bin/node); nothing runs at install
    rm -rf "$NODE_DIR.new"
    mkdir -p "$NODE_DIR.new"
    (cd "$NODE_DIR.new" && npm install --prefix "$NODE_DIR.new" --no-save --ignore-scripts --no-audit --no-fund --silent "node-linux-$NPM_ARCH@20") ||
      die "--node-from-npm: npm install node-linux-$NPM_ARCH@20 failed (the box needs the npm registry for this option; or $NODE_HINT)"
    mkdir -p "$NODE_DIR.new/bin"
    cp "$NODE_DIR.new/node_modules/node-linux-$NPM_ARCH/bin/node" "$NODE_DIR.new/bin/node"
    rm -rf "$NODE_DIR.new/node_modules" "$NODE_DIR.new/package.json" "$NODE_DIR.new/package-lock.json"
    rm -rf "$NODE_DIR"
    mv "$NODE_DIR.new" "$NODE_DIR"
  fi
  NODE="$NODE_DIR/bin/node"
  UNIT_NODE=/opt/edgefit/node/bin/node
else
  [ -n "$NODE" ] || NODE=$(command -v node 2>/dev/null) || die "Node.js >= 20 is required: $NODE_HINT"
  REAL_NODE=$(readlink -f "$NODE" 2>/dev/null || echo "$NODE")
  case "$REAL_NODE" in
    /home/*|/root/*) die "node $REAL_NODE is under /home or /root (nvm?): the service cannot run it (ProtectHome=yes; sudo does not see nvm). $NODE_HINT" ;;
  esac
  [ -x "$NODE" ] || die "node $NODE is not an executable: $NODE_HINT"
  UNIT_NODE=$REAL_NODE
fi
NODE_MAJOR=$("$NODE" -p 'process.versions.node.split(".")[0]') || die "$NODE does not run on this box: $NODE_HINT"
[ "$NODE_MAJOR" -ge 20 ] || die "Node.js >= 20 is required, found $("$NODE" -v) ($NODE; Debian 12 and Raspberry Pi OS ship 18): $NODE_HINT"
ARCH=$("$NODE" -p 'process.arch')
case "$ARCH" in
  arm64|x64) ;;
  arm) die "32-bit userland (armhf) detected: onnxruntime-node ships no armhf build. Install a 64-bit OS (Raspberry Pi OS 64-bit, Ubuntu arm64)." ;;
  *) die "unsupported architecture '$ARCH' (arm64 and x86_64 only)" ;;
esac
[ -f "$SRC/package.json" ] && [ -f "$SRC/dist/src/cli/main.js" ] || die "run from a built edgefit checkout (npm ci && npm run build) or an unpacked edgefit-<version>-linux-<arch>.tar.gz"

# check_native DIR: every native module under DIR must be an ELF for this CPU and need no newer
# glibc than this box has (a tree built on x86 or on a newer distribution and copied over installs
# without complaint, then fails at load with "cannot open shared object file"). One line per problem.
check_native() {
  "$NODE" -e '
    const fs = require("fs");
    const path = require("path");
    const [dir, glibc] = process.argv.slice(1);
    const MACHINES = { 3: "i386", 40: "arm", 62: "x86-64", 183: "aarch64" };
    const want = { x64: 62, arm64: 183 }[process.arch];
    const box = MACHINES[want];
    const [gMaj, gMin] = glibc.split(".").map(Number);
    const fix = (name) =>
      name === "better_sqlite3.node"
        ? "run npm rebuild better-sqlite3 on the box (needs build-essential python3)"
        : name === "shm_map.node"
          ? "run npm run build:native in the checkout on a box of this arch (needs a C compiler), or remove it: shared memory then uses positioned reads"
          : /onnxruntime/.test(name)
          ? `reinstall onnxruntime-node for this box (npm ci there: it ships linux/${process.arch} binaries)`
          : "rebuild it on the box (npm rebuild)";
    const bad = [];
    const walk = (d) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.isFile() && (/\.node$/.test(e.name) || /\.so(\.\d+)*$/.test(e.name)) && !/\/obj\.target\//.test(p)) check(p, e.name);
      }
    };
    const check = (p, name) => {
      const b = fs.readFileSync(p);
      const rel = path.relative(dir, p);
      if (b.length < 20 || b.readUInt32BE(0) !== 0x7f454c46) return bad.push(`${rel} is not a Linux (ELF) binary: ${fix(name)}`);
      const bits = b[4] === 2 ? 64 : 32;
      const m = b[5] === 2 ? b.readUInt16BE(18) : b.readUInt16LE(18);
      if (m !== want || bits !== 64)
        return bad.push(`${name} is built for ${MACHINES[m] ?? `machine ${m}`}${bits === 32 ? " (32-bit)" : ""}, this box is ${box}: ${fix(name)}`);
      // the newest GLIBC_2.x version it names (its version needs sit in .dynstr as plain text)
      let need = 0;
      for (const v of b.toString("latin1").matchAll(/GLIBC_2\.(\d+)/g)) need = Math.max(need, Number(v[1]));
      if (gMaj === 2 && need > gMin) bad.push(`${name} needs glibc 2.${need}, this box has ${glibc} (built on a newer distribution): ${fix(name)}`);
    };
    if (fs.existsSync(dir)) walk(dir);
    for (const l of bad) console.error(`install.sh: ${l}`);
    process.exit(bad.length ? 1 : 0);
  ' "$1" "$GLIBC"
}

# ---- files ----
say "installing into $PREFIX (node $("$NODE" -v) at $UNIT_NODE, $ARCH)"
rm -rf "$PREFIX.new"
mkdir -p "$PREFIX.new/dist" "$PREFIX.new/node_modules"
# assets/ is run-time package data (calibration images for the bundled det model, the probe's photos);
# dist/src only: the compiled tests, devkit and scripts are not run on the box
for d in assets profiles package.json package-lock.json .npmrc systemd; do
  [ -e "$SRC/$d" ] && cp -a "$SRC/$d" "$PREFIX.new/"
done
cp -a "$SRC/dist/src" "$PREFIX.new/dist/"
# edgefit's own addon (native/shm-map: mmap for shared-memory serving); without it the server
# reads and writes regions with positioned I/O, so a tree built where no C compiler was still installs
SHM_MAP=native/shm-map/build/Release/shm_map.node
if [ -f "$SRC/$SHM_MAP" ]; then
  mkdir -p "$PREFIX.new/$(dirname "$SHM_MAP")"
  cp -a "$SRC/$SHM_MAP" "$PREFIX.new/$SHM_MAP"
else
  say "warning: $SRC has no $SHM_MAP (npm run build:native there): shared memory will use positioned reads and writes"
fi
# Production dependencies only (the dev tools made a 572 MB install): copy the packages that
# `npm ls --omit=dev` finds in the checkout, then `npm prune --omit=dev --offline` tidies the copy
# (.bin links, npm's tree record). Nothing is downloaded; .npmrc (onnxruntime-node-install=skip)
# comes along so npm never fetches onnxruntime binaries either.
command -v npm >/dev/null 2>&1 || die "npm is required to select the production dependencies (it comes with Node.js; Debian: apt install npm)"
FULL_KB=$(du -skL "$SRC/dist" "$SRC/node_modules" "$SRC/assets" | awk '{s += $1} END {print s}')
LIST="$PREFIX.new/.prod-packages"
(cd "$SRC" && npm ls --omit=dev --all --parseable --silent) > "$LIST" || true
NPM_ROOT=$(head -n 1 "$LIST")
[ -n "$NPM_ROOT" ] || die "npm ls found no packages in $SRC: run npm ci there first"
tail -n +2 "$LIST" | while IFS= read -r p; do
  rel=${p#"$NPM_ROOT"/}
  case "$rel" in
    node_modules/*/node_modules/*) ;; # nested: copied with its parent
    node_modules/*) mkdir -p "$PREFIX.new/$(dirname "$rel")"; cp -a "$p" "$PREFIX.new/$rel" ;;
  esac
done
rm -f "$LIST"
(cd "$PREFIX.new" && npm prune --omit=dev --offline --ignore-scripts --no-audit --no-fund --silent) || die "npm prune --omit=dev failed in $PREFIX.new"
for dep in $("$NODE" -p 'Object.keys(require(process.argv[1]).dependencies).join(" ")' "$PREFIX.new/package.json"); do
  [ -f "$PREFIX.new/node_modules/$dep/package.json" ] || die "production dependency $dep is missing from $SRC/node_modules (npm ci there)"
done
# onnxruntime-node ships every OS's and CPU's binaries (~290 MB): keep this box's only
PLATFORM=$("$NODE" -p 'process.platform')
for d in "$PREFIX.new/node_modules/onnxruntime-node/bin"/napi-v*/*/*; do
  [ -d "$d" ] || continue
  case "$d" in */"$PLATFORM/$ARCH") ;; *) rm -rf "$d" ;; esac
done
for d in "$PREFIX.new/node_modules/onnxruntime-node/bin"/napi-v*/*; do rmdir "$d" 2>/dev/null || true; done
if [ -z "$(ls -d "$PREFIX.new/node_modules/onnxruntime-node/bin"/napi-v*/"$PLATFORM/$ARCH" 2>/dev/null)" ]; then
  rm -rf "$PREFIX.new"
  die "onnxruntime-node in $SRC has no $PLATFORM/$ARCH binaries: reinstall it for this box (npm ci there)"
fi
if ! check_native "$PREFIX.new/node_modules" || ! check_native "$PREFIX.new/native"; then
  rm -rf "$PREFIX.new"
  die "native modules do not fit this box (lines above); nothing was installed"
fi
say "native modules: built for $ARCH, glibc <= $GLIBC: ok"
INSTALLED_KB=$(du -sk "$PREFIX.new" | awk '{print $1}')
say "installed tree $((INSTALLED_KB / 1024)) MB (production dependencies, $PLATFORM-$ARCH binaries); the checkout's dist, node_modules and assets are $((FULL_KB / 1024)) MB"
# swap the whole tree so an upgrade never runs half old, half new files
if [ -d "$PREFIX" ]; then rm -rf "$PREFIX.old"; mv "$PREFIX" "$PREFIX.old"; fi
# a Node provisioned by --node-from-npm lives in the tree: it goes across to the new one
[ -d "$PREFIX.old/node" ] && [ ! -e "$PREFIX.new/node" ] && mv "$PREFIX.old/node" "$PREFIX.new/node"
mv "$PREFIX.new" "$PREFIX"
rm -rf "$PREFIX.old"

mkdir -p "$ETC" "$STATE"
if [ ! -f "$ETC/config" ]; then
  cat > "$ETC/config" <<'CONF'
{
  "stateDir": "/var/lib/edgefit",
  "mqtt": { "url": null },
  "dashboard": { "port": 0 }
}
CONF
  say "wrote default config $ETC/config (embedded broker, no dashboard; set mqtt.url for your fleet broker, dashboard.port to serve one on 127.0.0.1)"
else
  say "kept existing config $ETC/config"
fi

# ---- operator key (issue 20): commands that change the device must be signed by a pinned key ----
# The agent pins /etc/edgefit/operator.pub (readable by the service); a private half made here stays
# in /etc/edgefit/keys (root only) until the operator moves it to the dashboard host.
EDGEFIT="$PREFIX/dist/src/cli/main.js"
PUB_PINNED=/etc/edgefit/operator.pub
KEYS="$ETC/keys"
# pin_key FILE: copy FILE to $ETC/operator.pub and add its installed path to security.operatorKeys
pin_key() {
  cp "$1" "$ETC/operator.pub.new" && chmod 0644 "$ETC/operator.pub.new" && mv "$ETC/operator.pub.new" "$ETC/operator.pub"
  "$NODE" -e '
    const fs = require("fs");
    const [file, pub] = process.argv.slice(1);
    const c = JSON.parse(fs.readFileSync(file, "utf8"));
    c.security = c.security || {};
    const keys = c.security.operatorKeys || [];
    if (!keys.includes(pub)) keys.push(pub);
    c.security.operatorKeys = keys;
    const fd = fs.openSync(file + ".new", "w", 0o640);
    fs.writeSync(fd, JSON.stringify(c, null, 2) + "\n");
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(file + ".new", file);
  ' "$ETC/config" "$PUB_PINNED"
}
if [ -n "$OPERATOR_KEY" ]; then
  [ -f "$OPERATOR_KEY" ] || die "--operator-key: $OPERATOR_KEY is not a file"
  FP=$("$NODE" "$EDGEFIT" keys fingerprint "$OPERATOR_KEY") || die "--operator-key: $OPERATOR_KEY is not a PEM ed25519 public key"
  pin_key "$OPERATOR_KEY"
  say "pinned operator key $FP ($PUB_PINNED): only commands signed by its private half change this device"
elif [ "$("$NODE" -e '
    const s = (JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).security) || {};
    process.stdout.write((s.operatorKeys && s.operatorKeys.length) || s.publicKeyFile || s.hmacSecretFile ? "yes" : "no");
  ' "$ETC/config")" = yes ]; then
  say "kept the signing keys of $ETC/config"
else
  if [ ! -f "$KEYS/operator.key" ]; then
    (umask 077 && mkdir -p "$KEYS")
    "$NODE" "$EDGEFIT" keys generate --out "$KEYS" >/dev/null || die "could not generate an operator key in $KEYS"
  fi
  chmod 0700 "$KEYS"; chmod 0600 "$KEYS/operator.key"
  [ -z "$ROOT" ] && chown -R root:root "$KEYS"
  pin_key "$KEYS/operator.pub"
  FP=$("$NODE" "$EDGEFIT" keys fingerprint "$KEYS/operator.pub")
  say "generated operator key $FP and pinned its public half ($PUB_PINNED)"
  say "its private half is /etc/edgefit/keys/operator.key (root only). For the dashboard to steer this device:"
  say "  1. copy it to the dashboard host: scp root@<this box>:/etc/edgefit/keys/operator.key ./operator.key"
  say "  2. run: edgefit dashboard --operator-key ./operator.key   (or EDGEFIT_OPERATOR_KEY_FILE=./operator.key)"
  say "  3. delete it here: rm /etc/edgefit/keys/operator.key   (a fleet shares one key: install the others with --operator-key operator.pub)"
fi

mkdir -p "$(dirname "$UNIT")"
sed -e "s#@PREFIX@#/opt/edgefit#g" -e "s#@USER@#$SVC_USER#g" -e "s#@NODE@#$UNIT_NODE#g" "$SRC/systemd/edgefit.service" > "$UNIT"

# Raspberry Pi OS: vcgencmd (throttling detection) opens /dev/vchiq, which is group video
VIDEO=0
command -v vcgencmd >/dev/null 2>&1 && VIDEO=1

if [ -n "$ROOT" ]; then
  [ "$VIDEO" = 1 ] && say "vcgencmd found: the service user $SVC_USER would join group video (throttling detection); --root mode: skipped"
  say "--root mode: skipped user creation and systemctl"
  exit 0
fi

if ! id "$SVC_USER" >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/edgefit --no-create-home --shell /usr/sbin/nologin "$SVC_USER"
fi
if [ "$VIDEO" = 1 ]; then
  if getent group video >/dev/null 2>&1; then
    usermod -a -G video "$SVC_USER"
    say "vcgencmd found: added $SVC_USER to group video (throttling detection)"
  else
    say "vcgencmd found but no group video: throttling detection stays off"
  fi
fi
chown -R "$SVC_USER:$SVC_USER" "$STATE"
chmod 0750 "$ETC"; chgrp "$SVC_USER" "$ETC"; chgrp "$SVC_USER" "$ETC/config"; chmod 0640 "$ETC/config"
systemctl daemon-reload
systemctl enable edgefit.service
systemctl restart edgefit.service
say "edgefit is running: systemctl status edgefit; journalctl -u edgefit -f"
