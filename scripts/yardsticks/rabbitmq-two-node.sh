#!/usr/bin/env bash
# Why the fleet tests use a three-node RabbitMQ cluster (docs/FLEET.md):
# on a two-node cluster, can a kiosk whose persistent MQTT session lived on
# the node that died carry on on the other node?
#
#   scripts/yardsticks/rabbitmq-two-node.sh          # as root; ~1 min
#
# For each durable queue type (classic, quorum) it starts two clustered
# nodes, gives a client "kiosk" a persistent session (clean session off,
# a QoS 1 subscription) on node b, kills node b with SIGKILL, and then on
# node a: (1) the same client reconnects with its persistent session and
# subscribes, (2) a fresh client publishes at QoS 1. It prints what each
# got. Needs rabbitmq-server and mosquitto-clients.
set -uo pipefail

base=$(mktemp -d /tmp/yizhan-rmq2-XXXXXX)
chmod 755 "$base"
home="$base/home"
mkdir -p "$home"
echo "TWONODE$$" >"$home/.erlang.cookie"
ctl() { runuser -u rabbitmq -- env HOME="$home" /usr/lib/rabbitmq/bin/rabbitmqctl "$@"; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 -- "-$p" 2>/dev/null; done; rm -rf "$base"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

node() { # name type -> starts it, prints its MQTT port
    local n=$1 type=$2 d="$base/$1" amqp mqtt dist
    amqp=$(free_port); mqtt=$(free_port); dist=$((30000 + RANDOM % 15000))
    mkdir -p "$d/mnesia" "$d/log"
    printf 'listeners.tcp.default = %s\nmqtt.listeners.tcp.default = %s\nloopback_users = none\nmqtt.durable_queue_type = %s\n' \
        "$amqp" "$mqtt" "$type" >"$d/rabbitmq.conf"
    echo '[rabbitmq_mqtt].' >"$d/enabled_plugins"
    chown -R rabbitmq:rabbitmq "$base"; chmod 400 "$home/.erlang.cookie"
    setsid runuser -u rabbitmq -- env HOME="$home" RABBITMQ_NODENAME="$n@localhost" \
        RABBITMQ_NODE_PORT="$amqp" RABBITMQ_DIST_PORT="$dist" RABBITMQ_MNESIA_BASE="$d/mnesia" \
        RABBITMQ_LOG_BASE="$d/log" RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config" \
        /usr/lib/rabbitmq/bin/rabbitmq-server >"$d/out.log" 2>&1 &
    pids+=($!)
    echo "$mqtt $!"
}

wait_port() { for _ in $(seq 600); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.2; done; return 1; }

for type in classic quorum; do
    read -r pa _ < <(node "a$type$$" "$type")
    read -r pb gb < <(node "b$type$$" "$type")
    wait_port "$pa" && wait_port "$pb" || { echo "nodes did not start"; exit 1; }
    ctl -n "b$type$$@localhost" stop_app >/dev/null
    ctl -n "b$type$$@localhost" join_cluster "a$type$$@localhost" >/dev/null
    ctl -n "b$type$$@localhost" start_app >/dev/null
    wait_port "$pb"
    timeout 3 mosquitto_sub -p "$pb" -i kiosk -c -q 1 -t 'yizhan/v1/stations/S1/commands' >/dev/null
    kill -9 -- "-$gb"; sleep 2
    out=$(timeout 12 mosquitto_sub -d -p "$pa" -i kiosk -c -q 1 -t 'yizhan/v1/stations/S1/commands' -W 8 2>&1)
    subacks=$(grep -c "received SUBACK" <<<"$out"); connects=$(grep -c "sending CONNECT" <<<"$out")
    if timeout 12 mosquitto_pub -p "$pa" -i fresh -q 1 -t 'yizhan/v1/stations/S1/events' -m '{}'; then pub=acknowledged; else pub=failed; fi
    echo "two nodes, $type queues, node b killed: the kiosk's persistent session on node a: $connects CONNECT(s), $subacks SUBACK(s) in 8 s; a fresh QoS 1 publish on node a: $pub"
    for p in "${pids[@]}"; do kill -9 -- "-$p" 2>/dev/null; done; pids=()
done
