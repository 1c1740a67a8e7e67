// A small RAII wrapper over a libpq connection for walctl.  Connection
// settings follow libpq: a conninfo string or URI (walctl -d), then the
// PG* environment variables (PGHOST, PGPORT, PGUSER, ...).  Every failure
// throws Error(kPostgres) with the server's message, except TryOpen's.
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace walstore::backup {

using PgRow = std::vector<std::optional<std::string>>;

struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;

class PgConnection {
 public:
  // `replication`: a physical replication connection (replication=true),
  // which accepts IDENTIFY_SYSTEM, SHOW and BASE_BACKUP.
  PgConnection(const std::string& conninfo, bool replication);
  // For optional diagnostics: a connection that cannot be made is nullptr,
  // with libpq's reason in *why (never an exception).
  static std::unique_ptr<PgConnection> TryOpen(const std::string& conninfo, bool replication,
                                               std::string* why);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  PGconn* get() const { return conn_; }
  int server_version() const { return PQserverVersion(conn_); }

  // Runs one statement (or a multi-statement script); returns the rows of
  // the last result.
  std::vector<PgRow> Query(const std::string& sql);
  // The first column of the first row ("" for NULL).
  std::string QueryValue(const std::string& sql);
  // Throws Error(kPostgres) "<what>: <server message>".
  [[noreturn]] void FailWith(const std::string& what) const;

 private:
  explicit PgConnection(PGconn* conn);
  PGconn* conn_ = nullptr;
};

// Rows of a tuples result.
std::vector<PgRow> RowsOf(const PGresult* result);

}  // namespace walstore::backup
