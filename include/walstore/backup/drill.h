// walctl drill: the automated restore test.  Restores a backup into a
// private temporary directory, starts PostgreSQL there (as the postgres user
// when run as root) listening only on a Unix socket in that directory with
// archiving off, waits for recovery to finish, runs sanity queries and the
// user's SQL, reports the measured RTO (restore + recovery time) and RPO
// (now minus the last replayed transaction), then stops the server and
// removes everything, also on failure.
#pragma once

#include <walstore/config.h>
#include <walstore/storage.h>

#include <optional>
#include <string>
#include <vector>

#include <walstore/backup/restore.h>

namespace walstore::backup {

struct DrillOptions {
  RestoreOptions restore;  // backup, target, walfetch...; target_dir is chosen here
  std::string sql_file;    // run after recovery; any error fails the drill
  std::string database = "postgres";
  std::string work_dir;           // parent of the temporary directory; "" = $TMPDIR or /tmp
  std::string pg_bin;             // "" = /usr/lib/postgresql/<major>/bin, else PATH
  double timeout_seconds = 3600;  // for startup and recovery
  std::optional<double> max_rpo_seconds;
  bool keep = false;  // keep the directory (debugging)
};

struct DrillReport {
  bool ok = false;
  std::string backup;
  std::string failure;  // why it failed ("" when ok)
  double restore_seconds = 0;
  double recovery_seconds = 0;
  double rto_seconds = 0;
  std::optional<double> last_transaction_time;
  std::optional<double> rpo_seconds;
  uint32_t timeline = 0;
  std::vector<std::string> databases;
  std::vector<std::string> checks;  // what passed
  std::string sql_output;           // first column of the user SQL's last result
  std::string log_tail;             // server log tail on failure
};

// Runs the drill.  Restore problems throw; failures once the server runs
// (start, recovery, queries, RPO limit) are reported with ok = false.
DrillReport RunDrill(Storage& storage, const Config& config, uint64_t system_id,
                     const DrillOptions& options);

}  // namespace walstore::backup
