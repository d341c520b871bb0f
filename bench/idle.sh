# Sourced by parts of `make bench` that compare throughputs taken one
# after another (crud.sh, hosts.sh).

# Waits until the machine is idle (>= 90% idle over half a second, for at
# most 30 s). PocketBase writes its request log for about 5 s after a run
# ends, on most of a core; that work landed in SelfDB's list run, which
# measured 5,939 req/s and p99 10.5 ms there against 8,000 and 6.3 ms on an
# idle machine. Waiting charges PocketBase's deferred logging to nobody.
wait_idle() {
  local waited=0
  while :; do
    local idle
    idle=$(
      read -r _ a1 b1 c1 d1 e1 f1 g1 h1 _ </proc/stat
      sleep 0.5
      read -r _ a2 b2 c2 d2 e2 f2 g2 h2 _ </proc/stat
      busy=$(((a2 + b2 + c2 + f2 + g2 + h2) - (a1 + b1 + c1 + f1 + g1 + h1)))
      idle=$(((d2 + e2) - (d1 + e1)))
      echo $((100 * idle / (busy + idle + 1)))
    )
    [ "$idle" -ge 90 ] && return 0
    waited=$((waited + 1))
    if [ "$waited" -ge 60 ]; then
      echo "warning: the machine is still busy (${idle}% idle); measuring anyway" >&2
      return 0
    fi
  done
}
