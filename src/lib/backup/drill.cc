#include <walstore/backup/drill.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/number.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "backup/pg_connection.h"
#include "common/file_util.h"
#include <walstore/backup/util.h>

namespace walstore::backup {

namespace fs = std::filesystem;

namespace {

struct RunAs {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;
};

// Runs argv (stdout to /dev/null) as `user` when given; returns the exit status.
int RunProgram(const std::vector<std::string>& argv, const std::optional<RunAs>& user) {
  pid_t pid = fork();
  if (pid < 0) FailErrno(errno, "fork");
  if (pid == 0) {
    int null_fd = open("/dev/null", O_WRONLY);
    if (null_fd >= 0) dup2(null_fd, STDOUT_FILENO);
    if (user && (initgroups(user->name.c_str(), user->gid) != 0 || setgid(user->gid) != 0 ||
                 setuid(user->uid) != 0)) {
      _exit(127);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 54329;
  if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  if (fd >= 0) close(fd);
  return port;
}

std::string Tail(const fs::path& file, size_t lines) {
  std::ifstream in(file);
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);) all.push_back(line);
  std::string out;
  for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i)
    out += all[i] + "\n";
  return out;
}

// A value quoted for a libpq conninfo string.
std::string ConninfoQuote(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\\' || c == '\'') out += '\\';
    out += c;
  }
  return out + "'";
}

// A libpq session that reports failures as text instead of throwing: once
// the server runs, every failure must still reach the stop-and-clean-up path.
class Session {
 public:
  explicit Session(const std::string& conninfo) : conn_(PQconnectdb(conninfo.c_str())) {}
  ~Session() { PQfinish(conn_); }
  bool ok() const { return conn_ && PQstatus(conn_) == CONNECTION_OK; }
  std::string error() const {
    std::string m = conn_ ? PQerrorMessage(conn_) : "out of memory";
    while (!m.empty() && m.back() == '\n') m.pop_back();
    return m;
  }
  // Rows of the last result; nullopt (and error()) on failure.
  std::optional<std::vector<PgRow>> Query(const std::string& sql) {
    PgResultPtr result(PQexec(conn_, sql.c_str()));
    auto status = PQresultStatus(result.get());
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK && status != PGRES_EMPTY_QUERY) {
      return std::nullopt;
    }
    return RowsOf(result.get());
  }

 private:
  PGconn* conn_;
};

std::string Value(const std::optional<std::vector<PgRow>>& rows) {
  if (!rows || rows->empty() || (*rows)[0].empty() || !(*rows)[0][0]) return "";
  return *(*rows)[0][0];
}

// The contents of `path`; kLocalIo naming it when it cannot be read.
std::string ReadWholeFile(const std::string& path) {
  FileReader reader(path);
  std::string text;
  uint8_t buffer[16384];
  while (const size_t n = reader.Read(buffer)) text.append(reinterpret_cast<char*>(buffer), n);
  return text;
}

// Writes `text` to a new file `path` (0600), owned by `user` when set.
void WriteDrillFile(const fs::path& path, std::string_view text, const std::optional<RunAs>& user) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) FailErrno(errno, "create " + path.string());
  const ssize_t written = write(fd, text.data(), text.size());
  int error = written < 0 ? errno : static_cast<size_t>(written) != text.size() ? EIO : 0;
  if (close(fd) != 0 && error == 0) error = errno;
  if (error != 0) FailErrno(error, "write " + path.string());
  if (user && chown(path.c_str(), user->uid, user->gid) != 0) {
    FailErrno(errno, "chown " + path.string());
  }
}

// Owns the temporary directory and the server; stops and removes both.
class DrillSandbox {
 public:
  DrillSandbox(fs::path dir, bool keep) : dir_(std::move(dir)), keep_(keep) {}
  ~DrillSandbox() {
    if (started_) Stop();
    std::error_code ec;
    if (!keep_) fs::remove_all(dir_, ec);
  }
  void Started(std::vector<std::string> stop_argv, std::optional<RunAs> user) {
    stop_argv_ = std::move(stop_argv);
    user_ = std::move(user);
    started_ = true;
  }
  void Stop() {
    RunProgram(stop_argv_, user_);
    started_ = false;
  }

 private:
  fs::path dir_;
  bool keep_;
  bool started_ = false;
  std::vector<std::string> stop_argv_;
  std::optional<RunAs> user_;
};

// Waits for the end of recovery; "" when done, else why not.
std::string WaitForRecovery(const std::string& conninfo, const fs::path& data, double deadline) {
  std::string last_error;
  while (NowSeconds() < deadline) {
    if (!PathExists(data / "postmaster.pid")) return "the server stopped during recovery";
    Session s(conninfo);
    if (s.ok()) {
      std::string in_recovery = Value(s.Query("SELECT pg_is_in_recovery()"));
      if (in_recovery == "f") return "";
      if (Value(s.Query("SELECT pg_get_wal_replay_pause_state()")) == "paused") return "";
    } else {
      last_error = s.error();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return "recovery did not finish in time" + (last_error.empty() ? "" : " (" + last_error + ")");
}

// The checks once recovery is over; "" when all passed.
std::string RunChecks(const std::string& conninfo_base, const DrillOptions& options,
                      const std::string& sql, DrillReport& report) {
  Session s(conninfo_base + " dbname=postgres");
  if (!s.ok()) return "cannot connect: " + s.error();
  std::string last = Value(s.Query("SELECT extract(epoch FROM pg_last_xact_replay_timestamp())"));
  if (!last.empty()) {
    report.last_transaction_time =
        ParseNumber<double>(last, ErrorCode::kPostgres, "the last replayed transaction's time");
  }
  std::string tli = Value(s.Query("SELECT timeline_id FROM pg_control_checkpoint()"));
  if (!tli.empty()) {
    report.timeline = ParseNumber<uint32_t>(tli, ErrorCode::kPostgres, "the restored timeline");
  }
  auto dbs = s.Query("SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1");
  if (!dbs) return "cannot list databases: " + s.error();
  for (const auto& row : *dbs) {
    std::string db = row[0].value_or("");
    Session d(conninfo_base + " dbname=" + ConninfoQuote(db));
    auto count = d.ok() ? d.Query("SELECT count(*) FROM pg_class") : std::nullopt;
    if (!count) return fmt::format("database {}: {}", db, d.error());
    report.databases.push_back(db);
  }
  report.checks.push_back(
      fmt::format("connected to {} databases and read their catalogs", report.databases.size()));
  if (!options.sql_file.empty()) {
    Session u(conninfo_base + " dbname=" + ConninfoQuote(options.database));
    auto rows = u.ok() ? u.Query(sql) : std::nullopt;
    if (!rows) return fmt::format("{} failed: {}", options.sql_file, u.error());
    report.sql_output = Value(rows);
    report.checks.push_back(options.sql_file + " ran without error");
  }
  if (report.last_transaction_time) {
    report.rpo_seconds = NowSeconds() - *report.last_transaction_time;
    if (options.max_rpo_seconds && *report.rpo_seconds > *options.max_rpo_seconds) {
      return fmt::format("RPO {} exceeds the limit {}", FormatDuration(*report.rpo_seconds),
                         FormatDuration(*options.max_rpo_seconds));
    }
  } else if (options.max_rpo_seconds) {
    return "no transaction was replayed, so the RPO cannot be measured";
  }
  return "";
}

}  // namespace

DrillReport RunDrill(Storage& storage, const Config& config, uint64_t system_id,
                     const DrillOptions& options) {
  double started = NowSeconds();
  // Read first: an unreadable --sql is the operator's error, found before a long restore.
  const std::string sql = options.sql_file.empty() ? "" : ReadWholeFile(options.sql_file);
  const char* tmpdir = std::getenv("TMPDIR");
  std::string parent = !options.work_dir.empty() ? options.work_dir : tmpdir ? tmpdir : "/tmp";
  std::string pattern = (fs::path(AbsolutePath(parent)) / "walctl-drill-XXXXXX").string();
  if (!mkdtemp(pattern.data())) FailErrno(errno, "mkdtemp in " + parent);
  const fs::path dir = pattern;
  DrillSandbox sandbox(dir, options.keep);

  std::optional<RunAs> user;
  std::string db_user;
  if (geteuid() == 0) {
    std::string name = options.restore.owner.empty() ? "postgres" : options.restore.owner;
    struct passwd* pw = getpwnam(name.c_str());
    if (!pw)
      Fail(ErrorCode::kUsage, "user '{}' not found; walctl drill runs PostgreSQL as it", name);
    user = RunAs{pw->pw_uid, pw->pw_gid, name};
    if (chown(dir.c_str(), pw->pw_uid, pw->pw_gid) != 0) FailErrno(errno, "chown " + dir.string());
    db_user = name;
  } else if (struct passwd* pw = getpwuid(geteuid())) {
    db_user = pw->pw_name;
  }

  RestoreOptions restore = options.restore;
  restore.target_dir = (dir / "data").string();
  restore.archive_off = true;
  if (user) restore.owner = user->name;
  RestoreResult restored = RunRestore(storage, config, system_id, restore);
  DrillReport report;
  report.backup = restored.backup.label;
  report.restore_seconds = NowSeconds() - started;

  const fs::path data = dir / "data";
  const fs::path hba = dir / "drill_hba.conf";
  WriteDrillFile(hba, "local all all trust\n", user);
  if (!PathExists(data / "postgresql.conf")) WriteDrillFile(data / "postgresql.conf", "", user);
  std::string bin = options.pg_bin;
  if (bin.empty()) {
    std::string candidate =
        fmt::format("/usr/lib/postgresql/{}/bin", restored.backup.pg_version / 10000);
    bin = PathExists(candidate + "/pg_ctl") ? candidate : "";
  }
  std::string pg_ctl = bin.empty() ? FindProgram("pg_ctl").value_or("pg_ctl") : bin + "/pg_ctl";
  int port = FreePort();
  std::string server_options = fmt::format(
      "-c port={} -c listen_addresses='' -c unix_socket_directories='{}' -c hba_file='{}' "
      "-c archive_mode=off -c logging_collector=off -c ssl=off",
      port, dir.string(), hba.string());
  double deadline = NowSeconds() + options.timeout_seconds;
  Log(LogLevel::kInfo, "starting PostgreSQL in {} on port {}", data.string(), port);
  std::vector<std::string> start = {pg_ctl,
                                    "-D",
                                    data.string(),
                                    "-l",
                                    (dir / "server.log").string(),
                                    "-o",
                                    server_options,
                                    "-t",
                                    fmt::format("{}", static_cast<int>(options.timeout_seconds)),
                                    "-w",
                                    "start"};
  sandbox.Started({pg_ctl, "-D", data.string(), "-m", "fast", "-w", "stop"}, user);
  double recovery_start = NowSeconds();
  if (RunProgram(start, user) != 0) {
    report.failure = "PostgreSQL did not start (see the server log)";
  } else {
    std::string base = fmt::format("host={} port={} user={} connect_timeout=10",
                                   ConninfoQuote(dir.string()), port, ConninfoQuote(db_user));
    report.failure = WaitForRecovery(base + " dbname=postgres", data, deadline);
    report.recovery_seconds = NowSeconds() - recovery_start;
    report.rto_seconds = NowSeconds() - started;
    if (report.failure.empty()) report.failure = RunChecks(base, options, sql, report);
  }
  if (report.recovery_seconds == 0) report.recovery_seconds = NowSeconds() - recovery_start;
  if (report.rto_seconds == 0) report.rto_seconds = NowSeconds() - started;
  report.ok = report.failure.empty();
  if (!report.ok) report.log_tail = Tail(dir / "server.log", 15);
  sandbox.Stop();
  return report;
}

}  // namespace walstore::backup
