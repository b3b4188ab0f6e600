#!/usr/bin/env bash
# dns.sh: minik-dns against dnsmasq serving the same cluster names, measured with dnsperf
# in the same run. For SERVICES services in NAMESPACES namespaces it writes a minik-dns
# zone and the equivalent dnsmasq configuration, checks with dig that both give the same
# answers, then for each server in turn (never two at once):
#   - the peak rate: dnsperf without a rate limit for DURATION s, and the CPU the server
#     and dnsperf used (a peak that leaves dnsperf at 100% of a CPU is dnsperf's);
#   - the latency of every answer (dnsperf -v) at half that rate, and at COMMON_QPS, the
#     same offered load for every server.
# Rows: minik-dns on 1 and 2 threads, dnsmasq (single-threaded); pinned rows put the
# server on CPU 0 and dnsperf on CPU 1 (not minik-dns on 2 threads: both would share
# CPU 0). Two more rows run the mix without its SRV queries, against dnsmasq without its
# srv-host lines (which slow every answer of dnsmasq's: this is its best case) and against
# minik-dns.
# Prints Markdown (machine, versions, query mix, table) to paste into BENCHMARKS.md.
#
# Everything runs in a network namespace of its own (only its loopback is up): nothing
# listens or sends outside it. On exit, even on failure, every process in it is killed
# and it is removed.
# A round in which other processes used more than 10% of the CPUs (builds, tests) is run
# again, up to ATTEMPTS times, then kept and marked; before each round the script waits
# (up to QUIET_WAIT s) for an idle second. Progress goes to stderr.
# Run as root after `make build` (or `swift build -c release --product minik-dns`).
# Environment: SERVICES (1000), NAMESPACES (10), DURATION (10), CLIENTS (dnsperf -c, 4),
# OUTSTANDING (dnsperf -q, 100), COMMON_QPS (10000), ROUNDS (1; with more, the rows are
# measured round by round and each figure is the median, the lower one of an even count),
# ATTEMPTS (5), QUIET_WAIT (120), MINIK_DNS, KEEP (a directory: keep the generated files).
set -euo pipefail
cd "$(dirname "$0")/.."
MINIK_DNS=${MINIK_DNS:-.build/release/minik-dns}
SERVICES=${SERVICES:-1000}
NAMESPACES=${NAMESPACES:-10}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-4}
OUTSTANDING=${OUTSTANDING:-100}
COMMON_QPS=${COMMON_QPS:-10000}
ROUNDS=${ROUNDS:-1}
ATTEMPTS=${ATTEMPTS:-5}
QUIET_WAIT=${QUIET_WAIT:-120}
NETNS=minik-bench-dns
ADDR=127.0.0.1
PORT=5353

[ "$(id -u)" = 0 ] || { echo "dns.sh: run as root" >&2; exit 1; }
[ -x "$MINIK_DNS" ] || { echo "dns.sh: no $MINIK_DNS (make build)" >&2; exit 1; }
missing=""
command -v dnsperf >/dev/null || missing="$missing dnsperf"
[ -x /usr/sbin/dnsmasq ] || missing="$missing dnsmasq-base" # not "dnsmasq": it starts a system service
command -v dig >/dev/null || missing="$missing dnsutils"
if [ -n "$missing" ]; then
  echo "installing:$missing" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
if ip netns list | grep -qw "$NETNS"; then
  echo "dns.sh: namespace $NETNS exists (another run?); remove it with: ip netns del $NETNS" >&2
  exit 1
fi

tmp=$(mktemp -d)
chmod 755 "$tmp"
server=""
cleanup() {
  set +e
  [ -n "$server" ] && kill "$server" 2>/dev/null
  if ip netns list | grep -qw "$NETNS"; then
    for pid in $(ip netns pids "$NETNS"); do kill "$pid" 2>/dev/null; done
    sleep 0.2
    for pid in $(ip netns pids "$NETNS"); do kill -9 "$pid" 2>/dev/null; done
    ip netns del "$NETNS"
  fi
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$tmp"/* "$KEEP"/; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
ip netns add "$NETNS"
ip -n "$NETNS" link set lo up
inns() { ip netns exec "$NETNS" "$@"; }

# --- the names: zone, dnsmasq configuration, dnsperf queries -------------------------
# Service i: svc-i in namespace ns-(i % NAMESPACES), ClusterIP 10.96.0.0 + 10 + i.
NAMES='
function name(i) { return "svc-" i ".ns-" (i % nss) ".svc.cluster.local" }
function ip(i) { return "10." (96 + int((i + 10) / 65536)) "." int((i + 10) / 256) % 256 "." (i + 10) % 256 }
function rev(i, o) { split(ip(i), o, "."); return o[4] "." o[3] "." o[2] "." o[1] ".in-addr.arpa" }'
awk -v n="$SERVICES" -v nss="$NAMESPACES" -v port="$PORT" -v addr="$ADDR" -v dir="$tmp" "$NAMES"'
BEGIN {
  zone = dir "/zone"; conf = dir "/dnsmasq.conf"
  print "minik-dns-zone 1\ndomain cluster.local\nttl 5\nserial 1\nreverse 10.96.0.0/12\nreverse 10.244.0.0/16" > zone
  for (k = 0; k < nss; k++) print "namespace ns-" k > zone
  print "TXT dns-version.cluster.local 1.1.0" > zone
  printf "port=%d\nlisten-address=%s\nbind-interfaces\nkeep-in-foreground\npid-file=\nlog-facility=-\n", port, addr > conf
  # No upstream, no /etc/hosts, answers with TTL 5 as minik-dns gives. host-record
  # entries live in the cache whatever its size, but its hash table is sized from
  # cache-size: 0 or the default (150) make lookups in 10,000 services twice as slow.
  printf "no-resolv\nno-hosts\nno-poll\nlocal-ttl=5\ncache-size=%d\n", (n < 75 ? 150 : 2 * n) > conf
  # The cluster domain and the reverse ranges are answered locally (NXDOMAIN when unknown).
  print "local=/cluster.local/\nlocal=/244.10.in-addr.arpa/" > conf
  for (o = 96; o < 112; o++) print "local=/" o ".10.in-addr.arpa/" > conf
  print "txt-record=dns-version.cluster.local,1.1.0" > conf
  for (i = 0; i < n; i++) {
    print "A " name(i) " " ip(i) > zone
    print "SRV _http._tcp." name(i) " 0 100 80 " name(i) > zone
    print "PTR " rev(i) " " name(i) > zone
    print "host-record=" name(i) "," ip(i) > conf # A, and the PTR of its address
    print "srv-host=_http._tcp." name(i) "," name(i) ",80,0,100" > conf
  }
}'
grep -v '^srv-host=' "$tmp/dnsmasq.conf" > "$tmp/dnsmasq-nosrv.conf"

# Queries modelled on pods looking services up (resolv.conf "search <ns>.svc.cluster.local
# svc.cluster.local cluster.local", ndots:5, A and AAAA asked together): existing
# services, AAAA for them (NODATA), search-path misses (NXDOMAIN), SRV, PTR, and names
# of services that do not exist. A fixed seed, so every run asks the same.
MIX="55% A of a service (<svc>.<ns>.svc.cluster.local); 15% AAAA of a service (NODATA); \
20% search-path misses, NXDOMAIN, half A, half AAAA (<svc>.<ns>.svc.cluster.local.<pod ns>.svc.cluster.local, \
<svc>.<ns>.svc.cluster.local.svc.cluster.local, <svc>.<ns>.svc.cluster.local.cluster.local, <svc>.<ns>.<pod ns>.svc.cluster.local, 5% each); \
2% A of a service that does not exist (NXDOMAIN); 4% SRV _http._tcp.<svc>.<ns>.svc.cluster.local; 4% PTR of a ClusterIP"
awk -v n="$SERVICES" -v nss="$NAMESPACES" -v count=20000 "$NAMES"'
BEGIN {
  srand(42)
  for (q = 0; q < count; q++) {
    i = int(rand() * n); r = rand() * 100; podns = "ns-" int(rand() * nss)
    t = rand() < 0.5 ? "A" : "AAAA"
    if (r < 55) print name(i), "A"
    else if (r < 70) print name(i), "AAAA"
    else if (r < 75) print name(i) "." podns ".svc.cluster.local", t
    else if (r < 80) print name(i) ".svc.cluster.local", t
    else if (r < 85) print name(i) ".cluster.local", t
    else if (r < 90) print "svc-" i ".ns-" (i % nss) "." podns ".svc.cluster.local", t
    else if (r < 92) print "gone-" i ".ns-" (i % nss) ".svc.cluster.local", "A"
    else if (r < 96) print "_http._tcp." name(i), "SRV"
    else print rev(i), "PTR"
  }
}' > "$tmp/queries"
grep -v ' SRV$' "$tmp/queries" > "$tmp/queries-nosrv"

# --- servers -------------------------------------------------------------------------
# start KIND THREADS CPU [DNSMASQ_CONF]: one server in the namespace (pinned to CPU unless
# empty); $server is its pid.
start() {
  local pin=() t
  [ -n "$3" ] && pin=(taskset -c "$3")
  if [ -n "$(ip netns pids "$NETNS")" ]; then
    echo "dns.sh: processes left in $NETNS: $(ip netns pids "$NETNS" | xargs)" >&2
    exit 1
  fi
  # Not through inns (a function: & would fork a shell for it): $! must be the server,
  # which ip netns exec and taskset exec into.
  if [ "$1" = minik-dns ]; then
    ip netns exec "$NETNS" "${pin[@]}" "$MINIK_DNS" --zone "$tmp/zone" --listen "$ADDR" --port "$PORT" --threads "$2" 2>"$tmp/server.log" &
  else
    ip netns exec "$NETNS" "${pin[@]}" /usr/sbin/dnsmasq --conf-file="${4:-$tmp/dnsmasq.conf}" 2>"$tmp/server.log" &
  fi
  server=$!
  for ((t = 0; t < 600; t++)); do # minik-dns loads the zone before it listens
    if inns dig @"$ADDR" -p "$PORT" +tries=1 +time=1 dns-version.cluster.local TXT >/dev/null 2>&1; then
      [ "$(cat "/proc/$server/comm")" = "$1" ] || { echo "dns.sh: pid $server is not $1" >&2; exit 1; }
      return
    fi
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
  done
  echo "dns.sh: $1 did not start:" >&2
  cat "$tmp/server.log" >&2
  exit 1
}
stop() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  server=""
}

# What dig sees, reduced to what must match: the rcode and the answer section (sorted,
# lower case, TTLs included).
answer() {
  local out status
  out=$(inns dig @"$ADDR" -p "$PORT" +tries=1 +time=2 +nocmd +noquestion +noauthority +noadditional +nostats "$1" "$2")
  status=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$out")
  echo "$status $(grep -v '^;' <<<"$out" | grep . | tr 'A-Z' 'a-z' | tr -s ' \t' ' ' | sort | tr '\n' '|')"
}
sample() { # NAME TYPE lines: the first 4 of each kind of query in the mix, and a few more
  local svc='svc-[0-9]+\.ns-[0-9]+\.svc\.cluster\.local'
  for kind in "$svc A" "$svc AAAA" "$svc\.ns-[0-9]+\.svc\.cluster\.local A+" "$svc\.svc\.cluster\.local A+" \
              "$svc\.cluster\.local A+" "svc-[0-9]+\.ns-[0-9]+\.ns-[0-9]+\.svc\.cluster\.local A+" "gone-.* A" \
              "_http\._tcp\.$svc SRV" ".*\.in-addr\.arpa PTR"; do
    grep -m 4 -E -- "^$kind\$" "$tmp/queries"
  done
  echo "dns-version.cluster.local TXT"
  echo "99.99.99.10.in-addr.arpa PTR"   # in 10.96.0.0/12, no service: NXDOMAIN
  echo "1.1.244.10.in-addr.arpa PTR"    # a pod address without a record: NXDOMAIN
  echo "svc.cluster.local A"            # an empty non-terminal: NODATA
}
# ask NAME: every sample query to the running server, into $tmp/answers.NAME.
ask() { while read -r n t; do answer "$n" "$t"; done < "$tmp/sample" > "$tmp/answers.$1"; }
same() { # A B [grep -v pattern]: the sample's answers from A and B, or fail
  if ! diff <(paste -d' ' "$tmp/sample" "$tmp/answers.$1" | grep -v -- "${3:-^$}") \
            <(paste -d' ' "$tmp/sample" "$tmp/answers.$2" | grep -v -- "${3:-^$}") > "$tmp/diff"; then
    echo "dns.sh: $1 (<) and $2 (>) answer differently:" >&2
    cat "$tmp/diff" >&2
    exit 1
  fi
}
check() {
  sample > "$tmp/sample"
  start minik-dns 1 ""
  zoneload=$(sed -n 's/.*loaded: .*, in \([0-9]*\) ms$/\1/p' "$tmp/server.log")
  ask minik-dns
  stop
  start dnsmasq 1 ""
  ask dnsmasq
  stop
  start dnsmasq 1 "" "$tmp/dnsmasq-nosrv.conf"
  ask dnsmasq-nosrv
  stop
  same minik-dns dnsmasq
  same minik-dns dnsmasq-nosrv " SRV "
  grep -q '^NOERROR .* in a 10\.' "$tmp/answers.minik-dns" || { echo "dns.sh: no A answer in the sample" >&2; exit 1; }
  grep -q '^NOERROR .* in srv 0 100 80 ' "$tmp/answers.minik-dns" || { echo "dns.sh: no SRV answer in the sample" >&2; exit 1; }
  echo "Checked: both servers give the same rcode and answer section for $(wc -l < "$tmp/sample") sample queries (every kind in the mix)." >&2
}

# --- measuring -----------------------------------------------------------------------
hz=$(getconf CLK_TCK)
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# load PINNED QUERIES [dnsperf options]: dnsperf in the namespace, output in $tmp/perf.out.
load() {
  local pin=()
  [ "$1" = yes ] && pin=(taskset -c 1)
  inns "${pin[@]}" dnsperf -s "$ADDR" -p "$PORT" -d "$2" -c "$CLIENTS" -q "$OUTSTANDING" -t 1 "${@:3}" > "$tmp/perf.out" 2>&1
}
field() { sed -n "s/^ *$1: *\([0-9.]*\).*/\1/p" "${2:-$tmp/perf.out}"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
commas() { awk '{printf "%.0f\n", $1}' | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }
# -v prints "> RCODE name type latency" per answer ("> T ..." for a timeout): latency
# average, p50, p99 and max in µs, from every answer.
latency() {
  grep '^> [A-Z]' "$tmp/perf.out" | grep -v '^> T ' | awk '{print $NF * 1e6}' | sort -n |
    awk '{a[NR]=$1; s+=$1} END {printf "%.0f %.0f %.0f %.0f\n", s/NR, a[int(NR*0.5)+1], a[int(NR*0.99)+1], a[NR]}'
}

# Other work on the machine skews every figure.
busy() { # percent of all CPUs busy over one second
  local a b
  a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat); sleep 1
  b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
  echo "$a $b" | awk '{printf "%d", 100 * ($3 - $1) / ($3 - $1 + $4 - $2)}'
}
quiet() { # wait for an idle second
  local t b=0
  for ((t = 0; t < QUIET_WAIT; t++)); do
    b=$(busy)
    [ "$b" -lt 10 ] && return
  done
  echo "dns.sh: the machine is busy ($b% of the CPUs) with something else; measuring anyway" >&2
}
# Where the CPU went during a run: snapshots (into the variable named by $1) of the
# machine's busy time (user, system, irq, softirq: with tick accounting a process is
# charged the softirq work, loopback delivery included, done while it runs; and steal,
# time the hypervisor gave to others), the
# server's, and dnsperf's (this shell's reaped children: `times` must run in this shell,
# not in a $(...) subshell, which has no children). All in clock ticks.
snap() {
  local mach srv
  times > "$tmp/times"
  mach=$(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)
  srv=$(cputicks "$server")
  printf -v "$1" "%s %s %s" "$mach" "$srv" \
    "$(awk -v hz="$hz" 'NR == 2 {gsub(/[ms]/, " "); print hz * ($1 * 60 + $2 + $3 * 60 + $4)}' "$tmp/times")"
}
others() { # SNAP0 SNAP1: percent of the machine used by anything else
  echo "$1 $2" | awk '{o = ($5 - $1) - ($7 - $3) - ($8 - $4); printf "%d", o < 0 ? 0 : 100 * o / ($6 - $2)}'
}
noisy=""

# round ROW KIND THREADS PINNED MIX: one round of measures of one server, added to the
# files $tmp/ROW.*. MIX: all, or nosrv (the queries without SRV; dnsmasq without srv-host
# lines). A round is a peak run, a run at half its rate and one at COMMON_QPS; one in
# which other processes (or the hypervisor: steal) took more than 10% of the CPUs is run
# again, ATTEMPTS times at most, then kept and marked.
round() {
  local row=$1 kind=$2 threads=$3 pinned=$4 mix=$5 cpu="" queries=$tmp/queries conf=$tmp/dnsmasq.conf
  local a peak s0 s1 s2 s3 o o2
  [ "$pinned" = yes ] && cpu=0
  [ "$mix" = nosrv ] && queries=$tmp/queries-nosrv conf=$tmp/dnsmasq-nosrv.conf
  for ((a = 1; ; a++)); do
    quiet
    start "$kind" "$threads" "$cpu" "$conf"
    load "$pinned" "$queries" -l 1 # warm up
    snap s0
    load "$pinned" "$queries" -l "$DURATION"
    snap s1
    cp "$tmp/perf.out" "$tmp/perf.peak"
    peak=$(field "Queries per second")
    load "$pinned" "$queries" -l "$DURATION" -Q "$(awk -v p="$peak" 'BEGIN {printf "%d", p / 2}')" -v
    snap s2
    cp "$tmp/perf.out" "$tmp/perf.half"
    latency > "$tmp/lat.half"
    load "$pinned" "$queries" -l "$DURATION" -Q "$COMMON_QPS" -v
    snap s3
    stop
    o=$(others "$s0" "$s1")
    o2=$(others "$s1" "$s2"); [ "$o2" -gt "$o" ] && o=$o2
    o2=$(others "$s2" "$s3"); [ "$o2" -gt "$o" ] && o=$o2
    echo "dns.sh: $kind, $threads thread(s), pinned: $pinned, queries: $mix: $(echo "$peak" | commas) QPS at peak (others: $o% of the CPUs)" >&2
    [ "$o" -le 10 ] && break
    if [ "$a" -ge "$ATTEMPTS" ]; then echo "$o" >> "$tmp/$row.noisy"; noisy=1; break; fi
    echo "dns.sh: again" >&2
  done
  echo "$peak" >> "$tmp/$row.peak"
  # Server and dnsperf, % of one CPU; the server's CPU per answer.
  echo "$s0 $s1" | awk -v c="$(nproc)" -v q="$(field "Queries completed" "$tmp/perf.peak")" -v hz="$hz" \
    '{t = ($6 - $2) / c; print 100 * ($7 - $3) / t, 100 * ($8 - $4) / t >> "'"$tmp/$row.share"'"; printf "%.1f\n", 1e6 * ($7 - $3) / hz / q}' >> "$tmp/$row.cpu"
  field "Queries per second" "$tmp/perf.half" >> "$tmp/$row.half"
  cat "$tmp/lat.half" >> "$tmp/$row.halflat"
  field "Queries per second" >> "$tmp/$row.common"
  latency >> "$tmp/$row.commonlat"
  echo "$(field "Queries lost" "$tmp/perf.peak") $(field "Queries lost" "$tmp/perf.half") $(field "Queries lost")" >> "$tmp/$row.lost"
}
# row ROW KIND THREADS PINNED MIX: the row's medians as a table row.
row() {
  local row=$1
  med() { awk -v c="$2" '{print $c}' "$tmp/$row.$1" | median; }
  lat() { local s="" col; for col in 1 2 3 4; do s="$s${s:+ / }$(med "$1" $col)"; done; echo "$s"; }
  printf "| %s | %s | %s | %s | %s | %.0f%% / %.0f%% | %s | %s: %s | %s: %s | %s / %s / %s |\n" \
    "$2" "$3" "$([ "$4" = yes ] && echo "server CPU 0, dnsperf CPU 1" || echo "none")$([ -s "$tmp/$row.noisy" ] &&
      echo " (others took up to $(sort -n "$tmp/$row.noisy" | tail -1)% of the CPUs)")" \
    "$([ "$5" = nosrv ] && echo "without SRV" || echo "all")" \
    "$(med peak 1 | commas)" "$(med share 1)" "$(med share 2)" "$(med cpu 1)" \
    "$(med half 1 | commas)" "$(lat halflat)" "$(med common 1 | commas)" "$(lat commonlat)" \
    "$(med lost 1)" "$(med lost 2)" "$(med lost 3)"
}

# Before measuring: the sources may change while it runs.
versions="minik-dns $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- Sources/MinikDNS Sources/minik-dns Sources/CDNSIO 2>/dev/null ||
  echo " with uncommitted changes to its sources"), binary of $(date -u -r "$MINIK_DNS" '+%Y-%m-%d %H:%M') UTC; \
$(/usr/sbin/dnsmasq --version | awk 'NR == 1 {print $1, $3}'); dnsperf $(dnsperf -h 2>&1 | sed -n 's/^Version //p')"
check
cat <<EOF

Machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p;T;q' /proc/cpuinfo), kernel $(uname -r), $(. /etc/os-release; echo "$PRETTY_NAME"). Date: $(date -u +%Y-%m-%d).
Versions: $versions.
Zone: $SERVICES services in $NAMESPACES namespaces, an A, an SRV and a PTR each (minik-dns loaded it in $zoneload ms); dnsmasq: host-record and srv-host lines, local=/cluster.local/ and the reverse ranges, cache-size=$(sed -n 's/^cache-size=//p' "$tmp/dnsmasq.conf").
Queries: $(wc -l < "$tmp/queries") in a loop, UDP, no EDNS: $MIX. "Without SRV": the same $(wc -l < "$tmp/queries-nosrv") without the SRV queries, and dnsmasq without its srv-host lines.
dnsperf: -c $CLIENTS -q $OUTSTANDING -t 1, $DURATION s per run$([ "$ROUNDS" -gt 1 ] && echo ", median of $ROUNDS rounds"). Server CPU is what the kernel charges the process (user + system, with the loopback delivery of its answers); per answer: divided by the answers at peak.
Latency: every answer's, from dnsperf -v (client clock, send to receive), in µs: avg / p50 / p99 / max; at half the server's peak rate, and at $(echo "$COMMON_QPS" | commas) QPS for every server.

| server | threads | pinning | queries | peak QPS | CPU at peak: server / dnsperf (of one CPU) | server CPU per answer (µs) | at half peak: QPS: latency (µs) | at $(echo "$COMMON_QPS" | commas) QPS: QPS: latency (µs) | lost: peak / half / $(echo "$COMMON_QPS" | commas) |
|---|---|---|---|---|---|---|---|---|---|
EOF
ROWS=("minik-dns 1 no all" "minik-dns 1 yes all" "minik-dns 2 no all" "dnsmasq 1 no all" "dnsmasq 1 yes all"
      "minik-dns 1 no nosrv" "dnsmasq 1 no nosrv")
# Round by round through the rows (not all of a row's rounds together), so that a slow
# spell of the machine does not fall on one server only.
for ((r = 0; r < ROUNDS; r++)); do
  for i in "${!ROWS[@]}"; do round "row$i" ${ROWS[$i]}; done
done
for i in "${!ROWS[@]}"; do row "row$i" ${ROWS[$i]}; done
if [ -n "$noisy" ]; then echo; echo "Other processes used the CPUs during some rounds: those rows are noisy."; fi
