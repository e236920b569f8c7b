#!/usr/bin/env bash
# Removes what scripts/setup_buildN.sh installed: the service (stopped and
# disabled first) and the program. The data stays: /etc/buildcoord (config),
# /var/lib/buildcoord (state, artifacts, setup backups) and /var/log/buildcoord,
# unless --purge. The system user buildcoord is always kept.
#
#   scripts/uninstall.sh [--prefix DIR] [--purge] [--dry-run]
#
#   --prefix DIR   what setup_buildN.sh --prefix DIR installed
#   --purge        also remove the config, the state and the logs
#   --dry-run      print every action, change nothing
#
# Idempotent: what is already gone is reported as "absent".
set -euo pipefail

die() {
  local code=$1
  shift
  printf 'uninstall: error: %s\n' "$*" >&2
  exit "$code"
}

prefix=/ purge=0 dry_run=0
while (($#)); do
  arg=$1
  if [[ $arg == --*=* ]]; then
    set -- "${arg%%=*}" "${arg#*=}" "${@:2}"
    arg=$1
  fi
  case $arg in
    --prefix) [[ $# -ge 2 && -n $2 ]] || die 2 "--prefix needs a value"; prefix=$2; shift ;;
    --purge) purge=1 ;;
    --dry-run) dry_run=1 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die 2 "unknown argument $arg (see --help)" ;;
  esac
  shift
done

prefix=$(realpath -m -- "$prefix")
[[ $prefix =~ ^/[A-Za-z0-9._/+@-]*$ ]] || die 2 "--prefix $prefix: use an absolute path of letters, digits and ._/+@-"
P=${prefix%/}
in_prefix=0
[[ -n $P ]] && in_prefix=1
if ((!in_prefix && EUID != 0 && !dry_run)); then
  die 2 "uninstalling from / needs root: run it with sudo (or use --dry-run)"
fi

report() { printf 'uninstall: %-9s %s%s\n' "$1:" "$2" "${3:+ ($3)}"; }
act() {
  if ((dry_run)); then
    printf 'uninstall:           [dry-run] would run: %s\n' "$*"
  else
    "$@"
  fi
}
# remove STEP PATH: removes a file, link or directory tree.
remove() {
  local step=$1 path=$2
  if [[ ! -e $path && ! -L $path ]]; then
    report "$step" absent "$path"
    return
  fi
  act rm -rf -- "$path"
  report "$step" "$( ((dry_run)) && echo 'would remove' || echo removed)" "$path"
}

systemd_running=0 openrc_running=0
[[ -d /run/systemd/system ]] && systemd_running=1
[[ -e /run/openrc/softlevel ]] && openrc_running=1

# ---------------------------------------------------------------- service

unit=$P/etc/systemd/system/buildcoord.service
if [[ -e $unit ]]; then
  if ((!in_prefix && systemd_running)); then
    # stop drains: a running build may finish (up to TimeoutStopSec=11min).
    if systemctl is-active --quiet buildcoord 2>/dev/null || systemctl is-enabled --quiet buildcoord 2>/dev/null; then
      echo 'uninstall: stopping buildcoord.service (a running build is drained first; this can take up to 11 minutes)'
      act systemctl disable --now buildcoord
    fi
    remove systemd "$unit"
    act systemctl daemon-reload
  else
    remove systemd "$unit"
    ((in_prefix)) || echo 'uninstall: systemd is not running: nothing to stop or disable'
  fi
else
  report systemd absent "$unit"
fi

script=$P/etc/init.d/buildcoord
if [[ -e $script ]]; then
  if ((!in_prefix && openrc_running)); then
    if rc-service buildcoord status >/dev/null 2>&1; then
      echo 'uninstall: stopping buildcoord (a running build is drained first; this can take up to 11 minutes)'
      act rc-service buildcoord stop
    fi
    for level in $(rc-update show -v 2>/dev/null | sed -n 's/^ *buildcoord |//p'); do
      act rc-update del buildcoord "$level"
    done
  elif [[ $(readlink /run/openrc/started/buildcoord 2>/dev/null || true) == "$script" ]]; then
    die 1 "buildcoord is running from $script: stop it first (openrc-run $script stop)"
  fi
  remove openrc "$script"
else
  report openrc absent "$script"
fi

# ---------------------------------------------------------------- program

wrapper=$P/usr/local/bin/buildcoord
if [[ -f $wrapper ]] && ! grep -q 'installed by scripts/setup_buildN.sh' -- "$wrapper"; then
  report wrapper kept "$wrapper was not written by setup_buildN.sh"
else
  remove wrapper "$wrapper"
fi
remove program "$P/opt/buildcoord"

# ---------------------------------------------------------------- data

for pair in "config:$P/etc/buildcoord" "state:$P/var/lib/buildcoord" "logs:$P/var/log/buildcoord" "conf.d:$P/etc/conf.d/buildcoord"; do
  step=${pair%%:*} path=${pair#*:}
  if ((purge)); then
    remove "$step" "$path"
  elif [[ -e $path ]]; then
    report "$step" kept "$path; --purge removes it"
  else
    report "$step" absent "$path"
  fi
done

if ((!in_prefix)) && id -u buildcoord >/dev/null 2>&1; then
  echo 'uninstall: the system user buildcoord is kept (remove it with: userdel buildcoord)'
fi
if ((dry_run)); then echo 'uninstall: dry run done: nothing was changed'; else echo 'uninstall: done'; fi
