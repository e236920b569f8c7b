#!/usr/bin/env bash
# Sets up one builder: installs the agent, writes its config, creates its
# user and directories, checks the coordination remote, installs the service.
#
#   scripts/setup_buildN.sh BUILDER_ID --repo URL [--user U] [--ssh-key PATH]
#       [--labels k=v,...] [--distcc-hosts HOSTS] [--init systemd|openrc|none]
#       [--prefix DIR] [--dry-run]
#
#   --repo URL        the coordination repository (ssh://, git@host:path, git://,
#                     https:// without credentials, file://, a path)
#   --user U          run the agent as this existing user (default: the system
#                     user "buildcoord", created if missing; under --prefix: you)
#   --ssh-key PATH    private key for the remote; the agent gets it through
#                     GIT_SSH_COMMAND in /etc/buildcoord/agent.env
#   --labels k=v,...  this builder's labels; --distcc-hosts: its DISTCC_HOSTS
#   --init            service manager (default: the running one, else the installed one)
#   --prefix DIR      install under DIR instead of / (tests, images); services are
#                     then installed as files but not enabled
#   --dry-run         print every action, change nothing
#
# Idempotent: a second run prints "unchanged" for every step and touches no
# file. It never deletes anything: a file it replaces is first copied to
# /var/lib/buildcoord/setup-backups/<time>/. Exit codes: 0 ok, 1 failed,
# 2 usage or invalid input (nothing changed), 3 the remote cannot be reached
# (nothing changed).
set -euo pipefail
umask 022

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() {
  local code=$1
  shift
  printf 'setup: error: %s\n' "$*" >&2
  exit "$code"
}
warn() { printf 'setup: warning: %s\n' "$*" >&2; }

# ---------------------------------------------------------------- arguments

builder='' repo='' user='' user_given=0 ssh_key='' labels='' labels_set=0 distcc='' distcc_set=0
init='' prefix='/' dry_run=0
need_value() { [[ $# -ge 2 && -n $2 ]] || die 2 "$1 needs a value (see --help)"; }
while (($#)); do
  arg=$1
  if [[ $arg == --*=* ]]; then
    set -- "${arg%%=*}" "${arg#*=}" "${@:2}"
    arg=$1
  fi
  case $arg in
    --repo) need_value "$@"; repo=$2; shift ;;
    --user) need_value "$@"; user=$2; user_given=1; shift ;;
    --ssh-key) need_value "$@"; ssh_key=$2; shift ;;
    --labels) [[ $# -ge 2 ]] || die 2 "--labels needs a value"; labels=$2; labels_set=1; shift ;;
    --distcc-hosts) [[ $# -ge 2 ]] || die 2 "--distcc-hosts needs a value"; distcc=$2; distcc_set=1; shift ;;
    --init) need_value "$@"; init=$2; shift ;;
    --prefix) need_value "$@"; prefix=$2; shift ;;
    --dry-run) dry_run=1 ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die 2 "unknown option $arg (see --help)" ;;
    *)
      [[ -z $builder ]] || die 2 "one BUILDER_ID only (got $builder and $arg)"
      builder=$arg
      ;;
  esac
  shift
done

[[ -n $builder ]] || die 2 "BUILDER_ID is required, e.g. build1 (see --help)"
[[ $builder =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]] ||
  die 2 "BUILDER_ID \"$builder\": 1-64 letters, digits, \".\", \"_\" or \"-\", starting with a letter or digit"
[[ -n $repo ]] || die 2 "--repo URL is required (the coordination repository)"

# A token in the URL would end up in /etc/buildcoord/agent.json, in plain text.
if [[ $repo =~ ^([A-Za-z][A-Za-z0-9+.-]*)://([^/@]*)@ ]]; then
  scheme=${BASH_REMATCH[1],,}
  userinfo=${BASH_REMATCH[2]}
  if [[ $userinfo == *:* ]] ||
    { [[ $scheme == http || $scheme == https ]] &&
      [[ $userinfo =~ ^(ghp_|gho_|ghu_|ghs_|ghr_|github_pat_|glpat-|x-access-token|x-token-auth|oauth2) || ${#userinfo} -ge 32 ]]; }; then
    shown="${repo%%://*}://***@${repo#*@}"
    die 2 "--repo $shown carries credentials in the URL; they would be written to disk in plain text. Use an ssh key (--ssh-key PATH with an ssh:// or git@host:path URL), or a git credential helper for the agent's user, and pass the URL without credentials"
  fi
fi

if [[ -n $labels ]]; then
  IFS=',' read -r -a pairs <<<"$labels"
  for kv in "${pairs[@]}"; do
    [[ $kv =~ ^[A-Za-z0-9._-]{1,64}=[^,]{0,256}$ ]] ||
      die 2 "--labels: \"$kv\" is not key=value (key: 1-64 letters, digits, \".\", \"_\", \"-\")"
  done
fi

case $init in
  ''|systemd|openrc|none) ;;
  *) die 2 "--init $init: expected systemd, openrc or none" ;;
esac

# Paths go into sed expressions, unit files and shell: keep them plain.
safe_path_re='^/[A-Za-z0-9._/+@-]*$'
prefix=$(realpath -m -- "$prefix")
[[ $prefix =~ $safe_path_re ]] || die 2 "--prefix $prefix: use an absolute path of letters, digits and ._/+@-"
P=${prefix%/}  # "" for /
in_prefix=0
[[ -n $P ]] && in_prefix=1

if [[ -n $ssh_key ]]; then
  ssh_key=$(realpath -m -- "$ssh_key")
  [[ $ssh_key =~ $safe_path_re ]] || die 2 "--ssh-key $ssh_key: use a path of letters, digits and ._/+@-"
  [[ -f $ssh_key ]] || die 2 "--ssh-key $ssh_key: no such file"
  [[ -r $ssh_key ]] || die 2 "--ssh-key $ssh_key: not readable"
fi

if ((!in_prefix && EUID != 0 && !dry_run)); then
  die 2 "installing into / needs root: run it with sudo (or use --prefix DIR, or --dry-run)"
fi

node_bin=$(command -v node || true)
[[ -n $node_bin ]] || die 1 "node is not on PATH (Node.js 20 or later is needed)"
[[ $node_bin =~ $safe_path_re ]] || die 1 "node is at $node_bin: a path with unusual characters"
[[ -f $src/dist/agent/cli/main.js ]] || die 1 "$src/dist is missing: build first (scripts/install-deps.sh, or npm run build)"

# ---------------------------------------------------------------- layout

etc_dir=$P/etc/buildcoord
state_dir=$P/var/lib/buildcoord
log_dir=$P/var/log/buildcoord
artifacts_dir=$state_dir/artifacts
opt_dir=$P/opt/buildcoord
releases_dir=$opt_dir/releases
current_link=$opt_dir/current
wrapper=$P/usr/local/bin/buildcoord
config_file=$etc_dir/agent.json
env_file=$etc_dir/agent.env
backup_dir=$state_dir/setup-backups/$(date -u +%Y%m%dT%H%M%SZ)

work=$(mktemp -d "${TMPDIR:-/tmp}/buildcoord-setup.XXXXXX")
trap 'rm -rf -- "$work"' EXIT

n_changed=0
n_unchanged=0
report() {
  # report STEP STATUS [DETAIL]
  local step=$1 status=$2 detail=${3:-}
  printf 'setup: %-9s %s%s\n' "$step:" "$status" "${detail:+ ($detail)}"
  case $status in
    unchanged) n_unchanged=$((n_unchanged + 1)) ;;
    created|updated|fixed*|installed|switched|enabled|reloaded) n_changed=$((n_changed + 1)) ;;
    would*) n_changed=$((n_changed + 1)) ;;
  esac
}
# Runs a command, or in a dry run prints it.
act() {
  if ((dry_run)); then
    printf 'setup:           [dry-run] would run:'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

admin_user=$(id -un)
admin_group=$(id -gn)
if ((EUID == 0)); then admin_user=root admin_group=$(id -gn root); fi

printf 'setup: builder %s, repo %s, prefix %s%s\n' "$builder" "$repo" "$prefix" "$( ((dry_run)) && echo ', dry run: nothing will be changed')"

systemd_running=0 openrc_running=0
[[ -d /run/systemd/system ]] && systemd_running=1
[[ -e /run/openrc/softlevel ]] && openrc_running=1
if [[ -z $init ]]; then
  if ((systemd_running)); then init=systemd
  elif ((openrc_running)); then init=openrc
  elif command -v systemctl >/dev/null 2>&1; then init=systemd
  elif command -v openrc-run >/dev/null 2>&1; then init=openrc
  else init=none
  fi
  printf 'setup: service manager: %s (detected; choose with --init)\n' "$init"
fi

# ---------------------------------------------------------------- user (who)

# Decided before anything is checked or changed; created (if need be) only
# after the remote check has passed.
user_exists=1
if [[ -n $user ]]; then
  id -u "$user" >/dev/null 2>&1 || die 2 "--user $user: no such user (create it first, or leave --user out to get the system user buildcoord)"
elif ((in_prefix)); then
  user=$(id -un)
else
  user=buildcoord
  id -u "$user" >/dev/null 2>&1 || user_exists=0
fi
if ((user_exists)); then group=$(id -gn "$user"); else group=$user; fi
[[ $user =~ ^[A-Za-z0-9._][A-Za-z0-9._-]*$ && $group =~ ^[A-Za-z0-9._][A-Za-z0-9._-]*$ ]] ||
  die 2 "user $user / group $group: names with unusual characters are not supported"

# ---------------------------------------------------------------- config (what)

# The config this run would write, computed and checked before anything is
# checked remotely or changed: a bad existing file or a bad flag stops setup
# here with exit 2, so nothing is half installed. The keys setup manages are
# set; every other key a person added is kept. It is checked with the code
# that will read it (the release installed below is a copy of $src): the
# schema, then the agent's own reading of its settings (durations, the lease
# against the heartbeat, DISTCC_HOSTS), the way `buildcoord agent` starts.
existing=''
[[ -f $config_file ]] && existing=$config_file
set +e
BC_EXISTING=$existing BC_FILE=$config_file BC_CODE=$src BC_HOME=$state_dir \
  BC_SCHEMA=$current_link/schemas/agent-config.schema.json BC_BUILDER=$builder BC_REPO=$repo \
  BC_LABELS_SET=$labels_set BC_LABELS=$labels BC_DISTCC_SET=$distcc_set BC_DISTCC=$distcc BC_ARTIFACTS=$artifacts_dir \
  "$node_bin" --input-type=module -e '
import { readFileSync } from "node:fs";
const e = process.env;
const fail = (msg) => {
  // One line: what is wrong, and where.
  console.error(`setup: error: ${msg.replace(/\s*\n\s*/g, " ")}; nothing was changed`);
  process.exit(2);
};
const fixIt = "fix it or move it away, then run setup again";
let doc = {};
if (e.BC_EXISTING) {
  try {
    doc = JSON.parse(readFileSync(e.BC_EXISTING, "utf8"));
  } catch (err) {
    fail(`${e.BC_EXISTING}: not valid JSON (${err.message}); ${fixIt}`);
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) fail(`${e.BC_EXISTING}: not a JSON object; ${fixIt}`);
}
const before = JSON.stringify(doc);
const renamed = doc.builder !== undefined && doc.builder !== e.BC_BUILDER ? doc.builder : undefined;
Object.assign(doc, { $schema: e.BC_SCHEMA, builder: e.BC_BUILDER, repo: e.BC_REPO });
if (e.BC_LABELS_SET === "1") doc.labels = Object.fromEntries(e.BC_LABELS.split(",").filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
if (e.BC_DISTCC_SET === "1") doc.distcc_hosts = e.BC_DISTCC;
doc.artifacts_dir ??= e.BC_ARTIFACTS;

const code = `${e.BC_CODE}/dist/agent`;
const { parseDistccHosts } = await import(`${code}/builds/distcc.js`);
const { validateConfig, formatProblem } = await import(`${code}/model/validate.js`);
const { resolveSettings } = await import(`${code}/cli/cmd-agent.js`);
if (e.BC_DISTCC_SET === "1") {
  try {
    parseDistccHosts(e.BC_DISTCC);
  } catch (err) {
    fail(`--distcc-hosts ${JSON.stringify(e.BC_DISTCC)}: ${err.message} (DISTCC_HOSTS syntax, e.g. "10.0.0.2:3632/8,lzo localhost/2")`);
  }
}
// A problem in a value this run sets comes from its flag; any other from the file.
const fromFlag = { builder: "BUILDER_ID", repo: "--repo", ...(e.BC_LABELS_SET === "1" && { labels: "--labels" }), ...(e.BC_DISTCC_SET === "1" && { distcc_hosts: "--distcc-hosts" }) };
const [p] = validateConfig(doc, e.BC_FILE);
if (p) {
  const flag = fromFlag[p.pointer.split("/")[1]];
  fail(flag ? `${flag}: ${p.pointer}: ${p.message} (for ${e.BC_FILE})` : `${formatProblem(p)}; ${fixIt}`);
}
try {
  resolveSettings({}, {}, doc, e.BC_HOME);
} catch (err) {
  fail(`${e.BC_FILE}: ${err.message}; ${fixIt}`);
}
if (renamed !== undefined) console.error(`setup: warning: ${e.BC_FILE} named builder ${renamed}; it becomes ${e.BC_BUILDER}`);
process.stdout.write(JSON.stringify(doc, null, 2) + "\n");
process.exit(JSON.stringify(doc) === before ? 10 : 0);
' >"$work/agent.json"
rc=$?
set -e
case $rc in
  0) ;;
  # Same settings: keep the file as a person formatted it.
  10) cp -- "$config_file" "$work/agent.json" ;;
  2) exit 2 ;;
  *) die 1 "could not work out the config to write (node exited with $rc, see above); nothing was changed" ;;
esac

# ---------------------------------------------------------------- remote

# Read-only, so a dry run does it too: a setup that cannot reach its remote
# stops before it changes anything. As root it asks as the agent's user when
# that user exists, so the key's permissions and that user's known_hosts are
# checked too.
check_cmd=(env GIT_TERMINAL_PROMPT=0)
ssh_command=''
if [[ -n $ssh_key ]]; then
  ssh_command="ssh -i $ssh_key -o IdentitiesOnly=yes -o BatchMode=yes"
  check_cmd+=("GIT_SSH_COMMAND=$ssh_command")
fi
check_cmd+=(git ls-remote "$repo")
check_as=$(id -un)
if ((EUID == 0 && user_exists)) && [[ $user != "$check_as" ]]; then
  check_cmd=(runuser -u "$user" -- env "HOME=$(getent passwd "$user" | cut -d: -f6)" "${check_cmd[@]}")
  check_as=$user
fi
if command -v timeout >/dev/null 2>&1; then check_cmd=(timeout 60 "${check_cmd[@]}"); fi
set +e
refs=$(cd / && "${check_cmd[@]}" 2>"$work/ls-remote.err")
rc=$?
set -e
if ((rc != 0)); then
  err=$(tr '\n' ' ' <"$work/ls-remote.err")
  hint=''
  ((rc == 124)) && err="no answer in 60 s"
  [[ $err == *"Host key verification failed"* ]] && hint=" (the host key is unknown to $check_as: add it to /etc/ssh/ssh_known_hosts, e.g. with ssh-keyscan, after checking its fingerprint)"
  [[ $err == *"Permission denied"* ]] && hint=' (the key was refused: add its public half as a deploy key with write access)'
  die 3 "cannot reach $repo with git ls-remote as $check_as${ssh_key:+ using $ssh_key}: ${err:-exit status $rc}$hint"
fi
if grep -q $'\trefs/heads/main$' <<<"$refs"; then
  report remote ok "reachable as $check_as, main at $(grep $'\trefs/heads/main$' <<<"$refs" | cut -c1-12)"
else
  report remote ok "reachable as $check_as"
  warn "$repo has no main branch yet: make it a coordination repository with: buildcoord init --repo $repo"
fi

if [[ -n $ssh_key && $check_as != "$user" ]]; then
  warn "checked as $check_as; the agent connects as $user, who must know the remote's host key too (/etc/ssh/ssh_known_hosts, or ~$user/.ssh/known_hosts)"
fi

# ---------------------------------------------------------------- user

if ((user_exists)); then
  report user unchanged "$user:$group exists$( ((in_prefix)) && ((!user_given)) && echo ', the current user: --prefix run')"
else
  act useradd --system --user-group --home-dir /var/lib/buildcoord --no-create-home \
    --shell /usr/sbin/nologin --comment "buildcoord agent" "$user"
  report user "$( ((dry_run)) && echo 'would create' || echo created)" "system user $user"
fi

if [[ -n $ssh_key && $user != "$(id -un)" ]] && ((EUID == 0)) && id -u "$user" >/dev/null 2>&1; then
  runuser -u "$user" -- test -r "$ssh_key" 2>/dev/null ||
    warn "$user cannot read $ssh_key: the agent will not reach the remote (chown $user $ssh_key; chmod 600 $ssh_key)"
fi

if [[ -n $ssh_key && $init == systemd ]]; then
  case $ssh_key in
    /home/*|/root/*|/run/user/*)
      warn "$ssh_key is under /home, /root or /run/user, which the service cannot see (ProtectHome=yes): put the key in $etc_dir or $state_dir/.ssh, owned by $user, mode 600" ;;
  esac
fi
if [[ -n $ssh_key ]] && (( 8#$(stat -c %a -- "$ssh_key") & 8#077 )); then
  warn "$ssh_key can be read by others than its owner: ssh refuses such a key (chmod 600 $ssh_key)"
fi

# ---------------------------------------------------------------- helpers

# "750 owner group"; setuid/setgid/sticky bits a person added are left alone.
perms() {
  local a u g
  read -r a u g < <(stat -c '%a %U %G' -- "$1")
  printf '%s %s %s' "${a: -3}" "$u" "$g"
}

# ensure_dir STEP PATH MODE OWNER GROUP
ensure_dir() {
  local step=$1 path=$2 mode=$3 owner=$4 grp=$5 now
  if [[ ! -e $path ]]; then
    act mkdir -p -- "$path"
    act chmod "$mode" -- "$path"
    ((EUID == 0)) && act chown "$owner:$grp" -- "$path"
    report "$step" "$( ((dry_run)) && echo 'would create' || echo created)" "$path"
    return
  fi
  [[ -d $path ]] || die 1 "$path exists and is not a directory"
  now=$(perms "$path")
  if [[ $now == "${mode#0} $owner $grp" ]]; then
    report "$step" unchanged "$path"
    return
  fi
  act chmod "$mode" -- "$path"
  ((EUID == 0)) && act chown "$owner:$grp" -- "$path"
  report "$step" "$( ((dry_run)) && echo 'would fix' || echo fixed)" "$path: was $now, now ${mode#0} $owner $grp"
}

# install_file STEP SRC DEST MODE OWNER GROUP: DEST gets SRC's content; an
# existing different DEST is first copied to the backup directory.
install_file() {
  local step=$1 from=$2 dest=$3 mode=$4 owner=$5 grp=$6 now tmp
  if [[ -f $dest ]] && cmp -s -- "$from" "$dest"; then
    now=$(perms "$dest")
    if [[ $now == "${mode#0} $owner $grp" ]]; then
      report "$step" unchanged "$dest"
      return 1
    fi
    act chmod "$mode" -- "$dest"
    ((EUID == 0)) && act chown "$owner:$grp" -- "$dest"
    report "$step" "$( ((dry_run)) && echo 'would fix' || echo fixed)" "$dest: was $now, now ${mode#0} $owner $grp"
    return 0
  fi
  local status=created
  if [[ -e $dest || -L $dest ]]; then
    status=updated
    if ((dry_run)); then
      diff -u -- "$dest" "$from" | sed 's/^/setup:             /' || true
    fi
    act mkdir -p -- "$backup_dir$(dirname -- "${dest#"$P"}")"
    act cp -p -- "$dest" "$backup_dir${dest#"$P"}"
  fi
  if ((dry_run)); then
    printf 'setup:           [dry-run] would write %s (%s %s:%s)%s\n' "$dest" "$mode" "$owner" "$grp" "$([[ $status == created && $step == config ]] && echo ':')"
    [[ $status == created && $step == config ]] && sed 's/^/setup:             /' -- "$from"
    report "$step" "would ${status%d}" "$dest"
    return 0
  fi
  mkdir -p -- "$(dirname -- "$dest")"
  # Same directory, then rename: a reader never sees half a file.
  tmp=$(mktemp "$(dirname -- "$dest")/.$(basename -- "$dest").XXXXXX")
  cat -- "$from" >"$tmp"
  chmod "$mode" -- "$tmp"
  ((EUID == 0)) && chown "$owner:$grp" -- "$tmp"
  mv -f -- "$tmp" "$dest"
  local detail=$dest
  [[ $status == updated ]] && detail+=", previous kept in $backup_dir"
  report "$step" "$status" "$detail"
  return 0
}

# Substitutes this installation's paths and user into a service file.
render() {
  sed -e "s#/usr/local/bin/buildcoord#$wrapper#g" \
    -e "s#/etc/buildcoord#$etc_dir#g" \
    -e "s#/var/lib/buildcoord#$state_dir#g" \
    -e "s#/var/log/buildcoord#$log_dir#g" \
    -e "s#^User=buildcoord\$#User=$user#" \
    -e "s#^Group=buildcoord\$#Group=$group#" \
    -e "s#command_user:=buildcoord:buildcoord#command_user:=$user:$group#" \
    -- "$1"
}

# ---------------------------------------------------------------- directories

if ((in_prefix)) && [[ ! -d $prefix ]]; then act mkdir -p -- "$prefix"; fi
ensure_dir etc "$etc_dir" 0755 "$admin_user" "$admin_group"
ensure_dir state "$state_dir" 0750 "$user" "$group"
ensure_dir logs "$log_dir" 0750 "$user" "$group"
ensure_dir artifacts "$artifacts_dir" 0750 "$user" "$group"

# ---------------------------------------------------------------- program

# What the agent needs at run time: its compiled code, the schemas and the
# templates of a new coordination repository (paths.ts finds the package root
# as the directory holding package.json beside schemas/), and the production
# dependencies only (no typescript).
cd "$src"
parts=(package.json dist/agent schemas coordination shared)
[[ -f package-lock.json ]] && parts+=(package-lock.json)
[[ -f README.md ]] && parts+=(README.md)
# patches/distcc/: what `buildcoord pump restore` applies by default.
[[ -d patches ]] && parts+=(patches)
prod_modules=()
# npm's record of what it installed marks the packages only development needs.
if [[ -f node_modules/.package-lock.json ]]; then
  while IFS= read -r rel; do
    [[ -n $rel && -d $rel ]] && prod_modules+=("$rel")
  done < <("$node_bin" -e '
const lock = require(process.argv[1]);
for (const [path, meta] of Object.entries(lock.packages ?? {})) {
  // Nested packages come with their parent directory.
  if (!path.startsWith("node_modules/") || path.slice(13).includes("/node_modules/")) continue;
  if (!meta.dev && !meta.link) console.log(path);
}' "$src/node_modules/.package-lock.json")
fi
if ((${#prod_modules[@]} == 0)); then
  # No npm to ask: everything but the compiler and type definitions.
  for p in node_modules/*/ node_modules/@*/*/; do
    p=${p%/}
    [[ -d $p ]] || continue
    case $p in
      node_modules/typescript|node_modules/@typescript/*|node_modules/@types/*) continue ;;
      node_modules/@*/*) ;;
      node_modules/@*|node_modules/.*) continue ;;
    esac
    prod_modules+=("$p")
  done
fi
parts+=("${prod_modules[@]}")

# The release is named by a hash of exactly what it holds, so a second run
# with the same build finds it already installed.
manifest() {
  (
    cd "$1"
    find "${parts[@]}" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    find "${parts[@]}" -type l -printf '%p -> %l\n' | LC_ALL=C sort
  )
}
manifest "$src" >"$work/manifest"
version=$(sed -n 's/^  "version": "\([^"]*\)",\{0,1\}$/\1/p' "$src/package.json" | head -n 1)
[[ $version =~ ^[A-Za-z0-9.+-]+$ ]] || version=unknown
release=$version-$(sha256sum <"$work/manifest" | cut -c1-12)
release_dir=$releases_dir/$release
cd /

if [[ -d $release_dir ]]; then
  report program unchanged "$release_dir"
elif ((dry_run)); then
  printf 'setup:           [dry-run] would copy %s files from %s into %s\n' "$(wc -l <"$work/manifest")" "$src" "$release_dir"
  report program 'would install' "$release_dir"
else
  mkdir -p -- "$releases_dir"
  incoming=$(mktemp -d "$releases_dir/.incoming.XXXXXX")
  (cd "$src" && cp -R --preserve=mode,timestamps,links --parents -- "${parts[@]}" "$incoming/")
  chmod -R go-w,a+rX -- "$incoming"
  chmod 755 -- "$incoming"
  if ! manifest "$incoming" | cmp -s - "$work/manifest"; then
    rm -rf -- "$incoming"
    die 1 "$src changed while it was being copied (a build running?): run setup again"
  fi
  mv -T -- "$incoming" "$release_dir"
  report program installed "$release_dir"
fi

if [[ $(readlink -- "$current_link" 2>/dev/null || true) == "releases/$release" ]]; then
  report current unchanged "$current_link -> releases/$release"
else
  previous=$(readlink -- "$current_link" 2>/dev/null || true)
  if [[ -e $current_link && ! -L $current_link ]]; then die 1 "$current_link exists and is not a symbolic link"; fi
  if ((dry_run)); then
    act ln -sfn "releases/$release" "$current_link"
    report current 'would switch' "${previous:+from $previous }to releases/$release"
  else
    # A new link renamed over the old one: the switch is atomic.
    ln -sfn -- "releases/$release" "$opt_dir/.current.new"
    mv -T -- "$opt_dir/.current.new" "$current_link"
    report current switched "${previous:+from $previous }to releases/$release"
  fi
fi

{
  echo '#!/bin/sh'
  echo '# buildcoord, installed by scripts/setup_buildN.sh: a new setup run replaces this file.'
  if ((in_prefix)); then
    echo "# Installed under --prefix $prefix: its config file is the default."
    echo ": \"\${BUILDCOORD_CONFIG:=$config_file}\""
    echo 'export BUILDCOORD_CONFIG'
  fi
  echo "exec $node_bin $current_link/dist/agent/cli/main.js \"\$@\""
} >"$work/wrapper"
install_file wrapper "$work/wrapper" "$wrapper" 0755 "$admin_user" "$admin_group" || true

# ---------------------------------------------------------------- config

# Computed and checked at the start (config (what), above).
install_file config "$work/agent.json" "$config_file" 0640 "$admin_user" "$group" || true

if [[ -n $ssh_key ]]; then
  {
    echo '# Written by scripts/setup_buildN.sh: the ssh key the agent uses for the coordination remote.'
    echo "GIT_SSH_COMMAND=\"$ssh_command\""
  } >"$work/agent.env"
  install_file ssh-key "$work/agent.env" "$env_file" 0640 "$admin_user" "$group" || true
fi

# ---------------------------------------------------------------- service

case $init in
  systemd)
    unit=$P/etc/systemd/system/buildcoord.service
    render "$src/scripts/buildcoord.service" >"$work/buildcoord.service"
    unit_changed=0
    install_file service "$work/buildcoord.service" "$unit" 0644 "$admin_user" "$admin_group" && unit_changed=1
    if ((!dry_run)) && command -v systemd-analyze >/dev/null 2>&1; then
      systemd-analyze verify "$unit" >"$work/verify.out" 2>&1 || warn "systemd-analyze verify $unit: $(tr '\n' ' ' <"$work/verify.out")"
    fi
    if ((in_prefix || !systemd_running)); then
      why='systemd is not running'
      ((in_prefix)) && why="--prefix $prefix"
      printf 'setup: enable:   not here (%s); on the builder it would run: systemctl daemon-reload && systemctl enable buildcoord\n' "$why"
    else
      ((unit_changed)) && act systemctl daemon-reload
      if systemctl is-enabled --quiet buildcoord 2>/dev/null; then
        report enable unchanged 'buildcoord.service is enabled'
      else
        act systemctl enable --quiet buildcoord
        report enable "$( ((dry_run)) && echo 'would enable' || echo enabled)" 'buildcoord.service'
      fi
      if ! systemctl is-active --quiet buildcoord 2>/dev/null; then
        echo 'setup: start it with: systemctl start buildcoord'
      elif ((n_changed > 0)); then
        echo 'setup: restart it to apply the changes (a running build is drained first): systemctl restart buildcoord'
      fi
    fi
    ;;
  openrc)
    script=$P/etc/init.d/buildcoord
    render "$src/scripts/buildcoord.openrc" >"$work/buildcoord.openrc"
    sh -n "$work/buildcoord.openrc" || die 1 "scripts/buildcoord.openrc does not parse (sh -n)"
    install_file service "$work/buildcoord.openrc" "$script" 0755 "$admin_user" "$admin_group" || true
    if ((in_prefix || !openrc_running)); then
      why='OpenRC is not running'
      ((in_prefix)) && why="--prefix $prefix"
      printf 'setup: enable:   not here (%s); on the builder it would run: rc-update add buildcoord default\n' "$why"
    else
      if rc-update show default 2>/dev/null | grep -qE '^ *buildcoord \|'; then
        report enable unchanged 'buildcoord is in runlevel default'
      else
        act rc-update add buildcoord default
        report enable "$( ((dry_run)) && echo 'would enable' || echo enabled)" 'buildcoord in runlevel default'
      fi
      echo 'setup: start it with: rc-service buildcoord start'
    fi
    ;;
  none)
    if [[ -n $ssh_key || -f $env_file ]]; then
      # The key reaches git through GIT_SSH_COMMAND in agent.env, which systemd and OpenRC load; a supervisor of your own must too.
      printf 'setup: service:  none (--init none): run "set -a; . %s; set +a; exec %s agent --config %s" under your own supervisor (agent.env carries the ssh key setting)\n' "$env_file" "$wrapper" "$config_file"
    else
      printf 'setup: service:  none (--init none): run "%s agent --config %s" under your own supervisor\n' "$wrapper" "$config_file"
    fi
    ;;
esac

# ---------------------------------------------------------------- doctor

cli=$wrapper
((dry_run)) && [[ ! -x $wrapper ]] && cli="$node_bin $src/dist/agent/cli/main.js"
# `doctor --help` is no test: yargs answers an unknown command's --help with
# the top-level help and exit 0. The command list is.
if $cli --help 2>/dev/null | grep -qE '^ +buildcoord doctor( |$)'; then
  doctor=(env "BUILDCOORD_HOME=$state_dir")
  # The same key as the agent: this run's, else the one set up before.
  doctor_ssh=$ssh_command
  [[ -z $doctor_ssh && -f $env_file ]] && doctor_ssh=$(sed -n 's/^GIT_SSH_COMMAND="\(.*\)"$/\1/p' "$env_file")
  [[ -n $doctor_ssh ]] && doctor+=("GIT_SSH_COMMAND=$doctor_ssh")
  doctor+=($cli doctor --config "$config_file")
  if ((EUID == 0)) && [[ $user != root ]] && id -u "$user" >/dev/null 2>&1; then
    doctor=(runuser -u "$user" -- "${doctor[@]:0:1}" "HOME=$(getent passwd "$user" | cut -d: -f6)" "${doctor[@]:1}")
  fi
  if ((dry_run)); then
    act "${doctor[@]}"
  elif "${doctor[@]}"; then
    echo 'setup: doctor:   ok'
  else
    warn "buildcoord doctor reported problems (above)"
  fi
else
  echo 'setup: doctor:   skipped (this buildcoord has no doctor command yet)'
fi

if ((dry_run)); then
  printf 'setup: dry run done: %d change(s) would be made, %d step(s) unchanged; nothing was changed\n' "$n_changed" "$n_unchanged"
else
  printf 'setup: done: %d changed, %d unchanged\n' "$n_changed" "$n_unchanged"
fi
