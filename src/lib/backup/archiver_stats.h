// pg_stat_archiver over a connection the caller already holds (walctl
// status and the WAL wait of walctl backup).  Internal to src/lib/backup.
#pragma once

#include <walstore/backup/status.h>

#include "backup/pg_connection.h"

namespace walstore::backup {

// One query on `conn` (a normal, not a replication, connection).  Throws
// Error(kPostgres) when the query fails.
ArchiverStats ReadArchiverStats(PgConnection& conn);

}  // namespace walstore::backup
