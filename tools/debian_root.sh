#!/usr/bin/env bash
# The test suite on another Debian's Slurm and Python, in a root filesystem, as root:
# RELEASE trixie (Debian 13: Slurm 24.11, Python 3.13) or testing (forky today:
# the newest Slurm and Python Debian ships, 26.05 and 3.14 in December 2026).
#
#   bash tools/debian_root.sh RELEASE build [ROOT]                  # debootstrap, then the packages
#   bash tools/debian_root.sh RELEASE test [ROOT] [-- PYTEST-ARGS]  # build if needed, copy this
#                                                   # checkout in, run the README's test command there
#   bash tools/debian_root.sh RELEASE shell [ROOT]                  # a shell inside, as the tests see it
#
# ROOT defaults to /var/tmp/volcano-RELEASE: outside the checkout, so the static
# checks never scan it. A finished root is reused as it is: remove it for a new one
# (for testing, with the packages of the day). Every command inside runs in new
# mount and PID namespaces: the host never sees its mounts, and when it ends the
# kernel drops them and kills every daemon left inside, even after a crash or
# kill -9. So nothing is ever left mounted under ROOT.
set -euo pipefail
self=$(realpath -- "${BASH_SOURCE[0]}")
cd "$(dirname -- "$self")/.."

usage="usage: bash tools/debian_root.sh trixie|testing build|test|shell [ROOT] [-- PYTEST-ARGS]"
release=${1:-} command=${2:-}
shift 2 || true
if [[ -n ${1:-} && $1 != -- ]]; then root=$1 && shift; fi
if [[ ${1:-} == -- ]]; then shift; fi # the rest goes to pytest
root=$(realpath -m -- "${root:-/var/tmp/volcano-$release}")
marker=$root/.volcano-root-built
packages=(python3 python3-venv slurmctld slurmd slurm-client munge mariadb-server slurmdbd
    jq ca-certificates git procps util-linux passwd)
copy=/work/volcano-gif # where the checkout goes, inside the root
pip_configs=(/etc/pip.conf /etc/xdg/pip/pip.conf "${HOME:-/root}/.config/pip/pip.conf" "${HOME:-/root}/.pip/pip.conf")

die() { echo "debian_root.sh: $*" >&2; exit 1; }
[[ $release =~ ^[a-z]+$ && $command =~ ^(build|test|shell|_chroot)$ ]] || die "$usage"

# Local paths that the host's pip settings name: folders (find-links, file://
# indexes, whose files lie beside simple/) are bound read-only at the same paths
# inside, files (constraints) copied. The CA bundle is the root's own.
pip_paths() {
    { cat "${pip_configs[@]}" 2>/dev/null || true; printenv | grep '^PIP_' || true; } |
        grep -oE '(file://)?/[^[:space:]]+' | sed -E 's|^file://||; s|/simple/?$||' |
        grep -v '^/etc/ssl/' | sort -u
}

# Run "$@" chrooted in the root, in new mount and PID namespaces (see the top).
inside() {
    unshare --mount --pid --fork --kill-child -- bash "$self" "$release" _chroot "$root" "$@"
}

if [[ $command == _chroot ]]; then # (internal) PID 1 of the new namespaces
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys" # with /sys/fs/cgroup/*: the cgroup v1 controllers
    mount --rbind /dev "$root/dev" # with dev/pts and dev/shm
    mount -t tmpfs tmpfs "$root/run"
    while read -r folder; do
        if [[ -d $folder ]]; then mkdir -p "$root$folder" && mount --bind -o ro "$folder" "$root$folder"; fi
    done < <(pip_paths)
    # A clean environment, plus what the host tells CI, the tests and pip.
    environment=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
        HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive)
    while read -r name; do environment+=("$name=${!name}"); done < <(
        compgen -e | grep -E '^(PIP_[A-Z_]+|VOLCANO_[A-Z_]+|CI|TERM|PYTHONUNBUFFERED)$' || true)
    chroot "$root" /usr/bin/env -i "${environment[@]}" "$@"
    exit # as PID 1: the kernel then kills whatever is left in the namespace
fi

[[ $(id -u) == 0 ]] || die "run this as root (debootstrap, mounts, chroot)"
# One command at a time per root: a test run replaces the copy and clears /tmp inside.
mkdir -p "$(dirname -- "$root")"
exec {lock}>"$root.lock"
flock -n "$lock" || die "$root is in use by another debian_root.sh"

# A mirror (or a snapshot of one) can serve a testing or sid Release past its
# Valid-Until date, which apt refuses: accept it inside the root, and say so.
valid_until() {
    local until
    until=$(sed -n 's/^Valid-Until: //p' "$root"/var/lib/apt/lists/*_Release 2>/dev/null | head -1)
    if [[ -n $until ]] && (($(date -d "$until" +%s) < $(date +%s))); then
        echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/99volcano-valid-until"
        echo "debian_root.sh: the mirror's $release Release expired on $until;" \
            "apt inside accepts it (Acquire::Check-Valid-Until false)"
    fi
}

build() {
    if [[ -e $marker ]]; then return; fi
    # An unfinished root (no marker) is made again; it holds no mounts (see the top).
    if grep -qF " $root/" /proc/self/mountinfo; then die "$root has mounts under it"; fi
    rm -rf -- "$root"
    # The Debian mirror that the host's apt sources name for its own release.
    local host mirror started=$SECONDS
    host=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
    # shellcheck disable=SC2016 # apt's own $(FIELD) placeholders
    mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' |
        awk -v r="$host" '$2 == r { print $1; exit }')
    [[ -n $mirror ]] || die "no Debian mirror for $host in the host's apt sources"
    debootstrap --variant=minbase "$release" "$root" "$mirror" >/dev/null
    echo "debian_root.sh: debootstrap $release $((SECONDS - started)) s"
    valid_until
    # No package may start its daemon (there is no init inside, and ports are shared).
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod +x "$root/usr/sbin/policy-rc.d"
    started=$SECONDS
    inside apt-get update -qq
    inside apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
    echo "debian_root.sh: packages $((SECONDS - started)) s"
    touch "$marker"
}

# The host's name resolution, CA certificates and pip settings, anew at each use.
host_settings() {
    local file
    cp /etc/hosts /etc/resolv.conf "$root/etc/"
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
    for file in "${pip_configs[@]}"; do # a user's settings go to root's home inside
        if [[ -f $file ]]; then install -D -m 644 "$file" "$root${file/#"${HOME:-/root}"//root}"; fi
    done
    while read -r file; do
        if [[ -f $file ]]; then install -D -m 644 "$file" "$root$file"; fi
    done < <(pip_paths)
    inside update-ca-certificates >/dev/null
}

case $command in
build) build ;;
shell) build && host_settings && inside bash -l ;;
test)
    build && host_settings
    # A fresh copy of what a clone has (plus files git would add); no venv, no outputs.
    # The tests that ask git for the project's files get a new repository holding them
    # (this checkout's .git may be a worktree's, which names a folder outside the root).
    rm -rf -- "$root$copy" && mkdir -p "$root$copy"
    git ls-files -z --cached --others --exclude-standard |
        tar --null -T - --ignore-failed-read -cf - | tar -C "$root$copy" -xf -
    # Earlier runs' daemons died with their namespace; clear their files too.
    find "$root/tmp" -mindepth 1 -delete
    started=$SECONDS status=0
    # shellcheck disable=SC2016 # expanded by the bash inside
    inside bash -c 'cd "$1" && git -c init.defaultBranch=main init -q && git add -A &&
        slurmctld -V && python3 -V && python3 -m venv .venv &&
        .venv/bin/pip install -q -e ".[test]" && echo "debian_root.sh: venv $SECONDS s" &&
        exec .venv/bin/python -m pytest "${@:2}"' bash "$copy" "$@" || status=$?
    echo "debian_root.sh: the tests in Debian $release ended with status $status in $((SECONDS - started)) s"
    exit "$status"
    ;;
*) die "$usage" ;;
esac
