"""Capabilities: names, Docker's default set, and cutting a process down to a set.

Owns: the capability table (linux/capability.h), Docker's default set (moby
oci/caps/defaults.go), and the bounding-set drop + capset + no_new_privs sequence.
Must not: decide which user the container runs as.
"""

from . import libc

NAMES = ("CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
         "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
         "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
         "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
         "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
         "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
         "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE")
NUMBER = {name: i for i, name in enumerate(NAMES)}

DOCKER_DEFAULT = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
                  "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL",
                  "AUDIT_WRITE")


def mask(names):
    value = 0
    for name in names:
        value |= 1 << NUMBER[name]
    return value


def restrict(keep_names):
    """Drop every capability not in keep_names from the bounding set and empty the ambient
    set, so nothing comes back through exec. Permitted and effective stay whole for now: the
    switch to the container's user needs CAP_SETUID/CAP_SETGID even when they are dropped
    (runc's order too); finish() cuts them once the ids are set."""
    keep = mask(keep_names)
    for cap in range(libc.last_cap() + 1):
        if not keep & (1 << cap):
            libc.prctl(libc.PR_CAPBSET_DROP, cap)
    libc.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_CLEAR_ALL)


def finish(keep_names, uid):
    """After the switch to the container's user: permitted and effective set to keep_names for
    root; a non-root user has none left already (capabilities(7), "Effect of user ID
    changes"), as Docker's non-root users have none. Inheritable emptied."""
    if uid == 0:
        keep = mask(keep_names)
        libc.capset(keep, keep, 0)


def no_new_privs():
    libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)


def last_cap():
    """The highest capability number this kernel knows."""
    return libc.last_cap()
