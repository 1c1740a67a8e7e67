// Configuration: one TOML file plus environment overrides.
//
// Precedence, highest first (docs/configuration.md):
//   1. command-line options of the tool
//   2. environment variables (WALSTORE_*, AWS_*)
//   3. the config file: --config PATH, else $WALSTORE_CONFIG, else
//      /etc/walstore/walstore.toml if it exists
//   4. built-in defaults
//
// Secrets (the encryption key, S3 secret keys) are never logged or put in
// error messages; Config::Describe() masks them.
#pragma once

#include <walstore/crypto.h>
#include <walstore/codec.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace walstore {

enum class LogLevel { kError = 0, kWarning = 1, kNotice = 2, kInfo = 3, kDebug = 4 };

struct S3Settings {
  std::string endpoint;        // "" = AWS (https://s3.<region>.amazonaws.com)
  std::string region;          // "" = us-east-1
  std::optional<bool> path_style;  // unset = automatic (path-style for IPs/localhost)
  std::string storage_class;   // "" = bucket default
  std::string sse;             // "", "AES256" (SSE-S3) or "aws:kms"
  std::string sse_kms_key_id;  // with sse = "aws:kms"
  std::string ca_bundle;       // PEM file; "" = system default
  std::string ca_path;         // directory of CA certificates named by subject hash
                               // (openssl rehash); "" = system default
  bool verify_tls = true;
  std::string profile;         // ~/.aws/credentials profile; "" = $AWS_PROFILE or "default"
  std::string access_key_id;   // secret-bearing fields: never log
  std::string secret_access_key;
  std::string session_token;
  uint64_t multipart_threshold = 64ull << 20;  // bytes
  uint64_t part_size = 8ull << 20;             // bytes
  double connect_timeout_seconds = 10;
  double low_speed_seconds = 30;   // abort a transfer below 1 KiB/s for this long
  double retry_total_seconds = 120;  // bounded total time spent retrying
  int max_attempts = 8;
};

inline constexpr int kDefaultPrefetch = 8;
inline constexpr int kMaxPrefetch = 64;
inline constexpr int kDefaultPushAhead = 8;
inline constexpr int kMaxPushAhead = 64;
// Most worker threads `parallel` gets: a larger setting (any non-negative
// integer is accepted, as in earlier releases) is lowered to this where it
// is used (WorkerThreads).  walctl --jobs accepts 1..kMaxParallel.
inline constexpr int kMaxParallel = 64;
// Default thread counts when `parallel` is 0: walpush's encoder, walctl's jobs.
inline constexpr int kDefaultEncodeThreadsCap = 4;
inline constexpr int kDefaultWalctlJobsCap = 8;

struct Config {
  std::string repo_url;                 // required for most commands
  bool every_repository = false;        // --repo all / WALSTORE_REPO=all (walctl backup)
  CompressionSpec compression{Codec::kLz4, 0};
  std::string key_file;                 // "" = no key file
  std::optional<Key> key;               // loaded key (from key_file or WALSTORE_ENCRYPTION_KEY)
  // Keys rotated out: never used to write, still used to read objects that
  // name them (encryption_old_key_files / WALSTORE_ENCRYPTION_OLD_KEY_FILES).
  std::vector<Key> old_keys;
  std::vector<std::string> old_key_files;
  LogLevel log_level = LogLevel::kNotice;
  std::optional<uint64_t> system_id;    // override; normally read from WAL / pg_control
  uint32_t chunk_size = 1u << 20;       // plaintext bytes per object chunk
  int parallel = 0;                     // worker threads (WorkerThreads); 0 = default
  // walfetch read-ahead: segments fetched in the background after each one
  // restored (see prefetch.h); 0 = off.
  int prefetch = kDefaultPrefetch;
  // walpush push-ahead: how many .ready segments after the one being archived
  // a background worker may push early (see push_ahead.h); 0 = off.
  int push_ahead = kDefaultPushAhead;
  // With a key configured, readers refuse unencrypted objects (anyone who can
  // write to the repository can forge one) unless this is set, for a
  // migration from an unencrypted repository (allow_plaintext_objects /
  // WALSTORE_ALLOW_PLAINTEXT_OBJECTS).
  bool allow_plaintext_objects = false;
  S3Settings s3;
  std::string source_path;              // the config file actually read ("" = none)

  // Several repositories (docs/configuration.md, "Several repositories").
  // A [[repository]] table's settings take the place of the top-level ones
  // (which, after the environment and the command line, are the defaults of
  // every table) for that repository only.
  //
  // For walpush, a failure in a best-effort repository does not fail the
  // push: it is logged as a WARNING and recorded (see repositories.h), and
  // `walctl sync` copies what is missing later.  Only in [[repository]]
  // tables; a lone repository is never best-effort.
  bool best_effort = false;
  // Every repository in order of preference, each a complete Config of its
  // own (with `repositories` empty): the [[repository]] tables, or with the
  // single-repository form (`repository = "..."`, WALSTORE_REPO, --repo URL)
  // one copy of this Config.  Empty when no repository is configured.
  // --repo N / WALSTORE_REPO=N (a number) keeps only the N-th table (1 =
  // first), with its own settings; so does a URL that names a table
  // (compared normalised, SameRepositoryUrl).  Any other URL replaces the
  // tables by that one repository with the top-level settings, with a
  // WARNING naming the tables it ignores.
  std::vector<Config> repositories;

  // The keys a reader may use: `key` first, then `old_keys`.
  std::vector<Key> ReadKeys() const;

  // "repository=file:///..., compression=lz4, encryption=on (key id ...)" for
  // --debug output and walctl status; never includes secrets.
  std::string Describe() const;
};

// "repository 2 (s3://bucket/prefix)" for messages about repository
// `index` (0-based) of config.repositories; just the URL when there is one.
std::string RepositoryLabel(const Config& config, size_t index);

// Looks up an environment variable; tests inject their own.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup ProcessEnvironment();

// Command-line options shared by the tools; unset = not given.
struct ConfigOverrides {
  std::optional<std::string> config_path;
  std::optional<std::string> repo_url;
  std::optional<std::string> compression;
  std::optional<std::string> key_file;
  std::optional<LogLevel> log_level;
  std::optional<uint64_t> system_id;
  std::optional<int> prefetch;
  std::optional<int> push_ahead;
  std::optional<int> parallel;  // walctl --jobs
  // --repo all / WALSTORE_REPO=all ("every repository, and copy to each") is
  // taken only where this is set (walctl backup); anywhere else it is kConfig
  // naming walctl backup.
  bool repo_all_allowed = false;
};

// Loads the config file (explicit path, $WALSTORE_CONFIG, or the default path
// when it exists), applies environment overrides, then the command-line
// overrides, and loads the key.  Throws Error(kConfig) with the file name and
// the offending setting.
Config LoadConfig(const ConfigOverrides& overrides, const EnvLookup& env);
//
// Environment overrides: WALSTORE_REPO, WALSTORE_COMPRESSION ("lz4",
// "zstd:9", ...), WALSTORE_ENCRYPTION_KEY_FILE, WALSTORE_ENCRYPTION_KEY (64
// hex characters), WALSTORE_LOG_LEVEL, WALSTORE_SYSTEM_ID, WALSTORE_PREFETCH, WALSTORE_PUSH_AHEAD, WALSTORE_PARALLEL,
// WALSTORE_ALLOW_PLAINTEXT_OBJECTS, and for S3
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION,
// AWS_DEFAULT_REGION, AWS_ENDPOINT_URL, AWS_PROFILE, WALSTORE_S3_* (see docs).
Config LoadConfig(const std::optional<std::string>& explicit_path, const EnvLookup& env);

// The settings of a config file's text as ReadFile applies them, without the
// environment, overrides, range checks or key loading that LoadConfig adds
// (the in-memory entry point for tests and fuzzing).  Throws Error(kConfig)
// naming `source`.
Config ParseConfigText(std::string_view text, const std::string& source);

// "error", "warning", "notice", "info", "debug".  Throws Error(kConfig),
// the message starting with `source` when given.
LogLevel ParseLogLevel(std::string_view text, std::string_view source = {});

inline constexpr const char* kDefaultConfigPath = "/etc/walstore/walstore.toml";

// Worker threads for the `parallel` setting: parallel > 0 gives
// min(parallel, kMaxParallel); 0 gives min(UsableCpus(), default_cap).  The
// one place walpush (default_cap kDefaultEncodeThreadsCap) and walctl
// (kDefaultWalctlJobsCap) turn the setting into threads.
int WorkerThreads(int parallel, int default_cap);

// The configuration a program runs with, loaded once per run (walpush and
// walfetch in main(), walctl in LoadCommandConfig): LoadConfig, then the log
// level set from it, a WARNING for each setting accepted but lowered where it
// is used (parallel above kMaxParallel), and a DEBUG line describing it.
// LoadConfig itself never logs, so a second read of the file (walctl restore
// reads it again for the restored server's restore_command) says nothing twice.
Config LoadProgramConfig(const ConfigOverrides& overrides, const EnvLookup& env);

// CPUs this process may run on: the CPU count of sched_getaffinity, lowered
// to the cgroup v2 quota of /sys/fs/cgroup/cpu.max when that is readable
// and limited; at least 1.
int UsableCpus();

// The CPUs a cgroup v2 cpu.max file's text ("QUOTA PERIOD", both in
// microseconds, or "max PERIOD") allows: ceil(QUOTA / PERIOD), at least 1;
// nullopt for "max" (no limit) or text that is not in that form.
std::optional<int> CpuMaxLimit(std::string_view cpu_max);

}  // namespace walstore
