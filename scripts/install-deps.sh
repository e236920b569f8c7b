#!/usr/bin/env bash
# Installs what buildcoord needs to run and to test on Debian 12, then builds.
# Idempotent and cheap to repeat: every step first checks whether it is needed,
# so a second run makes no network calls and takes well under a second plus
# the TypeScript build.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'install-deps: %s\n' "$*"; }

# The real tools the builds and the integration tests drive.
packages=(
  git
  distcc distcc-pump
  maven libmaven-compiler-plugin-java libmaven-resources-plugin-java
  libmaven-jar-plugin-java libsurefire-java libmaven-install-plugin-java
  maven-debian-helper junit4
  dpkg-dev debhelper fakeroot
  build-essential make gcc
  # the dashboard's browser test (playwright-core drives Debian's chromium; nothing is downloaded)
  chromium
  # the service test runs the OpenRC script with openrc-run (installing it does not change the init system)
  openrc
  # pump restore: rebuilding distcc's include server for this Python
  autoconf automake python3-dev binutils patch
)
# Any JDK will do; only pull Debian's default one when there is no javac.
if ! command -v javac >/dev/null 2>&1; then
  packages+=(default-jdk-headless)
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
  say "apt: not a Debian system, skipping system packages (needed: ${packages[*]})"
else
  missing=()
  for pkg in "${packages[@]}"; do
    # "un" (known but not installed) and "rc" (config left) both count as missing.
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ $status == installed ]] || missing+=("$pkg")
  done

  if ((${#missing[@]} == 0)); then
    say "apt: all ${#packages[@]} packages present"
  else
    if ((EUID == 0)); then
      as_root=()
    elif command -v sudo >/dev/null 2>&1; then
      as_root=(sudo)
    else
      say "apt: missing ${missing[*]}; as root run: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
      exit 1
    fi
    say "apt: installing ${#missing[@]} missing: ${missing[*]}"
    # env(1) rather than an exported variable: sudo drops the environment.
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "${missing[@]}"
    say "apt: done"
  fi
fi

# npm writes node_modules/.package-lock.json after every successful install, so
# it is a truer "installed at" stamp than the node_modules directory's mtime
# (which only moves when a top-level entry is added or removed).
if [[ -f package-lock.json ]]; then
  if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
    say "npm: node_modules missing or older than package-lock.json, running npm ci"
    npm ci --no-audit --no-fund
  else
    say "npm: node_modules up to date"
  fi
elif [[ ! -d node_modules ]]; then
  say "npm: no package-lock.json, running npm install"
  npm install --no-audit --no-fund
else
  say "npm: node_modules present (no package-lock.json)"
fi

say "build: npm run build"
npm run --silent build
say "build: done"
