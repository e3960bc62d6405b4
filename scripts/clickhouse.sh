#!/usr/bin/env bash
# clickhouse.sh start|stop|url: a throwaway ClickHouse server for tally's
# tests and benchmarks, on loopback with non-default ports, its config and
# data under one directory (CLICKHOUSE_DIR, default /var/tmp/tally-clickhouse).
# Uses Debian's clickhouse-server package (18.16 on bookworm):
#   apt-get install -y clickhouse-server clickhouse-client
# Tests find it through TALLY_TEST_CLICKHOUSE=$(scripts/clickhouse.sh url).
set -euo pipefail
dir="${CLICKHOUSE_DIR:-/var/tmp/tally-clickhouse}"
http_port="${CLICKHOUSE_HTTP_PORT:-18123}"
tcp_port="${CLICKHOUSE_TCP_PORT:-19000}"
url="http://127.0.0.1:${http_port}"

answers() { curl -fsS "$url/ping" >/dev/null 2>&1; }

case "${1:-}" in
start)
	if answers; then
		echo "$url"
		exit 0
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
    <remote_servers>
        <tally_two_shards>
            <shard><replica><host>127.0.0.1</host><port>$tcp_port</port></replica></shard>
            <shard><replica><host>127.0.0.2</host><port>$tcp_port</port></replica></shard>
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
		if answers; then
			echo "$url"
			exit 0
		fi
		sleep 0.5
	done
	echo "clickhouse did not answer at $url; see $dir/log/error.log" >&2
	tail -20 "$dir/log/error.log" >&2 || true
	exit 1
	;;
stop)
	if [ -f "$dir/server.pid" ]; then
		kill "$(cat "$dir/server.pid")" 2>/dev/null || true
	fi
	;;
url)
	echo "$url"
	;;
*)
	echo "usage: $0 start|stop|url" >&2
	exit 2
	;;
esac
