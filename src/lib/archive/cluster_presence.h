// Internal: making a wrong system id visible.  walfetch answers "missing"
// for a cluster that has nothing at all in the repository (a fresh standby
// of a fresh primary must start), so a wrong system_id, pg_control or
// repository URL would otherwise end recovery in silence.
#pragma once

#include <walstore/storage.h>

#include <cstdint>

namespace walstore {

// Called when a file of cluster `system_id` is not in the repository: when
// the repository holds nothing at all of that cluster, logs one WARNING
// naming the system id looked for and the system ids the repository holds.
// Costs one short listing (two when the cluster has nothing), whatever the
// size of the repository.
void WarnIfClusterAbsent(Storage& storage, uint64_t system_id);

}  // namespace walstore
