#!/usr/bin/env bash
# The `s3` scenario: respaldo, restic and rustic back up every state of the `django` dataset
# into one local Garage server (one prefix each), interleaved, then restore the last state.
# Prints a markdown table of wall seconds and peak RSS (MiB) per step and tool.
#
#   benches/s3-scenario.sh
#
# Environment:
#   BENCH_DATA    datasets folder (default ~/.cache/respaldo-bench); needs django/steps/*,
#                 made by the peer benchmark harness's datasets.sh
#   RESPALDO_BIN  respaldo binary (default target/release/respaldo)
#   GARAGE        garage binary (default where .ci/run installs it)
#   TOOLS         tools to run (default "respaldo restic rustic")
#   STEPS         how many django states to back up (default all)
set -euo pipefail

data="${BENCH_DATA:-$HOME/.cache/respaldo-bench}/django/steps"
respaldo_bin="$(realpath "${RESPALDO_BIN:-target/release/respaldo}")"
garage="${GARAGE:-${CARGO_HOME:-$HOME/.cargo}/garage-2.5.0/bin/garage}"
read -r -a tools <<<"${TOOLS:-respaldo restic rustic}"
[ -d "$data" ] || { echo "no dataset at $data (run the harness's datasets.sh django)" >&2; exit 2; }
mapfile -t steps < <(find "$data" -mindepth 1 -maxdepth 1 -type d | sort | head -n "${STEPS:-1000}")

work=$(mktemp -d "${TMPDIR:-/tmp}/respaldo-s3-bench-XXXXXX")
cleanup() {
    [ -f "$work/garage.pid" ] && kill "$(cat "$work/garage.pid")" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# --- a one-node Garage on loopback ---------------------------------------------------------
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rpc=$(port); s3=$(port)
cat >"$work/garage.toml" <<EOF
metadata_dir = "$work/garage/meta"
data_dir = "$work/garage/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"
EOF
g() { "$garage" -c "$work/garage.toml" "$@"; }
g server >"$work/garage.log" 2>&1 &
echo $! >"$work/garage.pid"
for _ in $(seq 100); do g status >/dev/null 2>&1 && break; sleep 0.2; done
g layout assign -z dc1 -c 20G "$(g node id -q | cut -d@ -f1)" >/dev/null
g layout apply --version 1 >/dev/null
g bucket create bench >/dev/null
g key create bench >"$work/key.txt"
g bucket allow --read --write --owner bench --key bench >/dev/null
export AWS_ACCESS_KEY_ID=$(sed -n 's/^Key ID: *//p' "$work/key.txt")
export AWS_SECRET_ACCESS_KEY=$(sed -n 's/^Secret key: *//p' "$work/key.txt")
export AWS_REGION=garage
endpoint="http://127.0.0.1:$s3"
password=bench-password
sleep 1

# --- tools ---------------------------------------------------------------------------------
mkdir -p "$work/config/rustic"
cat >"$work/config/rustic/s3.toml" <<EOF
[repository]
repository = "opendal:s3"
password = "$password"
cache-dir = "$work/cache/rustic"

[repository.options]
endpoint = "$endpoint"
bucket = "bench"
root = "/rustic"
region = "garage"
access_key_id = "$AWS_ACCESS_KEY_ID"
secret_access_key = "$AWS_SECRET_ACCESS_KEY"
EOF
run_tool() {
    local tool=$1 action=$2
    shift 2
    case $tool in
    respaldo)
        local repo="s3:$endpoint/bench/respaldo"
        export RESPALDO_PASSWORD=$password RESPALDO_CACHE_DIR=$work/cache/respaldo \
            RESPALDO_LOG_DB=$work/respaldo-log.db
        case $action in
        init) "$respaldo_bin" init --repo "$repo" ;;
        backup) "$respaldo_bin" backup --repo "$repo" --quiet "$1" ;;
        restore) "$respaldo_bin" restore --repo "$repo" --quiet latest --target "$1" ;;
        esac
        ;;
    restic)
        local repo="s3:$endpoint/bench/restic"
        export RESTIC_PASSWORD=$password RESTIC_CACHE_DIR=$work/cache/restic
        case $action in
        init) restic -r "$repo" init --quiet ;;
        backup) restic -r "$repo" backup --quiet "$1" ;;
        restore) restic -r "$repo" restore latest --target "$1" --quiet ;;
        esac
        ;;
    rustic)
        export XDG_CONFIG_HOME=$work/config
        case $action in
        init) rustic -P s3 init ;;
        backup) rustic -P s3 backup "$1" ;;
        restore) rustic -P s3 restore latest "$1" ;;
        esac
        ;;
    esac
}

# Makes folder $2 equal to $1, rewriting only files whose content differs (so that every tool's
# change detection sees only what changed between two releases).
mirror() {
    python3 - "$1" "$2" <<'EOF'
import filecmp, os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
for root, dirs, files in os.walk(dst, topdown=False):
    rel = os.path.relpath(root, dst)
    for name in files:
        if not os.path.isfile(os.path.join(src, rel, name)):
            os.remove(os.path.join(root, name))
    for name in dirs:
        if not os.path.isdir(os.path.join(src, rel, name)):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
for root, dirs, files in os.walk(src):
    rel = os.path.relpath(root, src)
    os.makedirs(os.path.join(dst, rel), exist_ok=True)
    for name in files:
        a, b = os.path.join(root, name), os.path.join(dst, rel, name)
        if not (os.path.isfile(b) and filecmp.cmp(a, b, shallow=False)):
            shutil.copy2(a, b)
EOF
}

timed() { # label tool action args...
    local label=$1 tool=$2
    shift 2
    sync
    /usr/bin/time -f '%e %M' -o "$work/time" bash -c "$(declare -f run_tool); $(declare -p work endpoint password respaldo_bin); run_tool $tool $*" \
        >>"$work/$tool.log" 2>&1 || { echo "!!! $tool $label failed:"; tail -5 "$work/$tool.log"; exit 1; }
    read -r wall rss <"$work/time"
    printf '%s\t%s\t%s\t%s\n' "$label" "$tool" "$wall" "$((rss / 1024))" >>"$work/results.tsv"
}

for tool in "${tools[@]}"; do run_tool "$tool" init >>"$work/$tool.log" 2>&1; done
src="$work/src/django"
mkdir -p "$src"
n=${#tools[@]}
for i in "${!steps[@]}"; do
    mirror "${steps[$i]}" "$src"
    find "$src" -type f -exec cat {} + >/dev/null
    for k in $(seq 0 $((n - 1))); do
        tool=${tools[$(((i + k) % n))]}
        timed "backup $(basename "${steps[$i]}")" "$tool" backup "$src"
    done
done
for tool in "${tools[@]}"; do
    mkdir -p "$work/restore/$tool"
    timed restore "$tool" restore "$work/restore/$tool"
    found=$(find "$work/restore/$tool" -type d -path "*/src/django" | head -1)
    diff -r "$src" "$found" >/dev/null || { echo "!!! $tool restore differs"; exit 1; }
done

python3 - "$work/results.tsv" "${tools[@]}" <<'EOF'
import sys, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    label, tool, wall, rss = line.rstrip("\n").split("\t")
    rows.setdefault(label, {})[tool] = (float(wall), int(rss))
tools = sys.argv[2:]
print("| step | " + " | ".join(f"{t} s | {t} MiB" for t in tools) + " | respaldo / best peer |")
print("|---|" + "---:|" * (2 * len(tools) + 1))
totals = collections.Counter()
for label, by in rows.items():
    cells = []
    for t in tools:
        wall, rss = by.get(t, (float("nan"), 0))
        totals[t] += wall
        cells += [f"{wall:.2f}", str(rss)]
    peers = [by[t][0] for t in tools if t != "respaldo" and t in by]
    ratio = f"{by['respaldo'][0] / min(peers):.2f}" if "respaldo" in by and peers else ""
    print(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")
peers = [totals[t] for t in tools if t != "respaldo"]
ratio = f"{totals['respaldo'] / min(peers):.2f}" if peers and "respaldo" in tools else ""
print("| total | " + " | ".join(f"{totals[t]:.2f} | " for t in tools) + f" | {ratio} |")
EOF
