#!/bin/sh
# edgefit installer for Debian, Raspberry Pi OS, Ubuntu/JetPack (arm64, x86_64).
#   ./install.sh                 install or upgrade in place, enable and start the service
#   ./install.sh --uninstall     stop, disable and remove (state in /var/lib/edgefit is kept unless --purge)
#   ./install.sh --root DIR      install into a throwaway root (CI): no systemctl, no useradd
#   ./install.sh --operator-key PUBFILE   pin this operator public key (default: generate a pair in /etc/edgefit/keys)
# Every path is quoted; no command is built from input strings.
set -eu

ROOT=""
MODE=install
PURGE=0
OPERATOR_KEY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || { echo "install.sh: --root needs a directory" >&2; exit 2; }; ROOT="$2"; shift 2 ;;
    --uninstall) MODE=uninstall; shift ;;
    --purge) PURGE=1; shift ;;
    --operator-key) [ $# -ge 2 ] || { echo "install.sh: --operator-key needs a public key file" >&2; exit 2; }; OPERATOR_KEY="$2"; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
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
command -v node >/dev/null 2>&1 || die "Node.js >= 20 is required (apt install nodejs, or NodeSource)"
NODE=$(command -v node)
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]')
[ "$NODE_MAJOR" -ge 20 ] || die "Node.js >= 20 is required, found $(node -v)"
ARCH=$(node -p 'process.arch')
case "$ARCH" in
  arm64|x64) ;;
  arm) die "32-bit userland (armhf) detected: onnxruntime-node ships no armhf build. Install a 64-bit OS (Raspberry Pi OS 64-bit, Ubuntu arm64)." ;;
  *) die "unsupported architecture '$ARCH' (arm64 and x86_64 only)" ;;
esac
[ -f "$SRC/package.json" ] && [ -f "$SRC/dist/src/cli/main.js" ] || die "run from a built edgefit checkout (npm ci && npm run build)"

# ---- files ----
say "installing into $PREFIX (node $(node -v), $ARCH)"
rm -rf "$PREFIX.new"
mkdir -p "$PREFIX.new/dist" "$PREFIX.new/node_modules"
# assets/ is run-time package data (calibration images for the bundled det model, the probe's photos);
# dist/src only: the compiled tests, devkit and scripts are not run on the box
for d in assets profiles package.json package-lock.json .npmrc systemd; do
  [ -e "$SRC/$d" ] && cp -a "$SRC/$d" "$PREFIX.new/"
done
cp -a "$SRC/dist/src" "$PREFIX.new/dist/"
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
for dep in $(node -p 'Object.keys(require(process.argv[1]).dependencies).join(" ")' "$PREFIX.new/package.json"); do
  [ -f "$PREFIX.new/node_modules/$dep/package.json" ] || die "production dependency $dep is missing from $SRC/node_modules (npm ci there)"
done
# onnxruntime-node ships every OS's and CPU's binaries (~290 MB): keep this box's only
PLATFORM=$(node -p 'process.platform')
for d in "$PREFIX.new/node_modules/onnxruntime-node/bin"/napi-v*/*/*; do
  [ -d "$d" ] || continue
  case "$d" in */"$PLATFORM/$ARCH") ;; *) rm -rf "$d" ;; esac
done
for d in "$PREFIX.new/node_modules/onnxruntime-node/bin"/napi-v*/*; do rmdir "$d" 2>/dev/null || true; done
INSTALLED_KB=$(du -sk "$PREFIX.new" | awk '{print $1}')
say "installed tree $((INSTALLED_KB / 1024)) MB (production dependencies, $PLATFORM-$ARCH binaries); the checkout's dist, node_modules and assets are $((FULL_KB / 1024)) MB"
# swap the whole tree so an upgrade never runs half old, half new files
if [ -d "$PREFIX" ]; then rm -rf "$PREFIX.old"; mv "$PREFIX" "$PREFIX.old"; fi
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
sed -e "s#@PREFIX@#/opt/edgefit#g" -e "s#@USER@#$SVC_USER#g" -e "s#@NODE@#$NODE#g" "$SRC/systemd/edgefit.service" > "$UNIT"

if [ -n "$ROOT" ]; then
  say "--root mode: skipped user creation and systemctl"
  exit 0
fi

if ! id "$SVC_USER" >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/edgefit --no-create-home --shell /usr/sbin/nologin "$SVC_USER"
fi
chown -R "$SVC_USER:$SVC_USER" "$STATE"
chmod 0750 "$ETC"; chgrp "$SVC_USER" "$ETC"; chgrp "$SVC_USER" "$ETC/config"; chmod 0640 "$ETC/config"
systemctl daemon-reload
systemctl enable edgefit.service
systemctl restart edgefit.service
say "edgefit is running: systemctl status edgefit; journalctl -u edgefit -f"
