#!/bin/sh
# rootless-box, in one file: this launcher, then a gzip'd tar of the tool built by PyInstaller
# in one-dir mode (pyinstaller.spec writes the file and fills in @ID@ and @SKIP@).
#
# Owns: finding the unpacked tool for this very build under the user's cache directory,
# unpacking it there once (never under TMPDIR, which may be noexec), and exec'ing it. Must not:
# stay as a process (exec: the tool's pid is this pid, so nothing sits between a caller and
# the tool, or between the tool and a container), or change the environment the tool sees
# beyond RBX_LAUNCHER (its own path).
# Later calls cost one sh start and one exec; the tree is keyed by version and content hash,
# so a new build never runs an old tree. Needs only sh, tail, gzip and tar, which every Linux
# has. Remove ~/.cache/rootless-box to reclaim the space of old builds.
id=@ID@
skip=@SKIP@
# the one file's own path, for what must name the tool that outlives this cache (generate
# systemd): the unpacked tree may be removed or replaced by a newer build
case $0 in
    /*) RBX_LAUNCHER=$0 ;;
    *) RBX_LAUNCHER=$(pwd)/$0 ;;
esac
export RBX_LAUNCHER
case ${XDG_CACHE_HOME-} in
    /*) cache=$XDG_CACHE_HOME/rootless-box ;;
    *) cache=${HOME:-/nonexistent}/.cache/rootless-box ;;
esac
if [ -x "$cache/$id/rootless-box" ]; then
    exec "$cache/$id/rootless-box" "$@"
fi

fail() {
    echo "rootless-box: error: cannot unpack rootless-box into $cache: $1" >&2
    echo "hint: $2" >&2
    exit 125
}

umask 022
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
    # no usable home (a system account): a private directory of our own under TMPDIR
    cache=${TMPDIR:-/tmp}/rootless-box-cache-$(id -u)
    mkdir -m 0700 "$cache" 2>/dev/null
    if [ ! -d "$cache" ] || [ -h "$cache" ] || [ ! -O "$cache" ]; then
        fail "not a directory of this user's" "set XDG_CACHE_HOME to a directory of your own"
    fi
    if [ -x "$cache/$id/rootless-box" ]; then
        exec "$cache/$id/rootless-box" "$@"
    fi
fi
# unpackings that a killed call left behind (their pid is gone)
for old in "$cache"/.tmp.*; do
    if [ -d "$old" ] && ! kill -0 "${old##*.tmp.}" 2>/dev/null; then
        rm -rf "$old"
    fi
done
tmp=$cache/.tmp.$$
rm -rf "$tmp"
mkdir "$tmp" || fail "cannot create $tmp" "check the permissions of $cache"
tail -c +$((skip + 1)) "$0" | gzip -dc | tar -xf - -C "$tmp" 2>"$tmp/.err"
if [ ! -e "$tmp/$id/.complete" ]; then
    why=$(head -c 500 "$tmp/.err")
    rm -rf "$tmp"
    fail "${why:-the archive in $0 is truncated}" \
        "check the free space there, and that $0 was copied whole"
fi
# Another call may have unpacked the same tree meanwhile: then this rename fails and its copy,
# identical, is used. Either way the tree appears whole, by one rename.
mv "$tmp/$id" "$cache/" 2>/dev/null
rm -rf "$tmp"
[ -x "$cache/$id/rootless-box" ] || fail "$cache/$id/rootless-box is missing" \
    "remove $cache/$id and run again"
exec "$cache/$id/rootless-box" "$@"
