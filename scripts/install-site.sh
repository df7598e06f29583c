#!/usr/bin/env bash
# Sets kvm-ferry up as a service behind nginx, as root, and is safe to run again:
#   - systemd units kvm-ferry.service and kvm-ferry-stats.service (paths point at this checkout)
#   - /etc/kvm-ferry/config.yaml from the documented example, only if it does not exist
#   - the nginx site (basic auth, TLS notes inside) enabled instead of Debian's default site
#   - /etc/nginx/kvm-ferry.htpasswd with the first admin user (bcrypt), if that user is missing
#   - /usr/local/bin/kvm-ferry, the command line (kvm-ferry node invite|join|remove)
#   - enables and starts the services and reloads nginx
#
#   scripts/install-site.sh [--server-name NAME] [--listen LISTEN] [--admin USER]
#     --server-name  name users type in the browser (default: this host's FQDN and short name)
#     --listen       nginx listen value: 80 (default), "443 ssl", "10.8.0.1:80" …
#     --admin        first basic-auth user (default: admin)
# The admin password is asked twice on a terminal; without one it is read from
# $KVM_FERRY_ADMIN_PASSWORD or else from the first line of stdin (for automation).
# DESTDIR=/some/dir installs into that tree and starts nothing (used by the tests).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DESTDIR=${DESTDIR:-}
SERVER_NAME=""
LISTEN=80
ADMIN=admin
while [ $# -gt 0 ]; do
  case "$1" in
    --server-name) SERVER_NAME=${2:?--server-name needs a value}; shift 2 ;;
    --listen) LISTEN=${2:?--listen needs a value}; shift 2 ;;
    --admin) ADMIN=${2:?--admin needs a value}; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "install-site: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { printf 'install-site: %s\n' "$*"; }
die() { printf 'install-site: %s\n' "$*" >&2; exit 1; }

[ -n "$DESTDIR" ] || [ "$(id -u)" -eq 0 ] || die "run as root (it installs systemd units and the nginx site)."
command -v htpasswd >/dev/null || die "htpasswd is missing; run scripts/install-pkgs.sh first (package apache2-utils)."

# Values end up in nginx and systemd files: refuse anything but plain names.
[[ "$ADMIN" =~ ^[A-Za-z0-9._-]{1,64}$ ]] || die "--admin must be 1–64 letters, digits, dot, dash or underscore."
[[ "$LISTEN" =~ ^([0-9.]+:|\[[0-9a-fA-F:]+\]:)?[0-9]{1,5}( ssl)?$ ]] || die "--listen must look like 80, \"443 ssl\" or 10.8.0.1:80."
if [ -z "$SERVER_NAME" ]; then
  SERVER_NAME=$(printf '%s %s' "$(hostname -f 2>/dev/null || hostname)" "$(hostname -s)" | tr ' ' '\n' | sort -u | tr '\n' ' ')
  SERVER_NAME=${SERVER_NAME% }
fi
[[ "$SERVER_NAME" =~ ^[A-Za-z0-9.\ -]{1,250}$ ]] || die "--server-name must be host names separated by spaces."

etc="$DESTDIR/etc"
HTPASSWD=/etc/nginx/kvm-ferry.htpasswd
BCRYPT_COST=8
htfile="$DESTDIR$HTPASSWD"

# The password first: a bad one must leave the system untouched.
pw=""
if ! { [ -f "$htfile" ] && grep -q "^$ADMIN:" "$htfile"; }; then
  if [ -n "${KVM_FERRY_ADMIN_PASSWORD:-}" ]; then
    pw=$KVM_FERRY_ADMIN_PASSWORD
  elif [ -t 0 ]; then
    read -r -s -p "Password for the kvm-ferry user $ADMIN: " pw; echo
    read -r -s -p "Again: " pw2; echo
    [ "$pw" = "$pw2" ] || die "the two passwords differ; nothing written."
  else
    IFS= read -r pw || true
  fi
  [ "${#pw}" -ge 8 ] || die "the admin password must be at least 8 characters; nothing written."
fi

# 1. systemd units, pointing at this checkout.
install -d -m 0755 "$etc/systemd/system"
for unit in kvm-ferry.service kvm-ferry-stats.service; do
  tmp=$(mktemp)
  sed "s|/opt/kvm-ferry|$ROOT|g" "$ROOT/config/systemd/$unit" > "$tmp"
  if ! cmp -s "$tmp" "$etc/systemd/system/$unit" 2>/dev/null; then
    install -m 0644 "$tmp" "$etc/systemd/system/$unit"
    say "installed $etc/systemd/system/$unit"
  fi
  rm -f "$tmp"
done

# 2. Config: never overwrite the admin's file.
install -d -m 0750 "$etc/kvm-ferry"
if [ -e "$etc/kvm-ferry/config.yaml" ]; then
  say "$etc/kvm-ferry/config.yaml exists; left as it is"
else
  install -m 0640 "$ROOT/config/kvm-ferry.example.yaml" "$etc/kvm-ferry/config.yaml"
  say "created $etc/kvm-ferry/config.yaml from the documented example; edit it for peers"
fi

# 3. nginx site, rendered from the template the tests run.
upstream=$(awk '/^listenHost:/ {h=$2} /^listenPort:/ {p=$2} END {printf "%s:%s", (h ? h : "127.0.0.1"), (p ? p : 8080)}' "$etc/kvm-ferry/config.yaml")
[[ "$upstream" =~ ^[0-9.]+:[0-9]{1,5}$ ]] || die "listenHost/listenPort in config.yaml must be an IPv4 address and a port for nginx (got $upstream)."
install -d -m 0755 "$etc/nginx/sites-available" "$etc/nginx/sites-enabled"
# The secret nginx proves itself to the manager with: the manager's own file (it makes one
# on first start too), copied into an nginx include only root can read.
datadir=$(awk '/^dataDir:/ {d=$2} END {print (d ? d : "/var/lib/kvm-ferry")}' "$etc/kvm-ferry/config.yaml")
[[ "$datadir" =~ ^/[A-Za-z0-9._/-]+$ ]] || die "dataDir in config.yaml must be an absolute path of plain characters (got $datadir)."
keyfile="$DESTDIR$datadir/proxy.key"
install -d -m 0750 "$DESTDIR$datadir"
if [ ! -s "$keyfile" ]; then
  (umask 077; head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' > "$keyfile"; echo >> "$keyfile")
  say "created $keyfile (the secret nginx adds to every request)"
fi
secret=$(tr -d '\n' < "$keyfile")
[[ "$secret" =~ ^[A-Za-z0-9_-]{32,128}$ ]] || die "$keyfile does not hold a proxy secret; remove it and run this again."
PROXY_CONF=/etc/nginx/kvm-ferry-proxy.conf
tmp=$(mktemp)
printf '# Made by kvm-ferry install-site.sh from %s/proxy.key; keep it readable by root only.\nproxy_set_header X-Kvm-Ferry-Proxy "%s";\n' "$datadir" "$secret" > "$tmp"
if ! cmp -s "$tmp" "$DESTDIR$PROXY_CONF" 2>/dev/null; then
  install -m 0600 "$tmp" "$DESTDIR$PROXY_CONF"
  say "installed $DESTDIR$PROXY_CONF"
fi
rm -f "$tmp"; unset secret
tmp=$(mktemp)
sed -e "s|@LISTEN@|$LISTEN|g" -e "s|@SERVER_NAME@|$SERVER_NAME|g" -e "s|@UPSTREAM@|$upstream|g" \
    -e "s|@CONSOLE_UPSTREAM@|$upstream|g" -e "s|@HTPASSWD@|$HTPASSWD|g" -e "s|@PROXY_SECRET_CONF@|$PROXY_CONF|g" "$ROOT/config/nginx/kvm-ferry.conf" > "$tmp"
if grep -v '^\s*#' "$tmp" | grep -q '@[A-Z_]*@'; then rm -f "$tmp"; die "the nginx template has a value this script does not fill in."; fi
if ! cmp -s "$tmp" "$etc/nginx/sites-available/kvm-ferry" 2>/dev/null; then
  install -m 0644 "$tmp" "$etc/nginx/sites-available/kvm-ferry"
  say "installed $etc/nginx/sites-available/kvm-ferry (server_name $SERVER_NAME, listen $LISTEN)"
fi
rm -f "$tmp"
ln -sfn ../sites-available/kvm-ferry "$etc/nginx/sites-enabled/kvm-ferry"
# Debian's default site also claims default_server on port 80; ours answers unknown hosts with 444.
if [ -L "$etc/nginx/sites-enabled/default" ]; then
  rm -f "$etc/nginx/sites-enabled/default"
  say "disabled nginx's default site (it is still in sites-available)"
fi

# 4. First admin user; the password never appears on a command line. nginx checks the
# bcrypt hash on every request (page, stylesheet, refresh, API call) in its worker:
# bench/deploy.ts measured cost 8 as invisible, cost 10 +100 ms and cost 12 +600 ms per request.
if [ -n "$pw" ]; then
  create=(); [ -f "$htfile" ] || create=(-c)
  printf '%s' "$pw" | htpasswd -B -C "$BCRYPT_COST" -i "${create[@]}" "$htfile" "$ADMIN" 2>/dev/null
  unset pw pw2
  say "added user $ADMIN to $HTPASSWD"
else
  say "user $ADMIN already in $HTPASSWD; change it with: htpasswd -B -C $BCRYPT_COST $HTPASSWD $ADMIN"
fi
# nginx workers (www-data) read it; nobody else.
if getent group www-data >/dev/null && [ -z "$DESTDIR" ]; then chgrp www-data "$htfile"; fi
chmod 0640 "$htfile"

# 5. The command line (README "Deploy on your servers": kvm-ferry node invite/join/remove).
nodebin=$(command -v node || echo /usr/bin/node)
tmp=$(mktemp)
printf '#!/bin/sh\n# Made by kvm-ferry install-site.sh: the kvm-ferry command line of %s.\nexec %s %s/dist/src/cli/main.js "$@"\n' "$ROOT" "$nodebin" "$ROOT" > "$tmp"
install -d "$DESTDIR/usr/local/bin"
if ! cmp -s "$tmp" "$DESTDIR/usr/local/bin/kvm-ferry" 2>/dev/null; then
  install -m 0755 "$tmp" "$DESTDIR/usr/local/bin/kvm-ferry"
  say "installed $DESTDIR/usr/local/bin/kvm-ferry"
fi
rm -f "$tmp"

if [ -n "$DESTDIR" ]; then
  say "installed into $DESTDIR; nothing started"
  exit 0
fi

# 6. Start it all.
[ -f "$ROOT/dist/src/main.js" ] || die "$ROOT/dist/src/main.js is missing; run scripts/install-pkgs.sh first (it builds)."
nginx -t -q || die "nginx -t failed; see the message above (nothing was reloaded)."
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now kvm-ferry.service
  if [ -f "$ROOT/dist/stats-daemon/main.js" ]; then systemctl enable --now kvm-ferry-stats.service
  else say "stats daemon not built yet (dist/stats-daemon/main.js); kvm-ferry-stats.service installed but not started"; fi
  systemctl reload-or-restart nginx
  say "done: open http://$(echo "$SERVER_NAME" | cut -d' ' -f1)/ and log in as $ADMIN"
else
  say "systemd is not running here: start by hand with"
  say "  KVM_FERRY_CONFIG=/etc/kvm-ferry/config.yaml node $ROOT/dist/src/main.js &  and  nginx -s reload || nginx"
fi
