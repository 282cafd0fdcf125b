"""Why an ELF file cannot run: its machine and its dynamic loader, from the headers.

Owns: reading e_machine and PT_INTERP (elf(5)) to explain a failed execve (a binary for another
architecture, a loader missing from the image). This runs inside the container after
pivot_root, where pyelftools' files are no longer reachable, so it is a few struct reads.
Must not: read more than the headers.
"""


import os
import struct

MACHINES = {3: "i386", 8: "mips", 20: "ppc", 21: "ppc64", 22: "s390x", 40: "arm",
            62: "x86_64", 183: "aarch64", 243: "riscv64", 258: "loongarch64"}
_PT_INTERP = 3


def inspect(path):
    """-> (machine name or None, interpreter path or None); (None, None) if not ELF."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 52 or head[:4] != b"\x7fELF":
                return None, None
            is64 = head[4] == 2
            endian = "<" if head[5] == 1 else ">"
            machine = struct.unpack_from(endian + "H", head, 18)[0]
            if is64:
                phoff, = struct.unpack_from(endian + "Q", head, 32)
                phentsize, phnum = struct.unpack_from(endian + "HH", head, 54)
            else:
                phoff, = struct.unpack_from(endian + "I", head, 28)
                phentsize, phnum = struct.unpack_from(endian + "HH", head, 42)
            interp = None
            for i in range(min(phnum, 64)):
                f.seek(phoff + i * phentsize)
                ph = f.read(phentsize)
                if len(ph) < 32 or struct.unpack_from(endian + "I", ph, 0)[0] != _PT_INTERP:
                    continue
                if is64:
                    offset, = struct.unpack_from(endian + "Q", ph, 8)
                    size, = struct.unpack_from(endian + "Q", ph, 32)
                else:
                    offset, = struct.unpack_from(endian + "I", ph, 4)
                    size, = struct.unpack_from(endian + "I", ph, 16)
                f.seek(offset)
                interp = f.read(min(size, 4096)).split(b"\0", 1)[0].decode(errors="replace")
                break
            return MACHINES.get(machine, "machine %d" % machine), interp
    except OSError:
        return None, None


def host_machine():
    return os.uname().machine
