#!/bin/bash
# `make test-load`: run a command (the whole `make test`) beside CPU-bound processes, as a
# busy CI machine runs the suite, so that a test that needs an idle CPU shows itself here.
#
# Owns: the burners' lives. Each one spins until this script is gone (it checks its parent
# every turn), so none outlives it, even when this script is killed with SIGKILL; an ordinary
# exit or interrupt kills them at once. Must not: change anything else on the machine.
# RBX_LOAD_BURNERS: how many (default 2). The exit status is the command's.
set -u
count=${RBX_LOAD_BURNERS:-2}
burners=()
stop() {
    [ ${#burners[@]} -gt 0 ] && kill "${burners[@]}" 2>/dev/null
    wait "${burners[@]}" 2>/dev/null
    burners=()
}
trap stop EXIT
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
for _ in $(seq 1 "$count"); do
    # `kill -0 $PPID` is a shell builtin: the loop stays CPU-bound and ends once we are gone
    sh -c 'while kill -0 $PPID 2>/dev/null; do :; done' &
    burners+=($!)
done
echo "with-cpu-load.sh: $count CPU-bound processes beside: $*" >&2
"$@"
rc=$?
stop
exit $rc
