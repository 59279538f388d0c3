#!/bin/sh
# Runs an MPI program over the task's machines: every node of a gang is in $SPAWN_HOSTFILE; without
# one (a single machine), all ranks run here. Only rank 0's node calls mpirun; the others wait for
# it, since mpirun starts their processes over ssh.
set -eu
program="$1"
shift
ranks_per_node="${MPI_RANKS_PER_NODE:-2}"
if [ "${SPAWN_RANK:-0}" != 0 ]; then
  echo "node rank $SPAWN_RANK: processes are started by rank 0's mpirun"
  exit 0
fi
set -- -np "$((ranks_per_node * ${SPAWN_WORLD_SIZE:-1}))" "./$program" "$@"
if [ -n "${SPAWN_HOSTFILE:-}" ] && [ -s "$SPAWN_HOSTFILE" ]; then
  set -- --hostfile "$SPAWN_HOSTFILE" "$@"
fi
# Root and oversubscription are allowed because instances run the agent as root and local
# machines may have fewer cores than ranks.
exec mpirun --allow-run-as-root --oversubscribe "$@"
