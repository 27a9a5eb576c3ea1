#!/usr/bin/env bash
# A three-node Garage cluster on one machine, for trying respaldo on replicated object storage
# (see docs/object-storage.md). Each node has its own folder and ports on loopback; the layout
# puts them in three zones, so every object is stored three times.
#
#   docs/garage-cluster.sh start [DIR]   start the nodes, create bucket and key, print the
#                                        variables respaldo needs
#   docs/garage-cluster.sh stop [DIR]    stop the nodes (data stays in DIR)
#
# Needs the `garage` binary on PATH (or GARAGE=/path/to/garage):
#   cargo install --locked garage --version 2.5.0
set -euo pipefail

action="${1:-}"
dir="${2:-${TMPDIR:-/tmp}/respaldo-garage-cluster}"
garage="${GARAGE:-garage}"
nodes=(1 2 3)

case "$action" in
start)
    mkdir -p "$dir"
    secret_file="$dir/rpc_secret"
    [ -s "$secret_file" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$secret_file"
    for n in "${nodes[@]}"; do
        mkdir -p "$dir/node$n"
        cat >"$dir/node$n/garage.toml" <<EOF
metadata_dir = "$dir/node$n/meta"
data_dir = "$dir/node$n/data"
db_engine = "sqlite"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:390${n}1"
rpc_public_addr = "127.0.0.1:390${n}1"
rpc_secret = "$(cat "$secret_file")"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:390${n}0"
root_domain = ".s3.garage.localhost"
EOF
        "$garage" -c "$dir/node$n/garage.toml" server >"$dir/node$n/server.log" 2>&1 &
        echo $! >"$dir/node$n/pid"
    done
    g() { "$garage" -c "$dir/node1/garage.toml" "$@"; }
    for _ in $(seq 100); do g status >/dev/null 2>&1 && break; sleep 0.2; done
    # Connect nodes 2 and 3 to node 1.
    for n in 2 3; do
        id=$("$garage" -c "$dir/node$n/garage.toml" node id -q)
        g node connect "$id" >/dev/null
    done
    if ! g bucket list 2>/dev/null | grep -q respaldo; then
        version=$(( $(g layout show | sed -n 's/^Current cluster layout version: //p') + 1 ))
        for n in "${nodes[@]}"; do
            id=$("$garage" -c "$dir/node$n/garage.toml" node id -q | cut -d@ -f1)
            g layout assign -z "zone$n" -c 1G "$id" >/dev/null
        done
        g layout apply --version "$version" >/dev/null
        g bucket create respaldo >/dev/null
        g key create respaldo-key >"$dir/key.txt"
        g bucket allow --read --write --owner respaldo --key respaldo-key >/dev/null
    fi
    key_id=$(sed -n 's/^Key ID: *//p' "$dir/key.txt")
    key_secret=$(sed -n 's/^Secret key: *//p' "$dir/key.txt")
    g status
    cat <<EOF

Three nodes are up (S3 API on 127.0.0.1:39010, :39020 and :39030). To use them:
  export AWS_ACCESS_KEY_ID=$key_id
  export AWS_SECRET_ACCESS_KEY=$key_secret
  export AWS_REGION=garage
  respaldo init --repo s3:http://127.0.0.1:39010/respaldo/my-host
EOF
    ;;
stop)
    for n in "${nodes[@]}"; do
        [ -f "$dir/node$n/pid" ] && kill "$(cat "$dir/node$n/pid")" 2>/dev/null || true
        rm -f "$dir/node$n/pid"
    done
    echo "stopped; the data stays in $dir"
    ;;
*)
    sed -n '2,12p' "$0"
    exit 2
    ;;
esac
