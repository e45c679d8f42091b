#!/usr/bin/env bash
# The main job, the tutorial's demo: two copies of the Go web demo, both listening on :8081 in
# their own network stacks, published on host ports 8080 and 8081.
set -euo pipefail
cd "$(dirname "$0")/.."
minibox=${MINIBOX:-target/release/minibox}
# The demo image (WEB_TAR: a tarball already built, as the tutorial names it).
tarball=${WEB_TAR:-$(target/release/fixture web)}
get() { busybox wget -qO- "http://$1"; }

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "import the demo image"
"$minibox" import "$tarball" web --change 'CMD ["/bin/web","web"]' --change 'EXPOSE 8081'
"$minibox" images

cleanup() { "$minibox" rm -f demo-a demo-b >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup

step "start two containers, each on :8081 inside; every plumbing step shown as a command"
"$minibox" --explain run -d --name demo-a -p 8080:8081 web /bin/web demo-a
"$minibox" run -d --name demo-b -p 8081:8081 web /bin/web demo-b
"$minibox" ps

step "each answers with its own name"
for port in 8080 8081; do
  for _ in $(seq 50); do get "127.0.0.1:$port" >/dev/null 2>&1 && break; sleep 0.1; done
  printf '127.0.0.1:%s -> %s' "$port" "$(get "127.0.0.1:$port")"
  echo
done

step "they reach each other by address"
b=$("$minibox" inspect demo-b | sed -n 's/.*"IPAddress": *"\([0-9.]*\)".*/\1/p' | head -1)
"$minibox" exec demo-a wget -qO- "http://$b:8081"

step "the picture"
"$minibox" network topology

step "what stays on the host, and the way back"
echo "the image, the bridge minibox0, minibox's firewall rules and ip_forward stay;"
echo "\`$minibox system reset\` removes them (it says what, and asks), \`--all\` the images too"
