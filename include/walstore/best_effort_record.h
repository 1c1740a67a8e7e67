// The best-effort record: <dir of %p>/.walstore-best-effort, one line per
// WAL file a best-effort repository did not get (repositories.h):
//   <unix time> <wal file name> <error name> <repository URL>
// The URL is the rest of the line, so it may hold spaces.  walpush appends
// (only once the push as a whole succeeded: a failed push is retried by
// PostgreSQL); `walctl sync --pgdata` removes the lines of the files a
// repository now holds; `walctl status --pgdata` reports it.
//
// Appending and rewriting both hold an exclusive flock on the record, and an
// appender whose file was replaced while it waited appends to the new one,
// so no line is lost between a rewrite's read and its rename.  A rewrite
// keeps the record's owner (walctl sync run as root must not take the file
// away from walpush, which runs as postgres).
#pragma once

#include <ctime>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

namespace walstore {

inline constexpr const char* kBestEffortRecordName = ".walstore-best-effort";

struct BestEffortMisses {
  uint64_t count = 0;  // distinct WAL files
  std::string last_name;
  std::time_t last_time = 0;
  std::string last_error;
};

// One line of the record; nullopt when it does not parse.
struct BestEffortLine {
  std::time_t time = 0;
  std::string name;
  std::string error;
  std::string url;
};
std::optional<BestEffortLine> ParseBestEffortLine(const std::string& line);

// Appends one line for `name` (fsynced).  Never throws: the push succeeded;
// a record that cannot be written is logged as a WARNING.
void RecordBestEffortMiss(const std::string& wal_dir, const std::string& repository_url,
                          const std::string& name, const std::string& error_name);

// The record of the data directory's pg_wal (`wal_dir`), by repository URL
// (as written); empty when there is none.  Lines that do not parse are
// skipped; a WAL file recorded several times counts once.  A record that
// exists but cannot be read throws kLocalIo.
std::map<std::string, BestEffortMisses> ReadBestEffortMisses(const std::string& wal_dir);

// Removes the lines of `repository_url` whose WAL file is in `held` (the
// names the repository now holds); the others stay.  Never throws: a record
// that cannot be rewritten is logged as a WARNING.
void ClearBestEffortMisses(const std::string& wal_dir, const std::string& repository_url,
                           const std::set<std::string>& held);

}  // namespace walstore
