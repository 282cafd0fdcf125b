"""User namespaces, mounts, capabilities, processes: the only home of raw syscalls."""
