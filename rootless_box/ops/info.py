"""`info`: what this machine lets a plain user do, and the exact fix for each missing piece.

Owns: the preflight facts (user namespaces allowed, id mapping, storage driver, helpers, paths).
Must not: print (commands/info.py formats), or change the machine.
"""

import os

from .. import config
from ..errors import BoxError
from ..userns import idmap as idmaps
from ..userns.launcher import run_in_userns
from .storage import open_store, probe_driver


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _userns_works(idmap):
    try:
        return run_in_userns(os.getuid, idmap) == 0, ""
    except BoxError as exc:
        return False, exc.message


def gather():
    uname = os.uname()
    uid = os.getuid()
    user = idmaps.user_name(uid)
    facts = {"version": config.VERSION, "kernel": uname.release, "arch": uname.machine,
             "user": "%s (uid %d)" % (user, uid), "data_root": config.data_root(),
             "runtime_root": config.runtime_root()}
    # where `system service` listens by default (Docker's clients take it as DOCKER_HOST)
    facts["api_socket"] = "unix://" + os.path.join(facts["runtime_root"], "docker.sock")
    fixes = []
    idmap = idmaps.plan()
    facts["idmap_mode"] = idmap.mode
    facts["idmap_detail"] = idmap.reason or ""
    if idmap.mode == "subuid":
        facts["uid_map"] = " ".join("%d:%d:%d" % t for t in idmap.uid_map)
        facts["gid_map"] = " ".join("%d:%d:%d" % t for t in idmap.gid_map)
    elif config.idmap_mode() != "single":
        fixes.append(("no subordinate id range: other users (-u, USER) run as uid 0 with "
                      "their ids faked, and chown and privilege drops run under a fake root",
                      idmaps.admin_fix(user)))
    facts["build_and_run_mode"] = _mode_text(idmap)
    ok, why = _userns_works(idmap)
    facts["user_namespaces"] = "usable" if ok else "NOT usable: " + why
    if not ok:
        fixes.append(("user namespaces are not usable", _userns_fix()))
        facts["storage_driver"] = "unknown (needs user namespaces)"
        return facts, fixes
    store = open_store(idmap)
    probe = probe_driver(store, idmap)
    forced = config.storage_driver()
    facts["storage_driver"] = forced if forced != "auto" else probe["driver"]
    for driver, reason in sorted(probe["reasons"].items()):
        facts["storage_%s" % driver] = reason
    if probe["driver"] == "copy":
        fixes.append(("no overlay: every container copies its image (slow, uses disk)",
                      "use a kernel >= 5.11 (overlayfs in user namespaces), or install "
                      "fuse-overlayfs and give users /dev/fuse (chmod 0666 /dev/fuse)"))
    helpers = {name: idmaps.find_helper(name) or "not installed" for name in
               ("newuidmap", "newgidmap", "fuse-overlayfs", "pasta", "slirp4netns")}
    facts.update({"helper_" + k: v for k, v in helpers.items()})
    facts["network"] = ("host (default); private/bridge (own namespace with loopback, -p "
                        "publishes ports through the built-in forwarder); none; "
                        "container:NAME")
    from .ports import bypass_blocker, outbound
    blocker = bypass_blocker(idmap.mode == "single")
    facts["published_ports"] = (
        "TCP servers listen on the host's socket (bind bypass)" if blocker is None else
        "relayed by the forwarder (%s)" % blocker)
    usable, detail = outbound()
    facts["outbound_network"] = ("usable for private networks: " if usable else
                                 "NOT usable for private networks: ") + detail
    if not usable:
        fixes.append(("private networks (-p, --network private) have no outbound traffic: "
                      + detail, "install passt (pasta) or slirp4netns, and give users "
                      "/dev/net/tun (chmod 0666 /dev/net/tun, the usual mode)"))
    from .cgroups import info_line
    usable, detail = info_line()
    facts["resource_limits"] = ("-m, --cpus, --pids-limit and the like apply: " if usable else
                                "-m, --cpus, --pids-limit and the like are refused: ") + detail
    if not usable:
        fixes.append(("resource limits (-m, --cpus, --pids-limit...) need a delegated cgroup "
                      "v2 subtree: " + detail,
                      "boot with systemd.unified_cgroup_hierarchy=1 and log in through "
                      "systemd, which delegates user@UID.service's cgroup"))
    return facts, fixes


def _mode_text(idmap):
    """What RUN steps and containers can and cannot do under the mapping they will get."""
    if idmap.mode != "single":
        return ("real ids: the subordinate range gives the container uids 0-%d, so chown, "
                "setuid, apt's privilege drop and -u work as under Docker"
                % (sum(count for _inner, _outer, count in idmap.uid_map) - 1))
    from ..userns import seccomp
    try:
        seccomp.program()
    except BoxError as exc:
        return "single id, and no fake root here: %s" % exc.message
    return ("fake root (a seccomp filter): setuid/setgid/setgroups/capset and device "
            "mknod succeed without effect; chown succeeds and its owner is recorded by the "
            "container's keeper; owners from layers, COPY --chown, cp -a and chown are "
            "kept in the user.rootlesscontainers xattr and written to every layer; but "
            "getuid() after setuid() still says 0, stat shows root for every file (a tool "
            "that passes stat's ids back, as busybox `chown USER` does, resets them), "
            "symlinks/fifos cannot carry an owner, and `exec -d`'s chowns are not recorded; "
            "a user other than root (-u, USER) runs as uid 0 with its capabilities (more "
            "lenient permission checks than Docker's), getuid() and the rest answering with "
            "its ids but /proc/self/status showing 0, and what it creates is its own in the "
            "layers of builds and commit "
            "(--security-opt seccomp=unconfined turns the filter off)")


def _userns_fix():
    checks = [("/proc/sys/kernel/unprivileged_userns_clone", "0",
               "sysctl -w kernel.unprivileged_userns_clone=1"),
              ("/proc/sys/user/max_user_namespaces", "0",
               "sysctl -w user.max_user_namespaces=15000"),
              ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1",
               "add an AppArmor profile with 'userns,' for rootless-box, or sysctl -w "
               "kernel.apparmor_restrict_unprivileged_userns=0")]
    for path, bad, fix in checks:
        if _read(path) == bad:
            return "an administrator can run: " + fix
    return "check that the kernel has CONFIG_USER_NS and that no seccomp or LSM policy " \
           "forbids unshare(CLONE_NEWUSER)"


def document(facts, fixes):
    """The `info --format` document and the base of the Engine API's /info: Docker's field
    names where one means the same here (ServerVersion, KernelVersion, OSType, Architecture,
    Driver, DockerRootDir, Warnings), every fact under its own name in "Facts", each missing
    piece with its fix in "Fixes"."""
    return {"ServerVersion": facts["version"], "KernelVersion": facts["kernel"],
            "OSType": "linux", "Architecture": facts["arch"],
            "Driver": facts.get("storage_driver", ""), "DockerRootDir": facts["data_root"],
            "SecurityOptions": ["name=rootless", "name=userns"],
            "Warnings": ["WARNING: %s" % problem for problem, _fix in fixes],
            "Facts": facts,
            "Fixes": [{"Problem": problem, "Fix": fix} for problem, fix in fixes]}
