// walctl verify: checks a cluster's backups and WAL archive and reports every
// problem it finds rather than stopping at the first.
//
// Thread-safety: RunVerify only reads through `storage`, on the calling
// thread.  The report is a plain struct; src/walctl prints it as text or
// JSON.
#pragma once

#include <walstore/backup/continuity.h>
#include <walstore/backup/inventory.h>
#include <walstore/config.h>
#include <walstore/storage.h>

#include <cstdint>
#include <string>
#include <vector>

namespace walstore::backup {

struct VerifyReport {
  std::vector<std::string> problems;  // one line each: "<what> [<error code name>]"
  // Reported, not problems: they hide nothing and cost only space.
  std::vector<Leftover> leftovers;
  bool leftovers_unknown = false;  // the backend cannot list them
  std::vector<WalGap> gaps;
  uint64_t objects_checked = 0;
  uint64_t bytes_decoded = 0;
  bool ok() const { return problems.empty() && gaps.empty(); }
};

// Checks every backup object and WAL object header (and with `full` decodes
// every object, verifying its SHA-256 and, for backups, every file against
// the backup manifest), and WAL continuity from every backup.  A missing or
// corrupt object is a problem in the report, not an exception.  `jobs`:
// decoder threads per object with `full` (walctl --jobs), resolved once per
// run by the caller (WalctlJobs) and logged as such.
VerifyReport RunVerify(Storage& storage, const Config& config, const Inventory& inventory,
                       bool full, int jobs);

}  // namespace walstore::backup
