#!/usr/bin/env bash
# clickhouse.sh start|stop|url|start-cluster|stop-cluster|url-cluster:
# throwaway ClickHouse servers for tally's tests and benchmarks, on loopback
# with non-default ports, each with its config and data under a directory
# of its own.
#
#   start          one server (CLICKHOUSE_DIR, default /var/tmp/tally-clickhouse;
#                  HTTP 18123, TCP 19000), for the one-server tier
#   start-cluster  two servers, the shards of the cluster tally_two_shards
#                  (CLICKHOUSE_CLUSTER_DIR/shard1 and shard2, default under
#                  /var/tmp/tally-clickhouse-cluster; HTTP 18131 and 18132,
#                  TCP 19131 and 19132); prints the cluster's EVENTS_URL
#                  without a database
#
# Uses Debian's clickhouse-server package (18.16 on bookworm):
#   apt-get install -y clickhouse-server clickhouse-client
# Tests find them through TALLY_TEST_CLICKHOUSE=$(scripts/clickhouse.sh url)
# and TALLY_TEST_CLICKHOUSE_CLUSTER=$(scripts/clickhouse.sh url-cluster).
set -euo pipefail
dir="${CLICKHOUSE_DIR:-/var/tmp/tally-clickhouse}"
http_port="${CLICKHOUSE_HTTP_PORT:-18123}"
tcp_port="${CLICKHOUSE_TCP_PORT:-19000}"
url="http://127.0.0.1:${http_port}"
cluster_dir="${CLICKHOUSE_CLUSTER_DIR:-/var/tmp/tally-clickhouse-cluster}"
shard_http=(18131 18132)
shard_tcp=(19131 19132)
cluster_url="clickhouse://127.0.0.1:${shard_http[0]}/?cluster=tally_two_shards&shards=127.0.0.1:${shard_http[0]},127.0.0.1:${shard_http[1]}"

answers() { curl -fsS "http://127.0.0.1:$1/ping" >/dev/null 2>&1; }

# start_server DIR HTTP_PORT TCP_PORT starts a server unless one answers on
# HTTP_PORT.
start_server() {
	local dir="$1" http_port="$2" tcp_port="$3"
	if answers "$http_port"; then
		return 0
	fi
	mkdir -p "$dir/data" "$dir/tmp" "$dir/log" "$dir/format_schemas"
	cat >"$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$dir/log/server.log</log>
        <errorlog>$dir/log/error.log</errorlog>
        <size>10M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$http_port</http_port>
    <tcp_port>$tcp_port</tcp_port>
    <max_connections>512</max_connections>
    <keep_alive_timeout>30</keep_alive_timeout>
    <max_concurrent_queries>200</max_concurrent_queries>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
    <!-- ZSTD for every part: 18.16 has no per-column codecs, but this. -->
    <compression>
        <case>
            <min_part_size>0</min_part_size>
            <min_part_size_ratio>0</min_part_size_ratio>
            <method>zstd</method>
        </case>
    </compression>
    <merge_tree>
        <parts_to_delay_insert>300</parts_to_delay_insert>
        <parts_to_throw_insert>600</parts_to_throw_insert>
    </merge_tree>
    <!-- The two shards of start-cluster (their TCP ports), known to every
         server; no ZooKeeper, so no ON CLUSTER DDL: tally creates the
         tables on each shard. -->
    <remote_servers>
        <tally_two_shards>
            <shard><replica><host>127.0.0.1</host><port>${shard_tcp[0]}</port></replica></shard>
            <shard><replica><host>127.0.0.1</host><port>${shard_tcp[1]}</port></replica></shard>
        </tally_two_shards>
    </remote_servers>
</yandex>
XML
	cat >"$dir/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>2000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
	owner=()
	if [ "$(id -u)" = 0 ] && id clickhouse >/dev/null 2>&1; then
		chown -R clickhouse: "$dir"
		owner=(runuser -u clickhouse --)
	fi
	"${owner[@]}" clickhouse-server --config-file="$dir/config.xml" --pid-file="$dir/server.pid" --daemon
	for _ in $(seq 60); do
		if answers "$http_port"; then
			return 0
		fi
		sleep 0.5
	done
	echo "clickhouse did not answer at http://127.0.0.1:$http_port; see $dir/log/error.log" >&2
	tail -20 "$dir/log/error.log" >&2 || true
	return 1
}

# stop_server DIR stops the server of DIR and waits (up to 30 s) until it
# has exited, so that a start right after starts a new one.
stop_server() {
	if [ -f "$1/server.pid" ]; then
		local pid
		pid="$(cat "$1/server.pid")"
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 60); do
			kill -0 "$pid" 2>/dev/null || return 0
			sleep 0.5
		done
	fi
}

case "${1:-}" in
start)
	start_server "$dir" "$http_port" "$tcp_port"
	echo "$url"
	;;
stop)
	stop_server "$dir"
	;;
url)
	echo "$url"
	;;
start-cluster)
	start_server "$cluster_dir/shard1" "${shard_http[0]}" "${shard_tcp[0]}"
	start_server "$cluster_dir/shard2" "${shard_http[1]}" "${shard_tcp[1]}"
	echo "$cluster_url"
	;;
stop-cluster)
	stop_server "$cluster_dir/shard1"
	stop_server "$cluster_dir/shard2"
	;;
url-cluster)
	echo "$cluster_url"
	;;
*)
	echo "usage: $0 start|stop|url|start-cluster|stop-cluster|url-cluster" >&2
	exit 2
	;;
esac
