# shellcheck shell=bash
# Common settings and helpers of the lab scripts (sourced by up, down, status, volpath).

export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C.UTF-8
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV

OSMLAB_STATE=${OSMLAB_STATE:-/var/lib/osmlab}
STATE=$OSMLAB_STATE
LAB=osmlab   # the lab's name: clouds osmlab-src/-dst/-admin, nova/cinder host, bridge br-osmlab
RUN=$STATE/run
LOGDIR=$STATE/log
KS_URL=http://127.0.0.1:5000
KS_URL_V3=http://127.0.0.1:5000/v3
MEMCACHED=127.0.0.1:11211

# Start order. `down` stops them in reverse order.
LAB_SERVICES=(
  mariadb memcached epmd rabbitmq
  keystone glance-api placement-api
  nova-api nova-conductor nova-scheduler nova-compute
  neutron-server neutron-linuxbridge-agent
  cinder-api cinder-scheduler cinder-volume
)

log() { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Start time (clock ticks since boot) of a process; guards against PID reuse.
proc_starttime() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }                       # drop "pid (comm) "
  # shellcheck disable=SC2086
  set -- $s
  echo "${20}"
}

# Print the PID of service $1 if the process recorded in its pid file is
# still the one we started; non-zero exit otherwise.
svc_pid() {
  local f="$RUN/$1.pid" pid="" st="" cur
  [ -s "$f" ] || return 1
  read -r pid st _ <"$f" || true
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  cur=$(proc_starttime "$pid") || return 1
  [ "$cur" = "$st" ] || return 1
  echo "$pid"
}

# start_svc NAME "CONF_FILES" CMD [ARGS...]: start CMD in its own session and
# process group, log to $LOGDIR/NAME.log, record "pid starttime fingerprint"
# in $RUN/NAME.pid. If it is already running with the same command line and
# unchanged CONF_FILES it is left alone; otherwise it is restarted.
start_svc() {
  local name=$1 confs=$2 pid fp old=""
  shift 2
  # shellcheck disable=SC2086
  fp=$({ printf '%q ' "$@"; cat $confs 2>/dev/null; } | md5sum | cut -c1-12)
  if pid=$(svc_pid "$name"); then
    read -r _ _ old <"$RUN/$name.pid" || true
    if [ "$old" = "$fp" ]; then
      log "$name: already running (pid $pid)"
      return 0
    fi
    log "$name: command line or configuration changed, restarting"
    stop_svc "$name"
  fi
  mkdir -p "$RUN" "$LOGDIR"
  log "$name: starting"
  # Non-interactive bash has no job control, so the child is not a group
  # leader and setsid(1) does not fork: $! is the service's own PID, and
  # that PID is also its process group id.
  setsid "$@" >>"$LOGDIR/$name.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid $(proc_starttime "$pid") $fp" >"$RUN/$name.pid"
  STARTED_NOW+=("$name")
}
STARTED_NOW=()

just_started() {
  local s
  for s in "${STARTED_NOW[@]}"; do [ "$s" = "$1" ] && return 0; done
  return 1
}

# Stop service $1: SIGTERM to the process group we created, wait, SIGKILL.
stop_svc() {
  local name=$1 pid pgid i target
  if ! pid=$(svc_pid "$name"); then
    rm -f "$RUN/$name.pid"
    return 0
  fi
  pgid=$(ps -o pgid= -p "$pid" | tr -d ' ')
  if [ "$pgid" = "$pid" ]; then target="-$pid"; else target="$pid"; fi
  log "$name: stopping (pid $pid)"
  kill -TERM -- "$target" 2>/dev/null || true
  for i in $(seq 1 60); do
    kill -0 -- "$target" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 -- "$target" 2>/dev/null; then
    log "$name: still alive after 30s, sending SIGKILL"
    kill -KILL -- "$target" 2>/dev/null || true
    sleep 1
  fi
  rm -f "$RUN/$name.pid"
}

# wait_svc NAME TIMEOUT CMD...: wait until CMD succeeds; fail early (with a
# log excerpt) if the service process died.
wait_svc() {
  local name=$1 t=$2 end
  shift 2
  end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    if ! svc_pid "$name" >/dev/null; then
      log "$name died; last log lines:"
      tail -n 40 "$LOGDIR/$name.log" >&2 || true
      return 1
    fi
    if [ $SECONDS -ge $end ]; then
      log "$name: not ready after ${t}s; last log lines:"
      tail -n 40 "$LOGDIR/$name.log" >&2 || true
      return 1
    fi
    sleep 1
  done
}

# wait_until DESC TIMEOUT CMD...
wait_until() {
  local desc=$1 t=$2 end
  shift 2
  end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || { log "timeout (${t}s) waiting for: $desc"; return 1; }
    sleep 1
  done
}

http_up() { curl -s -o /dev/null --max-time 5 "$1"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

load_secrets() {
  local f=$STATE/secrets.env k
  if [ ! -s "$f" ]; then
    mkdir -p "$STATE"
    (
      umask 077
      for k in DB RABBIT ADMIN SERVICE SRC DST; do
        echo "LAB_${k}_PASS=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
      done >"$f"
    )
  fi
  # shellcheck disable=SC1090
  . "$f"
}

admin_env() {
  export OS_AUTH_URL=$KS_URL_V3 OS_IDENTITY_API_VERSION=3 OS_REGION_NAME=RegionOne \
    OS_INTERFACE=public OS_USERNAME=admin OS_PASSWORD=$LAB_ADMIN_PASS \
    OS_PROJECT_NAME=admin OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default
}

# Where cinder keeps volume data (see README): "lvm" or "file".
cinder_backend_file() { echo "$STATE/cinder/backend"; }

# The TCP ports each service listens on (127.0.0.1), for finding a process that holds one of
# them but was not started by this lab (another lab from a different checkout, say).
declare -A LAB_PORTS=(
  [mariadb]=3306 [memcached]=11211 [epmd]=4369 [rabbitmq]=5672 [keystone]=5000 [glance-api]=9292
  [placement-api]=8778 [nova-api]=8774 [neutron-server]=9696 [cinder-api]=8776
)

# pid of the process listening on 127.0.0.1:$1 (or any address), empty when none.
port_owner() {
  ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n1
}

# The process group leader's pid of a pid (our services run in their own process groups).
pgid_of() { ps -o pgid= -p "$1" 2>/dev/null | tr -d ' '; }

# Fails with a message naming the foreign processes when a port of ours is held by a process
# this lab did not start: two labs on the same ports cannot both run.
check_foreign() {
  local name port pid ours bad=() pids=()
  for name in "${!LAB_PORTS[@]}"; do
    port=${LAB_PORTS[$name]}
    pid=$(port_owner "$port")
    [ -n "$pid" ] || continue
    ours=$(svc_pid "$name" 2>/dev/null || true)
    if [ -n "$ours" ] && { [ "$pid" = "$ours" ] || [ "$(pgid_of "$pid")" = "$ours" ]; }; then continue; fi
    # epmd is shared by any Erlang node; the one rabbitmq started for us is fine too
    if [ "$name" = epmd ] && [ -n "$(svc_pid rabbitmq 2>/dev/null || true)" ]; then continue; fi
    pids+=("$pid")
    bad+=("port $port ($name) is held by pid $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-100)")
  done
  [ ${#bad[@]} -eq 0 ] && return 0
  log "ERROR: services this lab did not start are using its ports:"
  local b; for b in "${bad[@]}"; do log "  $b"; done
  local other
  for other in /var/lib/*lab; do
    [ "$other" != "$STATE" ] && [ -d "$other/run" ] && ls "$other"/run/*.pid >/dev/null 2>&1 &&
      log "  another lab's pid files are in $other/run: stop that lab with the 'down' script of the checkout that started it"
  done
  log "  or stop them by hand: kill $(printf "%s\n" "${pids[@]}" | sort -u | tr "\n" " ") (then run lab/up again)"
  exit 1
}
