#!/usr/bin/env bash
# Runs the criterion benches' two queries on a real Prometheus (Debian's `prometheus` and
# `promtool`) over the same data, and prints the engine's own evaluation time (the
# `evalTotalTime` of `stats=all`, HTTP and JSON excluded) as the median of 20 runs.
#
#   crates/promql-eval/benches/compare_prometheus.sh
set -euo pipefail

work=$(mktemp -d)
trap 'kill "${prom_pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

# Samples end 30 minutes ago, on a 15 s grid, like the criterion benches' data.
end=$(( ($(date +%s) - 1800) / 15 * 15 ))
python3 - "$work/data.om" "$end" <<'PY'
import sys
path, end = sys.argv[1], int(sys.argv[2])
bounds = ["0.005","0.01","0.025","0.05","0.1","0.25","0.5","1","2.5","5","10","+Inf"]
with open(path, "w") as f:
    f.write("# TYPE x_bucket counter\n")
    for pod in range(1000):
        for b, le in enumerate(bounds):
            for step in range(21):
                t = end - (20 - step) * 15
                f.write('x_bucket{pod="pod-%d",le="%s"} %d %d\n' % (pod, le, step * (pod % 7 + 1) * (b + 1), t))
    f.write("# TYPE http_requests counter\n")
    for i in range(100000):
        for step in range(9):
            t = end - (8 - step) * 15
            f.write('http_requests_total{pod="pod-%d",code="%d"} %d %d\n' % (i // 10, 200 + i % 10, step * (i % 13 + 1), t))
    f.write("# EOF\n")
PY
promtool tsdb create-blocks-from openmetrics "$work/data.om" "$work/tsdb" >/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'global: {}\n' > "$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$port" --storage.tsdb.retention.time=1y \
  >"$work/prometheus.log" 2>&1 &
prom_pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && break
  sleep 0.2
done

measure() {
  local query=$1
  for _ in $(seq 1 20); do
    curl -sf "http://127.0.0.1:$port/api/v1/query" \
      --data-urlencode "query=$query" --data-urlencode "time=$end" --data-urlencode "stats=all" \
      | python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(d["stats"]["timings"]["evalTotalTime"], len(d["result"]))'
  done | sort -n | awk -v q="$query" '{a[NR]=$1; n=$2} END {printf "%-70s median %.2f ms (%d series)\n", q, a[int((NR+1)/2)]*1000, n}'
}

echo "Prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}')"
measure 'histogram_quantile(0.95, sum by (le, pod) (rate(x_bucket[1m])))'
measure 'rate(http_requests_total[1m])'
