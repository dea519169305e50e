#!/usr/bin/env bash
# Start a local Spark Thrift Server (pyspark's own, local[2]) with its warehouse and metastore in DIR
# (the first argument, else a new temporary folder), wait until it answers, and print its SQLAlchemy URL as the
# last line. Needs Java 17 (Debian: openjdk-17-jre-headless) and `pip install -e '.[spark]'`.
# Port: $SPARK_THRIFT_PORT (default 10001). The same server answers Spark Connect on $SPARK_CONNECT_PORT (default
# 15002: sc://127.0.0.1:15002, where cartsight runs its scoring and segment assignment on the executors, whose
# Python is this one) and shows its status (stages, tasks) on $SPARK_UI_PORT (default 4050, /api/v1 for the tests).
# Stop it with .ci/stop-spark.sh DIR.
set -euo pipefail
dir=${1:-$(mktemp -d /tmp/cartsight-spark.XXXXXX)}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
port=${SPARK_THRIFT_PORT:-10001}
connect_port=${SPARK_CONNECT_PORT:-15002}
ui_port=${SPARK_UI_PORT:-4050}
py=${PYTHON:-python}
# the executors' Python workers run cartsight's scoring: they need this interpreter's packages
PYSPARK_PYTHON=$("$py" -c 'import sys; print(sys.executable)')
export PYSPARK_PYTHON
if [ -z "${JAVA_HOME:-}" ] && [ -d /usr/lib/jvm/java-17-openjdk-amd64 ]; then
  export JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
fi
SPARK_HOME=$("$py" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
export SPARK_HOME
if [ -f "$dir/server.pid" ] && kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; then
  echo "hive://127.0.0.1:$port/default?auth=NOSASL"
  exit 0
fi
# warnings and errors only: at INFO the server logs every statement (100 MB in one test run)
mkdir -p "$dir/conf"
cat >"$dir/conf/log4j2.properties" <<'LOG'
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n
LOG
export SPARK_CONF_DIR="$dir/conf"
# the driver's own JVM is the server: setsid gives it a process group of its own for stop-spark.sh. One SQL
# session for every connection: each session caches a table's file listing, so a table written through one
# pooled connection could read stale through another. Two loads at once append to the same Parquet tables: with
# Hadoop's default committer every job of the server stages under <table>/_temporary/0 and the first to finish
# deletes it under the other ("_temporary/0 does not exist"); committer v2 moves each task's files into the table
# as the task ends, and the staging folder is left for the next job
setsid "$SPARK_HOME/bin/spark-submit" --class org.apache.spark.sql.hive.thriftserver.HiveThriftServer2 \
  --master 'local[2]' --driver-memory "${SPARK_DRIVER_MEMORY:-2g}" \
  --conf spark.sql.warehouse.dir="$dir/warehouse" \
  --conf "spark.driver.extraJavaOptions=-Dderby.system.home=$dir" \
  --conf spark.ui.port="$ui_port" --conf spark.ui.showConsoleProgress=false \
  --conf spark.sql.shuffle.partitions=4 \
  --conf spark.plugins=org.apache.spark.sql.connect.SparkConnectPlugin \
  --conf spark.connect.grpc.binding.port="$connect_port" --conf spark.connect.grpc.binding.address=127.0.0.1 \
  --conf spark.sql.session.timeZone=UTC --conf spark.sql.hive.thriftServer.singleSession=true \
  --conf spark.hadoop.mapreduce.fileoutputcommitter.algorithm.version=2 \
  --conf spark.hadoop.mapreduce.fileoutputcommitter.cleanup.skipped=true \
  --hiveconf hive.server2.thrift.port="$port" --hiveconf hive.server2.thrift.bind.host=127.0.0.1 \
  --hiveconf hive.server2.authentication=NOSASL \
  --hiveconf javax.jdo.option.ConnectionURL="jdbc:derby:;databaseName=$dir/metastore_db;create=true" \
  spark-internal >"$dir/server.log" 2>&1 </dev/null &
echo $! >"$dir/server.pid"
for _ in $(seq 1 180); do
  if "$py" - "$port" <<'PY' 2>/dev/null; then
import sys
from pyhive import hive
hive.connect(host="127.0.0.1", port=int(sys.argv[1]), auth="NOSASL").cursor().execute("SELECT 1")
PY
    echo "hive://127.0.0.1:$port/default?auth=NOSASL"
    exit 0
  fi
  if ! kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; then
    echo "the Spark Thrift Server stopped while starting; its log: $dir/server.log" >&2
    tail -n 20 "$dir/server.log" >&2
    exit 1
  fi
  sleep 1
done
echo "the Spark Thrift Server did not answer on 127.0.0.1:$port within 180 s; its log: $dir/server.log" >&2
exit 1
