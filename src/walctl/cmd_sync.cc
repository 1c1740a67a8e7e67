// walctl sync: copies the WAL and the base backups one repository has and
// another lacks (walstore/repositories.h, SyncWal and SyncBackups), so that
// every configured repository can restore the same history on its own.
#include <stdlib.h>
#include <unistd.h>
#include <walstore/backup/copy.h>
#include <walstore/backup/repository.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/repositories.h>

#include <algorithm>
#include <ctime>
#include <cerrno>
#include <cstdio>
#include <filesystem>

#include "command.h"

namespace walstore::walctl {

namespace {

struct SyncOptions {
  bool dry_run = false;
  bool all = false;
  bool verify = false;  // decode what several repositories hold
  bool repair = false;  // verify, and replace damaged copies
};

// The cluster: config / --pgdata, else the first repository that names one.
uint64_t SyncSystemId(RepositorySet& repositories, const std::string& pgdata) {
  std::optional<Error> first;
  for (size_t i = 0; i < repositories.size(); ++i) {
    try {
      return backup::DiscoverSystemId(repositories.storage(i), repositories.config(i), pgdata);
    } catch (const Error& error) {
      if (!first) first = error;
    }
  }
  throw *first;
}

// A private directory for the WAL files on their way; removed at the end.
class WorkDir {
 public:
  WorkDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                          "/walctl-sync.XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) FailErrno(errno, "mkdtemp " + pattern);
    path_ = pattern;
  }
  ~WorkDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

int RunSync(const CommonOptions& common, const SyncOptions& options) {
  Repositories all_repositories(common);
  RepositorySet& repositories = all_repositories.set;
  if (repositories.size() < 2) {
    throw Error(ErrorCode::kConfig, "walctl sync needs at least two repositories",
                "configure them as [[repository]] tables (docs/configuration.md)");
  }
  const uint64_t system_id = SyncSystemId(repositories, common.pgdata);
  // Listed once: a repair keeps every key, and the WAL copies do not change the backups.
  const RepositoryListing listing = ListRepositories(repositories, system_id);
  size_t problems = ReportSyncProblems(repositories, listing.errors);
  WorkDir work;
  if (options.verify || options.repair) {
    const HeldCheckReport held =
        CheckHeldObjects(repositories, listing, system_id, options.repair && !options.dry_run,
                         backup::UtcStampNow(), work.path());
    for (size_t i = 0; i < repositories.size(); ++i) {
      std::printf("%s: decoded %zu objects another repository holds too, repaired %zu\n",
                  repositories.Label(i).c_str(), held.checked[i], held.repaired[i]);
    }
    for (const auto& moved : held.moved_aside) {
      std::printf("MOVED ASIDE: %s: %s -> %s\n", repositories.Label(moved.repository).c_str(),
                  moved.name.c_str(), moved.message.c_str());
    }
    problems += ReportSyncProblems(repositories, held.problems);
  }
  const SyncReport report =
      SyncWal(repositories, listing, system_id, work.path(), options.dry_run, options.all);
  for (size_t i = 0; i < repositories.size(); ++i) {
    std::printf("%s: held %zu WAL files, %s %zu", repositories.Label(i).c_str(),
                report.listed[i], options.dry_run ? "would copy" : "copied", report.copied[i]);
    if (report.below_horizon[i] > 0) {
      std::printf(", left out %zu older than its oldest WAL (pruned there; --all copies them)",
                  report.below_horizon[i]);
    }
    std::printf("\n");
  }
  // Backups after the WAL: SyncWal copied the WAL they need (whatever the
  // horizon) and SyncBackups records a backup only where that WAL is.
  const BackupSyncReport backups =
      SyncBackups(repositories, listing, system_id, options.dry_run, options.all);
  for (size_t i = 0; i < repositories.size(); ++i) {
    std::printf("%s: held %zu backups, %s %zu", repositories.Label(i).c_str(), backups.listed[i],
                options.dry_run ? "would copy" : "copied", backups.copied[i]);
    if (backups.below_horizon[i] > 0) {
      std::printf(", left out %zu older than its oldest backup (pruned there; --all copies them)",
                  backups.below_horizon[i]);
    }
    std::printf("\n");
  }
  std::vector<size_t> copied_into(repositories.size());
  for (size_t i = 0; i < repositories.size(); ++i) {
    copied_into[i] = report.copied[i] + backups.copied[i];
  }
  const std::string downgrade = UnencryptedCopiesWarning(repositories, copied_into);
  if (!downgrade.empty()) {
    Log(LogLevel::kWarning, "{}", downgrade);
    LogHint("set encryption_key_file in that [[repository]] table if it should be encrypted "
            "(what is stored stays as it is)");
  }
  problems += ReportSyncProblems(repositories, report.problems);
  problems += ReportSyncProblems(repositories, backups.problems);
  // What a repository holds now it no longer misses; a miss walpush recorded
  // meanwhile (after the listing) stays.
  if (!options.dry_run && !common.pgdata.empty()) {
    for (size_t i = 0; i < repositories.size(); ++i) {
      ClearBestEffortMisses(common.pgdata + "/pg_wal", repositories.config(i).repo_url,
                            report.held_names[i]);
    }
  }
  return problems == 0 ? 0 : CheckFailedExit();
}

}  // namespace

Command AddSyncCommand(CLI::App& walctl, CommonOptions& common) {
  auto options = std::make_shared<SyncOptions>();
  auto* cmd = walctl.add_subcommand(
      "sync", "copy the WAL and base backups that one configured repository has and another "
              "lacks (verified, "
              "re-encoded with the destination's settings, never overwriting)");
  cmd->add_flag("--dry-run", options->dry_run, "only count what would be copied");
  cmd->add_flag("--all", options->all,
                "also copy WAL older than the oldest WAL a repository holds, and backups older "
                "than its oldest backup (by default those were pruned there on purpose and are "
                "left out)");
  cmd->add_flag("--verify", options->verify,
                "also decode every object that several repositories hold, in each of them, and "
                "report damaged copies and conflicts (reads everything)");
  cmd->add_flag("--repair", options->repair,
                "--verify, and move a damaged copy aside (<system-id>/damaged/<time>/) and "
                "replace it with a verified copy of an intact one");
  return {cmd, [&common, options] { return RunSync(common, *options); }};
}

}  // namespace walstore::walctl
