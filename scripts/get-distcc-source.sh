#!/usr/bin/env bash
# Obtains the distcc 3.4 source (the upstream tarball Debian ships as
# distcc_3.4+really3.4.orig.tar.gz) from Debian's own package archive, for
# `buildcoord pump restore` (config "distcc_source") and its tests.
#
#   scripts/get-distcc-source.sh [DIR]     default DIR: /var/cache/buildcoord/distcc-src
#
# Prints the tarball's absolute path on stdout (progress goes to stderr).
# Idempotent: when DIR already holds a tarball that unpacks, it is printed at
# once and nothing touches the network.
#
# How: the machine's apt sources (/etc/apt/sources.list.d/*.sources and
# /etc/apt/sources.list) are copied with their type turned into deb-src, and
# `apt-get update` + `apt-get source --download-only distcc` run against a
# PRIVATE apt state under DIR/.apt (removed after success, kept with its logs
# after a failure): the system's sources, lists and caches are never changed,
# so this needs no root unless DIR does. apt checks every file against the
# archive's signed Sources index. Seen on Debian 12: the orig
# tarball arrives while the Debian patch tarball may fail to download (404);
# the orig tarball is all buildcoord needs (it unpacks the tarball itself,
# never with dpkg-source), so that is not an error here.
set -euo pipefail

say() { printf 'get-distcc-source: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

dir=${1:-${BUILDCOORD_DISTCC_SOURCE_DIR:-/var/cache/buildcoord/distcc-src}}
package=distcc
# The upstream version Debian 12 ships ("3.4+really3.4"); any 3.4 orig tarball will do.
pattern='distcc_3.4*.orig.tar.*'

mkdir -p "$dir" || die "cannot create $dir"
dir=$(cd "$dir" && pwd -P)
# Two runs at once (parallel test files, two set-up scripts) take turns.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$dir/.lock" || die "cannot write in $dir"
  flock 9
fi

usable() { tar -tf "$1" >/dev/null 2>&1; }

find_tarball() {
  local f
  for f in "$dir"/$pattern; do
    [[ -f $f && $f != *.partial ]] || continue
    if usable "$f"; then
      printf '%s\n' "$f"
      return 0
    fi
  done
  return 1
}

if found=$(find_tarball); then
  say "already here: $found"
  printf '%s\n' "$found"
  exit 0
fi

command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script needs a Debian-based system (or put a distcc 3.4 tarball in $dir yourself)"

apt_dir="$dir/.apt"
rm -rf "$apt_dir"
mkdir -p "$apt_dir/sources.list.d" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
: >"$apt_dir/sources.list"

# deb822 files: every "Types:" line becomes "Types: deb-src".
n=0
for f in /etc/apt/sources.list.d/*.sources; do
  [[ -f $f ]] || continue
  sed -E 's/^Types:.*/Types: deb-src/' "$f" >"$apt_dir/sources.list.d/$(basename "$f")"
  n=$((n + 1))
done
# One-line format: "deb [opts] URI suite comps" -> "deb-src ...".
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [[ -f $f ]] || continue
  grep -E '^[[:space:]]*deb[[:space:]]' "$f" | sed -E 's/^[[:space:]]*deb[[:space:]]/deb-src /' >>"$apt_dir/sources.list" || true
  n=$((n + 1))
done
((n > 0)) || die "no apt sources found in /etc/apt to make deb-src entries from"

apt_opts=(
  -o "Dir::Etc::SourceList=$apt_dir/sources.list"
  -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache=$apt_dir/cache"
  -o "Dir::Cache::pkgcache=$apt_dir/cache/pkgcache.bin"
  -o "Dir::Cache::srcpkgcache=$apt_dir/cache/srcpkgcache.bin"
  -o "Debug::NoLocking=1"
  -o "APT::Get::List-Cleanup=0"
)
# As root apt downloads as the unprivileged _apt user, which cannot write to
# a private directory; root downloads itself (still hash-checked).
if ((EUID == 0)); then apt_opts+=(-o "APT::Sandbox::User=root"); fi

say "apt-get update (deb-src, private state in $apt_dir)"
if ! apt-get "${apt_opts[@]}" update -q >"$apt_dir/update.log" 2>&1; then
  tail -n 20 "$apt_dir/update.log" >&2
  die "apt-get update of the deb-src indexes failed (log: $apt_dir/update.log)"
fi

work=$(mktemp -d "$dir/.download.XXXXXX")
trap 'rm -rf "$work"' EXIT
say "apt-get source --download-only $package"
set +e
(cd "$work" && apt-get "${apt_opts[@]}" source --download-only "$package") >"$apt_dir/source.log" 2>&1
rc=$?
set -e

got=
for f in "$work"/$pattern; do
  [[ -f $f ]] && usable "$f" && got=$f && break
done
if [[ -z $got ]]; then
  tail -n 20 "$apt_dir/source.log" >&2
  die "apt-get source (exit $rc) left no usable $pattern (log: $apt_dir/source.log)"
fi
mv -f "$apt_dir/source.log" "$dir/apt-source.log"
if ((rc != 0)); then
  say "apt-get source exited $rc but the orig tarball arrived and unpacks (other files failed; see $dir/apt-source.log)"
fi
final="$dir/$(basename "$got")"
mv -f "$got" "$final"
# Keep the .dsc beside it when it came: it records the tarball's checksums.
for f in "$work"/*.dsc; do [[ -f $f ]] && mv -f "$f" "$dir/"; done
# The private indexes (tens of MB) are of no use once the tarball is here.
rm -rf "$apt_dir"
say "got $final"
printf '%s\n' "$final"
