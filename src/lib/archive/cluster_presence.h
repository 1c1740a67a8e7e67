// Internal: making a wrong system id or a wrong repository visible.  walfetch
// answers "missing" for a cluster that has nothing at all in the repository
// (a fresh standby of a fresh primary must start), so a wrong system_id,
// pg_control or repository URL would otherwise end recovery in silence.
#pragma once

#include <walstore/storage.h>

#include <cstdint>

namespace walstore {

// Whether `storage` holds WAL or a backup of cluster `system_id`: one or two
// requests (Storage::AnyBelow of its WAL, then of its backups), whatever the
// repository holds.  Objects kept aside under "<system-id>/damaged/" (sync
// --repair's quarantine) do not count: nothing there serves a restore.
// Throws as List does.
bool HoldsCluster(Storage& storage, uint64_t system_id);

// Logs the WARNING "<repository> holds no WAL and no backup of cluster X; it
// holds <the system ids it holds>" (one short listing for the detail).
// Never throws: a listing that fails only shortens the message.
void WarnClusterAbsent(Storage& storage, uint64_t system_id);

// The diagnostic after a miss in one repository: HoldsCluster, then
// WarnClusterAbsent when it holds nothing.  Never throws and never changes
// the caller's answer: a failing probe is logged at DEBUG.  Costs one or
// two requests (three when the cluster is absent); walfetch, one process
// per file PostgreSQL asks for, calls it at most once per process.
void WarnIfClusterAbsent(Storage& storage, uint64_t system_id);

}  // namespace walstore
