#!/bin/bash
# The root half of `make test` (what CI runs): prepare the machine, then run the tests as an
# unprivileged user, because rootless-box exists to work without root and tests as root would
# prove nothing about that.
#
# Owns: the Debian packages the tests use, the test user and its subordinate id ranges, the
# cached debootstrap Debian rootfs tar (RBX_TEST_DEBIAN_TAR), a private copy of the source tree
# that user can write. Must not: run any test as root, or change anything else on the machine.
# The exit status is the unprivileged `make test`'s.
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
# python3-yaml, python3-jsonschema: compose's YAML reader and schema validator (offline first;
# the Makefile's pip install fills in what is missing).
# openssh-client: build --ssh is tested against a real ssh-agent.
# catatonit: --init's pid 1 (podman only recommends it beside tini and dumb-init).
# passt, slirp4netns: the outbound helpers of private networks (their traffic tests also need
# /dev/net/tun open to the test user, and skip, saying so, where it is root-only).
packages=(busybox-static uidmap docker-registry skopeo umoci podman buildah runc debootstrap
          fuse-overlayfs python3-venv hyperfine make tar apache2-utils binutils passt
          slirp4netns python3-yaml python3-jsonschema openssh-client catatonit)
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
# docker-compose 1.29: a client of `system service` (tests/integration/test_api_clients.py);
# without its recommended docker.io, a second docker CLI and a daemon the tests do not want.
if ! dpkg-query -W -f='${Status}' docker-compose 2>/dev/null | grep -q 'install ok installed'; then
    echo "ci-root.sh: installing docker-compose"
    export DEBIAN_FRONTEND=noninteractive
    [ ${#missing[@]} -gt 0 ] || apt-get update -q
    apt-get install -y -q --no-install-recommends docker-compose
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

# A Debian base image (tests/integration/test_debian.py) with no registry: a minbase bookworm made
# by debootstrap as root, so its owners are real, and kept as a tar with numeric owners that the
# test user imports. Made once per machine (CI starts clean, so once per run there); a mirror that
# cannot be reached costs a warning, never the run: the tests that need the tar skip, saying why.
# A tar the caller names in RBX_TEST_DEBIAN_TAR is used as it is.
debian_cache=${CI_DEBIAN_CACHE:-/var/cache/rootless-box-ci}
debian_tar=$debian_cache/debian-bookworm-minbase.tar

# The mirror apt already uses here (a local mirror or proxy is likely the only one reachable):
# the first deb URI of a bookworm suite, deb822 .sources first, then the one-line lists.
debian_mirror() {
    local uri=""
    if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
        uri=$(awk 'BEGIN { RS = ""; FS = "\n" }
                   { types = uris = suites = ""; enabled = "yes"
                     for (i = 1; i <= NF; i++) {
                         if ($i ~ /^#/) continue
                         split($i, kv, ":[ \t]*")
                         key = tolower(kv[1]); val = substr($i, length(kv[1]) + 2)
                         sub(/^[ \t]+/, "", val)
                         if (key == "types") types = val
                         else if (key == "uris") uris = val
                         else if (key == "suites") suites = val
                         else if (key == "enabled") enabled = tolower(val)
                     }
                     if (enabled != "no" && (" " types " ") ~ / deb / &&
                         (" " suites " ") ~ / bookworm /) {
                         split(uris, u, /[ \t]+/); print u[1]; exit
                     } }' /etc/apt/sources.list.d/*.sources 2>/dev/null)
    fi
    if [ -z "$uri" ]; then
        uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
              sed -e 's/#.*//' -e 's/\[[^]]*\]//' |
              awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }')
    fi
    case $uri in
        http://*|https://*|ftp://*|file:/*) echo "${uri%/}" ;;
        *) echo http://deb.debian.org/debian ;;
    esac
}

make_debian_tar() {
    local mirror=$1 tmp
    install -d -m 0755 "$debian_cache" || return 1
    tmp=$(mktemp -d "$debian_cache/.build-XXXXXX") || return 1
    echo "ci-root.sh: debootstrap --variant=minbase bookworm from $mirror (once; cached as $debian_tar)"
    # wget's defaults (900 s, 20 tries per file) would stall a run on a mirror that drops
    # packets: one short probe first, and a bound on the whole debootstrap.
    local ok=0
    if ! wget -q -T 15 -t 2 -O /dev/null "$mirror/dists/bookworm/Release"; then
        echo "ci-root.sh: warning: $mirror/dists/bookworm/Release cannot be fetched" >&2
    elif ! timeout 1200 debootstrap --variant=minbase bookworm "$tmp/rootfs" "$mirror" \
            >"$tmp/debootstrap.log" 2>&1; then
        echo "ci-root.sh: warning: debootstrap failed; its log ends:" >&2
        tail -n 15 "$tmp/debootstrap.log" | sed 's/^/    /' >&2
    else
        # What Docker's debian images leave out: device nodes (the runtime makes /dev), the
        # downloaded packages and lists, and this host's name and resolver.
        (cd "$tmp/rootfs" && rm -rf dev/* var/cache/apt/archives/*.deb var/lib/apt/lists/*_*
         : > etc/hostname && : > etc/resolv.conf)
        if tar --numeric-owner -C "$tmp/rootfs" -cf "$tmp/rootfs.tar" . &&
           chmod 0644 "$tmp/rootfs.tar" && mv -f "$tmp/rootfs.tar" "$debian_tar"; then
            ok=1
        fi
    fi
    # A debootstrap that died may leave proc or sys mounted inside the tree.
    findmnt -rno TARGET | grep -F "$tmp/" | sort -r | xargs -r -d '\n' umount -l || true
    rm -rf --one-file-system "$tmp"
    [ $ok = 1 ]
}

if [ -n "${RBX_TEST_DEBIAN_TAR:-}" ]; then
    echo "ci-root.sh: Debian base image from RBX_TEST_DEBIAN_TAR=$RBX_TEST_DEBIAN_TAR"
elif [ -f "$debian_tar" ] ||
     make_debian_tar "${RBX_DEBIAN_MIRROR:-$(debian_mirror)}"; then
    echo "ci-root.sh: Debian base image: $debian_tar"
    export RBX_TEST_DEBIAN_TAR=$debian_tar
else
    echo "ci-root.sh: warning: no Debian base image; the tests that need it will skip" >&2
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
