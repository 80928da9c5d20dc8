#!/usr/bin/env bash
# The KeyStone demo (`make demo`): builds the agent, keystonectl and the
# example programs, sets up ./demo (an agent.toml, a signing key, the
# example recipes and a deployment), signs the recipes, starts the agent,
# deploys, shows `keystonectl component list` and a few lines of /metrics,
# then runs until Ctrl-C and stops the agent cleanly. It needs bash and Go,
# nothing else.
#
# The demo folder is kept between runs: a file that exists is never
# replaced, so edits to demo/deployment.toml and demo/recipes/ are what the
# next run deploys (the recipes are signed again with the demo key on every
# run). DEMO_FRESH=1, or `make clean`, starts over.
#
# Environment:
#   DEMO_DIR      where the demo lives (default ./demo)
#   DEMO_FRESH    1: delete the demo folder first
#   DEMO_SECONDS  stop by itself after this many seconds (default 0: wait for Ctrl-C)
#   BIN           where binaries are built (default ./bin)
#   GO            the go command (default go)
set -euo pipefail
set -m # background jobs get their own process group: Ctrl-C reaches only this script

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
GO=${GO:-go}
DEMO_SECONDS=${DEMO_SECONDS:-0}
demo=${DEMO_DIR:-$root/demo}
bin=${BIN:-$root/bin}

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
say() { printf '%s==> %s%s\n' "$bold" "$*" "$plain"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# --- build ------------------------------------------------------------------
say "building keystone-agent, keystone-shim, keystonectl and the example programs into $bin"
echo "    (the first build downloads and compiles the dependencies: a minute or two)"
started=$SECONDS
mkdir -p "$bin/examples"
bin=$(cd "$bin" && pwd)
CGO_ENABLED=0 "$GO" build -o "$bin/" ./cmd/keystone-agent ./cmd/keystonectl ./cmd/keystone-shim
CGO_ENABLED=0 "$GO" build -o "$bin/examples/" ./recipes/examples/hello-http
install -m 0755 recipes/examples/sysload/collect.sh "$bin/examples/sysload-collect.sh"
echo "    built in $((SECONDS - started)) s"
ctl="$bin/keystonectl"

# --- the demo folder ----------------------------------------------------------
if [ -f "$demo/agent.pid" ] && kill -0 "$(cat "$demo/agent.pid")" 2>/dev/null; then
	die "a demo agent still runs (pid $(cat "$demo/agent.pid")); stop it (Ctrl-C in its terminal) first"
fi
if [ "${DEMO_FRESH:-0}" = 1 ]; then
	say "DEMO_FRESH=1: deleting $demo"
	rm -rf "$demo"
fi
mkdir -p "$demo/recipes" "$demo/trust"
demo=$(cd "$demo" && pwd)
sock="$demo/agent.sock"
[ ${#sock} -lt 100 ] || die "the socket path $sock is too long for a Unix socket; set DEMO_DIR to a shorter folder"
kept=()

# A port is free when nothing accepts a connection on it.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
	local p=$1
	while ! port_free "$p"; do p=$((p + 1)); done
	echo "$p"
}

if [ -f "$demo/trust/demo.key" ]; then
	kept+=(trust/demo.key)
else
	"$ctl" keys generate --out "$demo/trust/demo" >/dev/null
fi
for f in common.toml hello-http.recipe.toml worker.recipe.toml; do
	if [ -f "$demo/recipes/$f" ]; then
		kept+=("recipes/$f")
	else
		cp "recipes/examples/$f" "$demo/recipes/"
	fi
done
say "signing $demo/recipes/*.toml with the demo key"
"$ctl" recipe sign --key "$demo/trust/demo.key" "$demo"/recipes/*.toml >/dev/null

# The example recipes name no run_as, so they run as the agent. An agent
# running as root (as in a container) would refuse them, since no
# component may run as root unless agent.toml allows it; the demo allows
# it then, and only then. Run as another user, the agent and its
# components are that user and nothing needs allowing.
security=""
if [ "$(id -u)" -eq 0 ]; then
	security=$'\n# The demo runs as root and its recipes name no run_as.\n[security]\nallow_root = true\n'
fi

if [ -f "$demo/agent.toml" ]; then
	kept+=(agent.toml)
else
	cat >"$demo/agent.toml" <<EOF
# Written by scripts/demo.sh: a local-only agent trusting the demo key.
device_id = "demo-device"
data_dir  = "$demo/data"
root_dir  = "$demo/root"
log_level = "info"

[api]
socket      = "$sock"
http_listen = "127.0.0.1:$(free_port 9455)"

[trust]
keys = ["$demo/trust/demo.pub"]
$security

# The example programs were built into $bin/examples.
[components."com.example.hello-http".config]
bin_dir = "$bin/examples"
EOF
fi
metrics_port=$(sed -n 's/^http_listen *= *"127\.0\.0\.1:\([0-9]*\)".*/\1/p' "$demo/agent.toml")

if [ -f "$demo/deployment.toml" ]; then
	kept+=(deployment.toml)
else
	app_port=$(free_port 8080)
	cat >"$demo/deployment.toml" <<EOF
# The demo deployment: an HTTP service with a health check and a worker
# with a hard dependency on it. Edit it, then apply it to the running demo
# (keystonectl deploy apply -f demo/deployment.toml --wait) or run make demo
# again: the demo folder is kept.
format = 1

[deployment]
failure_policy = "rollback"
health_timeout = "60s"

[[components]]
name    = "com.example.hello-http"
version = "1.0.0"
recipe  = "recipes/hello-http.recipe.toml"
[components.config]
port     = $app_port
greeting = "hello from the KeyStone demo"

[[components]]
name    = "com.example.worker"
version = "1.0.0"
recipe  = "recipes/worker.recipe.toml"
[components.config]
service_port     = $app_port
interval_seconds = 2
EOF
fi
app_port=$(sed -n 's/^port *= *\([0-9]*\).*/\1/p' "$demo/deployment.toml" | head -n 1)
if [ ${#kept[@]} -gt 0 ]; then
	say "kept from an earlier run in $demo: ${kept[*]} (DEMO_FRESH=1 make demo starts over)"
fi

# --- run ----------------------------------------------------------------------
say "starting the agent (logs in $demo/agent.log)"
"$bin/keystone-agent" run --config "$demo/agent.toml" 2>"$demo/agent.log" &
agent=$!
echo "$agent" >"$demo/agent.pid"

stop_agent() {
	if kill -0 "$agent" 2>/dev/null; then
		kill -INT "$agent"
	fi
	local rc=0
	wait "$agent" || rc=$?
	rm -f "$demo/agent.pid"
	return "$rc"
}
trap 'stop_agent >/dev/null 2>&1 || true' EXIT

for _ in $(seq 300); do
	[ -S "$sock" ] && "$ctl" --socket "$sock" component list >/dev/null 2>&1 && break
	kill -0 "$agent" 2>/dev/null || { cat "$demo/agent.log" >&2; die "the agent exited while starting"; }
	sleep 0.1
done
[ -S "$sock" ] || die "the agent did not open $sock within 30s; see $demo/agent.log"

say "keystonectl deploy apply -f $demo/deployment.toml --wait"
"$ctl" --socket "$sock" deploy apply -f "$demo/deployment.toml" --wait --timeout 2m

say "keystonectl component list"
"$ctl" --socket "$sock" component list

say "a few lines of http://127.0.0.1:$metrics_port/metrics"
exec 3<>"/dev/tcp/127.0.0.1/$metrics_port"
printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
grep -E '^keystone_(agent_info|component_state\{.*\} 1|component_restarts_total|component_memory_rss_bytes|deployments_total\{status="SUCCEEDED"\})' <&3 || true
exec 3<&-

interrupted=0
trap 'interrupted=1' INT TERM # from here on, Ctrl-C stops the demo cleanly
say "demo running: the hello service answers on http://127.0.0.1:$app_port/"
cat <<EOF
    Try, in another terminal:
      export KEYSTONE_SOCKET=$sock
      $ctl component list
      $ctl component logs com.example.worker -f
      $ctl deploy list
EOF
if [ "$DEMO_SECONDS" -gt 0 ]; then
	say "stopping by itself in $DEMO_SECONDS s (or press Ctrl-C)"
else
	say "press Ctrl-C to stop"
fi

end=$((SECONDS + DEMO_SECONDS))
while [ "$interrupted" = 0 ] && kill -0 "$agent" 2>/dev/null; do
	if [ "$DEMO_SECONDS" -gt 0 ] && [ "$SECONDS" -ge "$end" ]; then break; fi
	sleep 1 &
	wait $! || true
done

kill -0 "$agent" 2>/dev/null || { cat "$demo/agent.log" >&2; die "the agent stopped by itself"; }
say "stopping the agent (SIGINT)"
trap - EXIT
if stop_agent; then
	say "the agent stopped cleanly (exit 0)"
else
	rc=$?
	tail -n 20 "$demo/agent.log" >&2
	die "the agent exited with status $rc"
fi
