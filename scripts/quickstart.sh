#!/usr/bin/env bash
# The whole system on one machine: the embedded coordination repository, two
# agents (build1 and build2), real make builds of examples/hello-c, the queue
# and the status as they happen, a message between the builders; then
# everything it started is stopped and removed (unless --keep).
#
#   scripts/quickstart.sh [--keep] [--jobs N] [--no-install]
#
# --keep leaves the agents and the distccd it started running, and their
# state in place, and prints how to stop them (by PID) and remove the state.
# --no-install skips scripts/install-deps.sh (the test suite uses it: the
# build is already there, and rebuilding dist/ under running tests breaks them).
#
# State lives under $BUILDCOORD_HOME (default: a fresh temporary directory, so
# a quickstart never touches a real builder's state). A run that fails keeps
# it, with the agents' logs, and says where.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

keep=0
jobs=4
install=1
while (($#)); do
  case $1 in
    --keep) keep=1 ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift ;;
    --no-install) install=0 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "quickstart: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if ((install)); then bash scripts/install-deps.sh; fi

made_home=0
if [[ -z ${BUILDCOORD_HOME:-} ]]; then
  BUILDCOORD_HOME=$(mktemp -d "${TMPDIR:-/tmp}/buildcoord-quickstart.XXXXXX")
  made_home=1
fi
export BUILDCOORD_HOME
unset BUILDCOORD_REPO BUILDCOORD_CONFIG || true
# Its own config file, so a real /etc/buildcoord/agent.json on this machine is left out of it.
# Artifacts go under the temporary home too, not the builders' default /root/artifacts.
printf '{"builder": "quickstart", "artifacts_dir": "%s"}\n' "$BUILDCOORD_HOME/artifacts" > "$BUILDCOORD_HOME/quickstart.json"
bc() { BUILDCOORD_CONFIG="$BUILDCOORD_HOME/quickstart.json" node "$root/dist/agent/cli/main.js" "$@"; }

follow_pid= # the follower of the agents' logs
pids=()    # the agents
running=() # what they are, for the --keep note
distccd_pid=
# Without --keep everything it started is stopped. Its temporary home is
# removed only after a run that succeeded without --keep: after a failure it
# holds the logs that say why, and with --keep the state the agents use.
cleanup() {
  local rc=$? pid
  [[ -n ${follow_pid:-} ]] && { kill -TERM "$follow_pid" 2>/dev/null || true; wait "$follow_pid" 2>/dev/null || true; }
  local started=("${pids[@]}")
  [[ -n $distccd_pid ]] && started+=("$distccd_pid")
  if ((keep)); then
    if ((${#started[@]})); then
      echo
      echo "Left running (--keep): $(printf '%s, ' "${running[@]}" | sed 's/, $//')"
      echo "Stop them with: kill -TERM ${started[*]}"
    fi
  else
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -n $distccd_pid ]]; then kill -TERM "$distccd_pid" 2>/dev/null || true; wait "$distccd_pid" 2>/dev/null || true; fi
  fi
  if ((keep || rc != 0)); then
    {
      ((rc == 0)) || echo "quickstart: failed (exit $rc): the agents' logs (build1.log, build2.log, distccd.log) are kept with the rest of its state"
      echo "State kept in $BUILDCOORD_HOME"
      if ((made_home)); then
        echo "Remove it with: rm -rf $BUILDCOORD_HOME${started[*]:+ (once the processes above have exited)}"
      else
        echo "(BUILDCOORD_HOME was given: it is yours to remove)"
      fi
    } >&$((rc == 0 ? 1 : 2))
    return 0
  fi
  ((made_home)) && rm -rf "$BUILDCOORD_HOME"
  return 0
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }

step "The sample project, as a git repository the builders can fetch"
src=$BUILDCOORD_HOME/sample-src
rm -rf "$src" && mkdir -p "$src" && cp -r examples/hello-c/. "$src/"
git -C "$src" init -q -b main
git -C "$src" add -A
git -C "$src" -c user.name=quickstart -c user.email=quickstart@buildcoord.invalid commit -q -m "hello-c"
echo "$src at $(git -C "$src" rev-parse --short HEAD)"

step "The embedded coordination repository (created on first use)"
bc job list >/dev/null
echo "$BUILDCOORD_HOME/coordination.git"

distcc_args=()
if command -v distccd >/dev/null 2>&1; then
  step "A distcc worker on 127.0.0.1, so the builds compile through distcc"
  port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  # --log-stderr: as root distccd drops to the distccd user, which could not write a log file here.
  # For the same reason it gets /tmp as its TMPDIR then: it works in TMPDIR,
  # and a private one (mode 700, as mktemp makes them) stops it at once.
  # Its stdout goes nowhere: left running (--keep) it must not hold the terminal or a caller's pipe open.
  distccd_env=()
  ((EUID == 0)) && distccd_env=(env TMPDIR=/tmp)
  "${distccd_env[@]}" distccd --daemon --no-detach --listen 127.0.0.1 --port "$port" --allow 127.0.0.1 --log-stderr --log-level=info --jobs 2 \
    >/dev/null 2>"$BUILDCOORD_HOME/distccd.log" &
  distccd_pid=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  if kill -0 "$distccd_pid" 2>/dev/null; then
    running+=("distccd pid $distccd_pid")
    distcc_args=(--distcc-hosts "127.0.0.1:$port/2")
    echo "distccd: pid $distccd_pid, 127.0.0.1:$port, log $BUILDCOORD_HOME/distccd.log"
  else
    wait "$distccd_pid" 2>/dev/null || true
    distccd_pid=
    echo "(distccd did not start: $(grep -m 1 ERROR "$BUILDCOORD_HOME/distccd.log" || tail -n 1 "$BUILDCOORD_HOME/distccd.log"); the builds compile locally)"
  fi
else
  echo "(no distccd on this machine: the builds compile locally)"
fi

step "Two agents on this machine: build1 and build2"
for b in build1 build2; do
  BUILDCOORD_CONFIG="$BUILDCOORD_HOME/quickstart.json" node "$root/dist/agent/cli/main.js" agent --builder "$b" \
    --poll 500ms --heartbeat 2s --lease 20s --grace 10s "${distcc_args[@]}" >"$BUILDCOORD_HOME/$b.log" 2>&1 &
  pids+=($!)
  running+=("agent $b pid $!")
  echo "$b: pid $!, log $BUILDCOORD_HOME/$b.log"
done

step "Queue $jobs make jobs of the sample project"
commit=$(git -C "$src" rev-parse HEAD)
for i in $(seq 1 "$jobs"); do
  bc job add --type make --source "$src" --branch main --commit "$commit" --priority $(( (i % 3) + 1 )) --description "quickstart build $i"
done
bc job list

step "Builds running: claims and results as they happen"
# A small follower prints the agents' claim and finish lines as they are logged;
# it stops on SIGTERM once the queue is empty (after one last read).
node -e '
const fs = require("fs");
const files = process.argv.slice(1);
const at = new Map(files.map((f) => [f, 0]));
const rest = new Map(files.map((f) => [f, ""]));
function read() {
  for (const f of files) {
    let buf;
    try { buf = fs.readFileSync(f); } catch { continue; }
    if (buf.length <= at.get(f)) continue;
    const text = rest.get(f) + buf.subarray(at.get(f)).toString("utf8");
    at.set(f, buf.length);
    const lines = text.split("\n");
    rest.set(f, lines.pop());
    for (const l of lines) {
      let j;
      try { j = JSON.parse(l); } catch { continue; }
      if (j.msg === "claimed") console.log(`${j.builder} claimed ${j.job} (attempt ${j.attempt})`);
      else if (j.msg === "job finished") console.log(`${j.builder} finished ${j.job}: ${j.status}, ${j.summary}`);
    }
  }
}
const timer = setInterval(read, 200);
process.on("SIGTERM", () => { clearInterval(timer); read(); process.exit(0); });
' "$BUILDCOORD_HOME/build1.log" "$BUILDCOORD_HOME/build2.log" &
follow_pid=$!
deadline=$((SECONDS + 180))
while :; do
  left=$(bc job list --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log(j.filter(x=>x.status==="queued"||x.status==="running").length)})')
  ((left == 0)) && break
  if ((SECONDS > deadline)); then echo "quickstart: builds did not finish in 180 s" >&2; exit 1; fi
  sleep 1
done
kill -TERM "$follow_pid" 2>/dev/null || true
wait "$follow_pid" 2>/dev/null || true
follow_pid=

step "The queue afterwards"
bc job list --all
if [[ -n $distccd_pid ]]; then
  echo "distccd compiled $(grep -c COMPILE_OK "$BUILDCOORD_HOME/distccd.log" || true) files for the builders"
fi

step "One job's pushed log"
first=$(bc job list --all --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{console.log(JSON.parse(s)[0].id)})')
bc job show "$first"
git --git-dir "$BUILDCOORD_HOME/coordination.git" show "main:$(bc job show "$first" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{console.log(JSON.parse(s).result.log)})')" | tail -n 5

step "What it built (its manifest on main; the files stay on the builder)"
manifest=$(bc job show "$first" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{console.log(JSON.parse(s).result.manifest)})')
git --git-dir "$BUILDCOORD_HOME/coordination.git" show "main:$manifest" |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{for(const a of JSON.parse(s).artifacts)console.log(`${a.name}  ${a.size} bytes  sha256 ${a.sha256}\n  ${a.path}`)})'

if bc msg --help >/dev/null 2>&1; then
  step "A message from build1 to build2"
  bc msg send --builder build1 --to build2 --type info --subject "quickstart done" --body "all $jobs builds finished"
  bc msg list --builder build2
fi

if bc status --help >/dev/null 2>&1; then
  step "The fleet"
  bc status
fi

step "History of main (no heartbeat commits: they live on heartbeat/<builder>)"
git --git-dir "$BUILDCOORD_HOME/coordination.git" log --oneline main | head -n 20
git --git-dir "$BUILDCOORD_HOME/coordination.git" for-each-ref --format='%(refname:short)' refs/heads/heartbeat

echo
echo "quickstart: $jobs builds completed by two agents through one git repository."
