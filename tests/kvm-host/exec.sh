#!/usr/bin/bash
# exec.sh: the last step inside the KVM test host (started by /init with the
# host's bash from the shared /usr). Rebuilds COMMAND's environment and
# working directory from the NUL-separated files run.sh wrote, then execs it.
# NUL separation keeps spaces, quotes, $ and newlines in arguments intact.
run=/.kvmhost/run

mapfile -d '' -t args <"$run/argv"
mapfile -d '' -t envs <"$run/env"
mapfile -d '' -t cwd <"$run/cwd"

# Start from an empty environment: only what run.sh passed through.
while read -r name; do
    unset "$name"
done < <(compgen -e)
for e in "${envs[@]}"; do
    # shellcheck disable=SC2163  # $e is "NAME=value", exported as such
    export "$e"
done
export KRUNLET_IN_KVMHOST=1

if ! cd -- "${cwd[0]}" 2>/dev/null; then
    echo "cannot enter the working directory ${cwd[0]} inside the test host (is it shared? see KRUNLET_KVMHOST_SHARE)" >"$run/error"
    exit 125
fi
if ! type -P -- "${args[0]}" >/dev/null && ! [[ ${args[0]} == */* ]]; then
    echo "kvm-host: ${args[0]}: command not found inside the test host (PATH=$PATH)" >/.kvmhost/stderr.fifo
    exit 127
fi
# The ( ) subshell keeps bash's exec from exporting SHLVL to COMMAND. Our
# stderr is the console, so bash's notice of a signal death stays there.
# The fifos lead to /init's copiers (see init.sh).
( exec -- "${args[@]}" </dev/null >/.kvmhost/stdout.fifo 2>/.kvmhost/stderr.fifo )
