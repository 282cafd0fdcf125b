#!/bin/bash
# The root half of `make test` (what CI runs): prepare the machine, then run the tests as an
# unprivileged user, because rootless-box exists to work without root and tests as root would
# prove nothing about that.
#
# Owns: the Debian packages the tests use, the test user and its subordinate id ranges, a
# private copy of the source tree that user can write. Must not: run any test as root, or change
# anything else on the machine. The exit status is the unprivileged `make test`'s.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "ci-root.sh: must run as root (plain users run 'make test' directly)" >&2
    exit 2
fi

src=$(cd "$(dirname "$0")/.." && pwd)
user=${CI_TEST_USER:-rbxtest}
work=${CI_WORK_DIR:-/var/tmp/rootless-box-ci}

# runc: podman and buildah are compared with --runtime runc (crun refuses hybrid cgroups on these
# machines, see BASELINES.md), and Debian's podman pulls in crun only.
# binutils: PyInstaller strips the binary's libraries with strip(1) (`make test` builds
# dist/rootless-box as the test user, for tests/binary; PyInstaller itself comes from PyPI).
packages=(busybox-static uidmap docker-registry skopeo umoci podman buildah runc debootstrap
          fuse-overlayfs python3-venv hyperfine make tar apache2-utils binutils)
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "ci-root.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q "${missing[@]}"
fi

if ! id "$user" >/dev/null 2>&1; then
    useradd -m -s /bin/bash "$user"
fi
uid=$(id -u "$user")
home=$(getent passwd "$user" | cut -d: -f6)

# newuidmap(1) needs a range in /etc/subuid and /etc/subgid. Debian's useradd adds one, but not
# when the user predates the files; the new range starts past every existing one, so none overlap.
add_subid_range() {
    local file=$1
    touch "$file"
    if grep -q "^$user:" "$file" || grep -q "^$uid:" "$file"; then
        return
    fi
    local start
    start=$(awk -F: 'BEGIN { end = 100000 }
                     NF >= 3 && $2 + $3 > end { end = $2 + $3 }
                     END { print int((end + 65535) / 65536) * 65536 }' "$file")
    echo "$user:$start:65536" >> "$file"
    echo "ci-root.sh: added $user:$start:65536 to $file"
}
add_subid_range /etc/subuid
add_subid_range /etc/subgid

# What a login session would give the user; podman and our runtime state live there.
runtime=/run/user/$uid
if [ ! -d "$runtime" ]; then
    install -d -m 0755 /run/user
    install -d -m 0700 -o "$user" -g "$(id -g "$user")" "$runtime"
fi

if [ -r /proc/sys/kernel/unprivileged_userns_clone ] &&
   [ "$(cat /proc/sys/kernel/unprivileged_userns_clone)" = 0 ]; then
    echo "ci-root.sh: warning: kernel.unprivileged_userns_clone=0; namespace tests will skip" >&2
fi

# A fresh copy each run, extracted by the user itself so that it owns every file. The clone CI
# runs from may sit in a directory other users cannot enter.
rm -rf "$work"
install -d -m 0755 "$work"
install -d -m 0755 -o "$user" -g "$(id -g "$user")" "$work/src"
tar -C "$src" --exclude=./.venv --exclude=./.git --exclude=./build --exclude=./dist \
    --exclude='__pycache__' -cf - . |
    runuser -u "$user" -- tar -C "$work/src" -xf -
# The conformance data (../shared/conformance beside the clone) goes beside the copy too, so
# tests/conformance finds it where it looks: next to the tree.
if [ -d "$src/../shared" ]; then
    install -d -m 0755 -o "$user" -g "$(id -g "$user")" "$work/shared"
    tar -C "$src/../shared" -cf - . | runuser -u "$user" -- tar -C "$work/shared" -xf -
fi

# A clean environment: root's PATH may name directories the user cannot read (pyenv shims),
# and HOME must be the user's. Proxy, pip and CA settings are kept so pip reaches its index.
env_args=(HOME="$home" USER="$user" LOGNAME="$user" SHELL=/bin/bash LANG=C.UTF-8
          PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin
          XDG_RUNTIME_DIR="$runtime" TERM="${TERM:-dumb}")
while IFS= read -r name; do
    env_args+=("$name=${!name}")
done < <(compgen -e | grep -E '^(CI|SOURCE_DATE_EPOCH|RBX_.*|PIP_.*|PYTEST_ADDOPTS|PYTEST_ARGS|SSL_CERT_(FILE|DIR)|REQUESTS_CA_BUNDLE|[Hh][Tt][Tt][Pp][Ss]?_[Pp][Rr][Oo][Xx][Yy]|[Nn][Oo]_[Pp][Rr][Oo][Xx][Yy])$' || true)

echo "ci-root.sh: running the tests as $user (uid $uid) in $work/src"
cd "$work/src"
exec runuser -u "$user" -- env -i "${env_args[@]}" make --no-print-directory -C "$work/src" test
