#include <walstore/backup/restore.h>

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <walstore/archive.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/number.h>
#include <walstore/object_format.h>

#include <cerrno>
#include <exception>
#include <filesystem>
#include <fstream>
#include <vector>

#include <walstore/backup/base_backup.h>
#include "backup/extract.h"
#include "backup/manifest.h"
#include "backup/pipeline.h"
#include "backup/progress_reporter.h"
#include <walstore/backup/util.h>

namespace walstore::backup {

namespace fs = std::filesystem;

namespace {

// True when one of the two directories is the other or lies inside it.
bool Overlaps(const fs::path& a, const fs::path& b) {
  const fs::path x = a.lexically_normal(), y = b.lexically_normal();
  auto inside = [](const fs::path& inner, const fs::path& outer) {
    const fs::path rel = inner.lexically_relative(outer);
    return !rel.empty() && *rel.begin() != "..";
  };
  return inside(x, y) || inside(y, x);
}

// A tablespace restored to the place its backup record names: that record
// decides where walctl (often as root) creates and chowns a directory, so it
// must be authenticated (a key configured, no plaintext allowed) and name a
// plain absolute path; otherwise the operator names the place.
void CheckRecordedTablespacePath(const Config& config, const std::string& label,
                                 const BackupObject& archive) {
  const std::string& path = archive.tablespace_path;
  if (!config.key || config.allow_plaintext_objects) {
    throw Error(ErrorCode::kUnauthenticated,
                fmt::format("backup {} puts tablespace {} at \"{}\", but its record is not "
                            "authenticated (no encryption key is configured, or plaintext "
                            "objects are allowed): walctl does not create directories where "
                            "an unauthenticated record says",
                            label, archive.tablespace_oid, path),
                fmt::format("name the place yourself: --tablespace-map \"{}=DIR\"", path));
  }
  const fs::path p(path);
  if (!p.is_absolute() || p.lexically_normal() != p || p.filename().empty() ||
      path.find("/./") != std::string::npos) {
    Fail(ErrorCode::kCorrupt, "backup {} names tablespace {} at \"{}\", which is not a plain "
         "absolute path", label, archive.tablespace_oid, path);
  }
}


// Removes what a failed restore wrote (the directories were empty before).
class CleanupGuard {
 public:
  void Add(const fs::path& dir, bool created) { dirs_.push_back({dir, created}); }
  void Commit() { committed_ = true; }
  ~CleanupGuard() {
    if (committed_) return;
    for (const auto& [dir, created] : dirs_) {
      std::error_code ec;
      if (created) {
        fs::remove_all(dir, ec);
        continue;
      }
      // Best effort, and never a throw from a destructor: increment(ec), not operator++.
      for (fs::directory_iterator it(dir, ec); !ec && it != fs::directory_iterator();
           it.increment(ec)) {
        std::error_code ignored;
        fs::remove_all(it->path(), ignored);
      }
    }
  }

 private:
  std::vector<std::pair<fs::path, bool>> dirs_;
  bool committed_ = false;
};

// Creates `dir` (0700) unless it exists empty; returns true when created.
bool PrepareEmptyDir(const fs::path& dir, const char* what) {
  std::error_code ec;
  if (!IsMissingOrEmptyDir(dir)) {
    const char* problem = fs::is_directory(dir, ec) ? "is not empty" : "is not a directory";
    throw Error(ErrorCode::kUsage, fmt::format("{} {} {}", what, dir.string(), problem),
                "restore into an empty or new directory");
  }
  bool created = fs::create_directories(dir, ec);
  if (ec) FailErrno(ec.value(), "create " + dir.string());
  if (chmod(dir.c_str(), 0700) != 0) FailErrno(errno, "chmod " + dir.string());
  return created;
}

// Decodes every tar of `backup` through `extractor` (into `root` and the
// tablespace directories, or only checking when `root` is empty) and checks
// each object's SHA-256 against the record and the manifest's coverage.
// `tablespace_dirs` holds one directory per tablespace archive, in order.
void ExtractArchives(Storage& storage, const Config& config, const BackupRecord& backup,
                     BackupExtractor& extractor, TargetDir* root,
                     const std::vector<std::unique_ptr<TargetDir>>& tablespace_dirs) {
  // The only symbolic links a data directory has: pg_tblspc/<oid> of this
  // backup's tablespaces, to where each is restored.
  std::map<std::string, std::string> links;
  size_t tablespace_index = 0;
  for (const auto& archive : backup.archives) {
    if (archive.tablespace_oid == 0) continue;
    links[fmt::format("pg_tblspc/{}", archive.tablespace_oid)] =
        root ? tablespace_dirs.at(tablespace_index++)->root() : archive.tablespace_path;
  }
  tablespace_index = 0;
  for (const auto& archive : backup.archives) {
    std::string key = BackupObjectKey(backup.system_id, backup.label, archive.name);
    auto in = storage.OpenRead(key);
    if (!in) Fail(ErrorCode::kCorrupt, "{} is missing from the repository", key);
    ObjectDecoder decoder(*in, DecodeOptionsFor(config), key);  // keys rotated out too
    // Decoding (decrypt, decompress, SHA-256) overlaps with extracting.
    PrefetchReader prefetch(decoder);
    if (archive.tablespace_oid == 0) {
      extractor.Extract(prefetch, root, "", links, key);
    } else {
      TargetDir* dir = root ? tablespace_dirs.at(tablespace_index++).get() : nullptr;
      extractor.Extract(prefetch, dir, fmt::format("pg_tblspc/{}/", archive.tablespace_oid), {},
                        key);
    }
    // Drain to the end so the decoder verifies the object's size and SHA-256.
    uint8_t rest[4096];
    while (prefetch.Read(MutableBytes(rest, sizeof rest)) > 0) {
    }
    if (ToHex(decoder.plaintext_sha256()) != archive.sha256) {
      Fail(ErrorCode::kCorrupt, "{}: SHA-256 differs from the backup record", key);
    }
  }
  auto unseen = extractor.checker().Unseen();
  if (!unseen.empty()) {
    Fail(ErrorCode::kCorrupt, "{} files of the manifest are missing from backup {} (first: {})",
         unseen.size(), backup.label, unseen.front());
  }
}

std::string EscapePercent(const std::string& s) {
  std::string out;
  for (char c : s) {
    out += c;
    if (c == '%') out += '%';
  }
  return out;
}

// The owner restored files get when walctl runs as root.
std::optional<std::pair<uid_t, gid_t>> ChooseOwner(const fs::path& dir, const std::string& owner) {
  if (geteuid() != 0) return std::nullopt;
  if (!owner.empty()) {
    struct passwd* pw = getpwnam(owner.c_str());
    if (!pw) Fail(ErrorCode::kUsage, "unknown user '{}' for --owner", owner);
    return std::make_pair(pw->pw_uid, pw->pw_gid);
  }
  struct stat st {};
  const fs::path parent = fs::path(AbsolutePath(dir)).parent_path();
  if (stat(parent.c_str(), &st) == 0 && st.st_uid != 0) return std::make_pair(st.st_uid, st.st_gid);
  if (struct passwd* pw = getpwnam("postgres")) return std::make_pair(pw->pw_uid, pw->pw_gid);
  return std::nullopt;
}

void ChownTree(const fs::path& root, uid_t uid, gid_t gid) {
  if (lchown(root.c_str(), uid, gid) != 0) FailErrno(errno, "chown " + root.string());
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (lchown(it->path().c_str(), uid, gid) != 0) FailErrno(errno, "chown " + it->path().string());
  }
  if (ec) FailErrno(ec.value(), "chown: could not read the directories under " + root.string());
}

void SyncTree(const fs::path& root) {
  int fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) FailErrno(errno, "open " + root.string());
  int rc = syncfs(fd);
  int err = errno;
  close(fd);
  if (rc != 0) FailErrno(err, "syncfs " + root.string());
}

}  // namespace

uint64_t VerifyBackupContents(Storage& storage, const Config& config, const BackupRecord& backup) {
  std::string manifest_key = BackupObjectKey(backup.system_id, backup.label, kManifestName);
  auto manifest_text = ReadSmallObject(storage, config, manifest_key);
  if (!manifest_text) Fail(ErrorCode::kCorrupt, "{} is missing", manifest_key);
  BackupManifest manifest = ParseManifest(*manifest_text, manifest_key);
  ManifestChecker checker(manifest);
  BackupExtractor extractor(checker, [](uint64_t) {});
  ExtractArchives(storage, config, backup, extractor, nullptr, {});
  return extractor.bytes();
}

void RecoveryTarget::Validate() const {
  int count = (time ? 1 : 0) + (xid ? 1 : 0) + (name ? 1 : 0) + (lsn ? 1 : 0) + (immediate ? 1 : 0);
  if (count > 1) Fail(ErrorCode::kUsage, "give at most one recovery target");
  if (!action.empty() && action != "pause" && action != "promote" && action != "shutdown") {
    Fail(ErrorCode::kUsage, "--target-action must be pause, promote or shutdown");
  }
  if (lsn) ParseLsn(*lsn);
  // PostgreSQL would only refuse these at startup, after the whole restore.
  if (xid) ParseNumber<uint64_t>(*xid, ErrorCode::kUsage, "--target-xid");
  if (!timeline.empty() && timeline != "latest" && timeline != "current") {
    ParseNumber<uint32_t>(timeline, ErrorCode::kUsage, "--target-timeline (else latest or current)");
  }
  if (time && !ParseTimestamp(*time)) {
    Fail(ErrorCode::kUsage, "cannot parse --target-time '{}' (use e.g. '2026-11-21 11:20:14+00')",
         *time);
  }
}

std::string RecoveryTarget::ConfLines() const {
  std::string out;
  auto line = [&](const char* key, const std::string& value) {
    out += fmt::format("{} = {}\n", key, ConfQuote(value));
  };
  if (time) line("recovery_target_time", *time);
  if (xid) line("recovery_target_xid", *xid);
  if (name) line("recovery_target_name", *name);
  if (lsn) line("recovery_target_lsn", *lsn);
  if (immediate) line("recovery_target", "immediate");
  if (any()) line("recovery_target_action", action.empty() ? "promote" : action);
  if (exclusive) line("recovery_target_inclusive", "off");
  if (!timeline.empty()) line("recovery_target_timeline", timeline);
  return out;
}

std::string MakeRestoreCommand(const Config& config, const std::string& walfetch) {
  std::string command = ShellQuote(walfetch);
  // What the config file alone says need not be repeated; what came from the
  // environment or the command line must be, as the server's environment differs.
  Config file_only;
  if (!config.source_path.empty()) {
    command += " --config " + ShellQuote(AbsolutePath(config.source_path));
    file_only = LoadConfig(config.source_path, [](const std::string&) { return std::nullopt; });
    // One of the file's [[repository]] tables, however many (file_only.repo_url
    // is empty then): walfetch with the file alone tries them all, this one
    // with its own settings ([repository.s3], keys, ...), which a URL would lose.
    for (const Config& table : file_only.repositories) {
      if (file_only.repo_url.empty() && SameRepositoryUrl(table.repo_url, config.repo_url)) {
        const Config same = table;
        file_only = same;
        break;
      }
    }
  }
  if (!SameRepositoryUrl(config.repo_url, file_only.repo_url)) {
    command += " --repo " + ShellQuote(config.repo_url);
  }
  if (config.key_file == file_only.key_file) {
    // from the config file: nothing to add
  } else if (!config.key_file.empty()) {
    command += " --key-file " + ShellQuote(AbsolutePath(config.key_file));
  } else if (config.key) {
    Log(LogLevel::kWarning,
        "the encryption key came from WALSTORE_ENCRYPTION_KEY, which restore_command cannot "
        "repeat; set it in the server's environment or use a key file");
  }
  if (config.allow_plaintext_objects && !file_only.allow_plaintext_objects) {
    command = "WALSTORE_ALLOW_PLAINTEXT_OBJECTS=1 " + command;  // sh runs restore_command
  }
  return EscapePercent(command) + " %f %p";
}

RestoreResult RunRestore(Storage& storage, const Config& config, uint64_t system_id,
                         const RestoreOptions& options) {
  double started = NowSeconds();
  options.target.Validate();
  auto records = LoadBackups(storage, config, system_id);
  std::optional<double> target_time =
      options.target.time ? ParseTimestamp(*options.target.time) : std::nullopt;
  std::optional<uint64_t> target_lsn =
      options.target.lsn ? std::optional<uint64_t>(ParseLsn(*options.target.lsn)) : std::nullopt;
  RestoreResult result;
  result.backup = SelectBackup(records, options.backup, target_time, target_lsn);
  const BackupRecord& backup = result.backup;
  Log(LogLevel::kInfo, "restoring backup {} (stopped {} at {})", backup.label,
      FormatUtc(static_cast<std::time_t>(backup.stop_time)), FormatLsn(backup.stop_lsn));

  auto missing = WaitForWal(storage, system_id, RequiredWal(backup), 0);
  if (!missing.empty()) {
    throw Error(ErrorCode::kVerifyFailed,
                fmt::format("backup {} needs WAL {} .. {}, but {} is not in the archive",
                            backup.label, backup.wal_start, backup.wal_stop, missing.front()),
                "the backup cannot reach a consistent state; choose another backup");
  }
  if (options.restore_command.empty() && options.walfetch.empty() && !FindProgram("walfetch")) {
    Fail(ErrorCode::kConfig, "walfetch not found next to walctl or on PATH; use --walfetch");
  }
  result.restore_command =
      !options.restore_command.empty()
          ? options.restore_command
          : MakeRestoreCommand(config, options.walfetch.empty()
                                           ? *FindProgram("walfetch")
                                           : AbsolutePath(options.walfetch));

  std::string manifest_key = BackupObjectKey(system_id, backup.label, kManifestName);
  auto manifest_text = ReadSmallObject(storage, config, manifest_key);
  if (!manifest_text) Fail(ErrorCode::kCorrupt, "{} is missing", manifest_key);
  BackupManifest manifest = ParseManifest(*manifest_text, manifest_key);
  ManifestChecker checker(manifest);

  const fs::path root = AbsolutePath(options.target_dir);
  CleanupGuard cleanup;
  cleanup.Add(root, PrepareEmptyDir(root, "data directory"));
  TargetDir target(root.string());
  std::vector<fs::path> tablespace_dirs;
  std::vector<std::unique_ptr<TargetDir>> tablespace_targets;
  for (const auto& archive : backup.archives) {
    if (archive.tablespace_oid == 0) continue;
    auto it = options.tablespace_map.find(archive.tablespace_path);
    const bool mapped = it != options.tablespace_map.end();
    if (!mapped) CheckRecordedTablespacePath(config, backup.label, archive);
    const fs::path dir = AbsolutePath(mapped ? it->second : archive.tablespace_path);
    if (Overlaps(dir, root)) {
      Fail(ErrorCode::kUsage, "tablespace {} would be restored to \"{}\", which overlaps the data "
           "directory \"{}\"; give it another place with --tablespace-map",
           archive.tablespace_oid, dir.string(), root.string());
    }
    cleanup.Add(dir, PrepareEmptyDir(dir, "tablespace directory"));
    tablespace_dirs.push_back(dir);
    tablespace_targets.push_back(std::make_unique<TargetDir>(dir.string()));
  }

  uint64_t total = 0;
  for (const auto& file : manifest.files) total += file.size;
  ProgressReporter progress(options.progress, total);
  BackupExtractor extractor(checker, [&](uint64_t n) { progress.Advance(n); });
  ExtractArchives(storage, config, backup, extractor, &target, tablespace_targets);
  progress.Finish();
  // A backup taken from a standby holds its standby.signal: left there, the
  // restored cluster would wait for the old primary (primary_conninfo)
  // instead of recovering from the archive to its target and ending recovery.
  if (unlinkat(target.fd(), "standby.signal", 0) == 0) {
    Log(LogLevel::kNotice,
        "backup {} was taken from a standby: its standby.signal is not restored "
        "(walctl restore prepares archive recovery with recovery.signal)",
        backup.label);
  } else if (errno != ENOENT) {
    FailErrno(errno, "could not remove standby.signal in " + root.string());
  }
  target.MakeDirectory("pg_wal", 0700);
  target.MakeDirectory("pg_wal/archive_status", 0700);
  target.WriteFile("backup_manifest", *manifest_text);
  std::string settings =
      fmt::format("\n# Added by walctl restore of backup {} at {}\n", backup.label,
                  FormatUtc(static_cast<std::time_t>(NowSeconds())));
  settings += "restore_command = " + ConfQuote(result.restore_command) + "\n";
  settings += options.target.ConfLines();
  if (options.archive_off) settings += "archive_mode = 'off'\n";
  target.WriteFile("postgresql.auto.conf", settings, true);
  target.WriteFile("recovery.signal", "", true);
  if (fchmod(target.fd(), 0700) != 0) FailErrno(errno, "chmod " + root.string());
  if (auto owner = ChooseOwner(root, options.owner)) {
    ChownTree(root, owner->first, owner->second);
    for (const auto& dir : tablespace_dirs) ChownTree(dir, owner->first, owner->second);
  }
  SyncTree(root);
  for (const auto& dir : tablespace_dirs) SyncTree(dir);
  cleanup.Commit();
  result.files = extractor.files();
  result.bytes = extractor.bytes();
  result.seconds = NowSeconds() - started;
  return result;
}

}  // namespace walstore::backup
