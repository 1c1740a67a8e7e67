#include "backup/pg_connection.h"

#include <walstore/error.h>
#include <walstore/log.h>

namespace walstore::backup {
namespace {

// Server notices ("NOTICE:  all required WAL segments have been archived")
// go through walctl's log instead of libpq's raw stderr lines.
void OnNotice(void*, const char* message) {
  std::string text = message;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  bool warning = text.starts_with("WARNING") || text.starts_with("ERROR");
  Log(warning ? LogLevel::kWarning : LogLevel::kInfo, "server: {}", text);
}

// nullptr with the reason in *why when the connection cannot be made.
PGconn* Connect(const std::string& conninfo, bool replication, std::string* why) {
  const char* keys[] = {"dbname", "replication", "fallback_application_name", nullptr};
  // A null value leaves the setting to libpq's defaults and PG* variables.
  const char* values[] = {conninfo.empty() ? nullptr : conninfo.c_str(),
                          replication ? "true" : nullptr, "walctl", nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn && PQstatus(conn) == CONNECTION_OK) {
    PQsetNoticeProcessor(conn, OnNotice, nullptr);
    return conn;
  }
  *why = conn ? PQerrorMessage(conn) : "out of memory";
  while (!why->empty() && why->back() == '\n') why->pop_back();
  PQfinish(conn);
  return nullptr;
}

}  // namespace

PgConnection::PgConnection(PGconn* conn) : conn_(conn) {}

PgConnection::PgConnection(const std::string& conninfo, bool replication) {
  std::string why;
  conn_ = Connect(conninfo, replication, &why);
  if (!conn_) {
    throw Error(ErrorCode::kPostgres, "cannot connect to PostgreSQL: " + why,
                replication ? "walctl backup needs a replication connection: a role with "
                              "REPLICATION, a 'replication' line in pg_hba.conf and a free "
                              "max_wal_senders slot"
                            : "");
  }
}

std::unique_ptr<PgConnection> PgConnection::TryOpen(const std::string& conninfo, bool replication,
                                                    std::string* why) {
  PGconn* conn = Connect(conninfo, replication, why);
  return conn ? std::unique_ptr<PgConnection>(new PgConnection(conn)) : nullptr;
}

PgConnection::~PgConnection() { PQfinish(conn_); }

void PgConnection::FailWith(const std::string& what) const {
  std::string message = PQerrorMessage(conn_);
  while (!message.empty() && message.back() == '\n') message.pop_back();
  Fail(ErrorCode::kPostgres, "{}: {}", what, message);
}

std::vector<PgRow> RowsOf(const PGresult* result) {
  std::vector<PgRow> rows;
  int n = PQntuples(result), cols = PQnfields(result);
  for (int i = 0; i < n; ++i) {
    PgRow row;
    for (int c = 0; c < cols; ++c) {
      if (PQgetisnull(result, i, c)) {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(PQgetvalue(result, i, c));
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<PgRow> PgConnection::Query(const std::string& sql) {
  PgResultPtr result(PQexec(conn_, sql.c_str()));
  auto status = PQresultStatus(result.get());
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK && status != PGRES_EMPTY_QUERY) {
    std::string message = PQresultErrorMessage(result.get());
    while (!message.empty() && message.back() == '\n') message.pop_back();
    Fail(ErrorCode::kPostgres, "query failed: {}", message);
  }
  return RowsOf(result.get());
}

std::string PgConnection::QueryValue(const std::string& sql) {
  auto rows = Query(sql);
  if (rows.empty() || rows[0].empty() || !rows[0][0]) return "";
  return *rows[0][0];
}

}  // namespace walstore::backup
