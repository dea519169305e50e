#!/usr/bin/env bash
# Stop the Spark Thrift Server that .ci/start-spark.sh started in DIR (the first argument) and remove DIR.
set -euo pipefail
dir=${1:?usage: stop-spark.sh DIR (the folder given to, or made by, start-spark.sh)}
if [ -f "$dir/server.pid" ]; then
  pid=$(cat "$dir/server.pid")
  kill -- -"$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -9 -- -"$pid" 2>/dev/null || true
fi
case "$dir" in
  /tmp/cartsight-spark.*) rm -rf "$dir" ;;
  *) rm -f "$dir/server.pid" ;;
esac
