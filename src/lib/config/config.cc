#include <sys/stat.h>
#include <walstore/config.h>
#include <walstore/error.h>
#include <walstore/log.h>
#include <walstore/number.h>
#include <walstore/storage.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <type_traits>
#include <algorithm>
#include <set>
// Header-only and without exceptions: parse errors come back as values.
#undef TOML_HEADER_ONLY
#undef TOML_SHARED_LIB
#define TOML_HEADER_ONLY 1
#define TOML_EXCEPTIONS 0
// toml++ newer than 3.4.0 or the vendored, patched 3.4.0 (meson.build): releases up to 3.4.0
// abort or run into undefined behaviour on some malformed text (third_party/tomlplusplus/README.md).
// Its parser's internal preconditions are not checked (nor, in the vendored header, assumed):
// malformed text can break some of them (the fuzzer found three), and the parser then goes on
// to its own parse error; the config fuzz target runs it so under ASan and UBSan.
#define TOML_ASSERT(expr) static_cast<void>(0)
#include <toml++/toml.hpp>

namespace walstore {
namespace {

[[noreturn]] void BadSetting(const std::string& source, std::string_view name,
                             std::string_view problem) {
  Fail(ErrorCode::kConfig, "{}: setting \"{}\" {}", source, name, problem);
}

uint64_t ParseUnsigned(std::string_view text, const std::string& source, std::string_view name) {
  if (auto value = TryParseNumber<uint64_t>(text)) return *value;
  BadSetting(source, name, fmt::format("must be a non-negative integer, not \"{}\"", text));
}

bool ParseBool(std::string_view text, const std::string& source, std::string_view name) {
  if (text == "1" || text == "true" || text == "yes" || text == "on") return true;
  if (text == "0" || text == "false" || text == "no" || text == "off") return false;
  BadSetting(source, name, fmt::format("must be true or false, not \"{}\"", text));
}

// The largest duration setting (about 31 years): its milliseconds still fit
// every integer type the code converts them to.
constexpr double kMaxSeconds = 1e9;

// Reads typed values out of one TOML table, refusing unknown names.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string source, std::string prefix)
      : table_(table), source_(std::move(source)), prefix_(std::move(prefix)) {}

  void String(const char* name, std::string& out) {
    if (auto* node = Take(name)) {
      auto value = node->value<std::string>();
      if (!value) BadSetting(source_, prefix_ + name, "must be a string");
      out = *value;
    }
  }
  void Bool(const char* name, bool& out) {
    if (auto* node = Take(name)) {
      auto value = node->value<bool>();
      if (!value) BadSetting(source_, prefix_ + name, "must be true or false");
      out = *value;
    }
  }
  // A non-negative number that T holds: NaN, infinities and values beyond T's
  // range are refused (converting them would be undefined behaviour).
  template <typename T>
  void Number(const char* name, T& out) {
    if (auto* node = Take(name)) {
      auto value = node->value<double>();
      if (!value || !std::isfinite(*value) || *value < 0) {
        BadSetting(source_, prefix_ + name, "must be a non-negative number");
      }
      if constexpr (std::is_integral_v<T>) {
        // 2^digits is exactly representable; every double below it fits in T.
        if (*value >= std::ldexp(1.0, std::numeric_limits<T>::digits)) {
          BadSetting(source_, prefix_ + name,
                     fmt::format("must be at most {}", std::numeric_limits<T>::max()));
        }
      } else if (*value > kMaxSeconds) {  // the floating-point settings are durations
        BadSetting(source_, prefix_ + name, fmt::format("must be at most {:.0f}", kMaxSeconds));
      }
      out = static_cast<T>(*value);
    }
  }
  const toml::node* Take(const char* name) {
    seen_.insert(name);
    return table_.get(name);
  }
  // Throws for names nobody asked for (typos must not be ignored silently).
  void RefuseUnknown() {
    for (const auto& [key, node] : table_) {
      if (!seen_.count(std::string(key.str()))) {
        BadSetting(source_, prefix_ + std::string(key.str()), "is not a known setting");
      }
    }
  }

 private:
  const toml::table& table_;
  std::string source_;
  std::string prefix_;
  std::set<std::string> seen_;
};

void ReadS3Table(const toml::table& table, const std::string& source, S3Settings& s3,
                 const std::string& prefix = "s3.") {
  TableReader r(table, source, prefix);
  r.String("endpoint", s3.endpoint);
  r.String("region", s3.region);
  if (auto* node = r.Take("path_style")) {
    auto value = node->value<bool>();
    if (!value) BadSetting(source, prefix + "path_style", "must be true or false");
    s3.path_style = *value;
  }
  r.String("storage_class", s3.storage_class);
  r.String("sse", s3.sse);
  r.String("sse_kms_key_id", s3.sse_kms_key_id);
  r.String("ca_bundle", s3.ca_bundle);
  r.String("ca_path", s3.ca_path);
  r.Bool("verify_tls", s3.verify_tls);
  r.String("profile", s3.profile);
  r.String("access_key_id", s3.access_key_id);
  r.String("secret_access_key", s3.secret_access_key);
  r.String("session_token", s3.session_token);
  r.Number("multipart_threshold", s3.multipart_threshold);
  r.Number("part_size", s3.part_size);
  r.Number("connect_timeout_seconds", s3.connect_timeout_seconds);
  r.Number("low_speed_seconds", s3.low_speed_seconds);
  r.Number("retry_total_seconds", s3.retry_total_seconds);
  r.Number("max_attempts", s3.max_attempts);
  r.RefuseUnknown();
}

// A [[repository]] table's own settings, applied over the top-level ones once
// the environment and the command line changed those (ResolveRepositories).
struct RepositoryTable {
  std::string label;  // "repository 2" for messages
  std::string url;
  std::optional<CompressionSpec> compression;
  std::optional<std::string> key_file;  // "" = no encryption for this one
  std::optional<std::vector<std::string>> old_key_files;
  std::optional<bool> allow_plaintext_objects;
  bool best_effort = false;
  std::optional<toml::table> s3;  // applied with ReadS3Table over the defaults
};

std::vector<std::string> ReadFileList(const toml::node& node, const std::string& source,
                                      const std::string& name) {
  std::vector<std::string> files;
  const toml::array* list = node.as_array();
  if (list == nullptr) BadSetting(source, name, "must be a list of file names");
  for (const auto& item : *list) {
    auto file = item.value<std::string>();
    if (!file) BadSetting(source, name, "must be a list of file names");
    files.push_back(*file);
  }
  return files;
}

// The URL as compared for duplicates: normalised as the storage layer reads it.
std::string UrlIdentity(const std::string& url) {
  return NormalizeRepositoryUrl(url).value_or(url);
}

std::vector<RepositoryTable> ReadRepositoryTables(const toml::array& tables,
                                                  const std::string& source) {
  std::vector<RepositoryTable> result;
  std::set<std::string> urls;
  if (tables.empty()) BadSetting(source, "repository", "must name at least one repository");
  for (size_t i = 0; i < tables.size(); ++i) {
    RepositoryTable repo;
    repo.label = fmt::format("repository {}", i + 1);
    const std::string prefix = fmt::format("repository[{}].", i + 1);
    const toml::table* table = tables[i].as_table();
    if (table == nullptr) {
      BadSetting(source, "repository",
                 "must be a URL string or [[repository]] tables, not a list of other values");
    }
    TableReader r(*table, source, prefix);
    r.String("url", repo.url);
    if (repo.url.empty()) BadSetting(source, prefix + "url", "is required (the repository's URL)");
    if (!urls.insert(UrlIdentity(repo.url)).second) {
      BadSetting(source, prefix + "url",
                 fmt::format("names \"{}\" a second time: every repository must be another one",
                             repo.url));
    }
    std::string text;
    r.String("compression", text);
    if (!text.empty()) {
      repo.compression = ParseCompressionSpec(
          text, fmt::format("{}: setting \"{}compression\"", source, prefix));
    }
    if (const auto* node = r.Take("encryption_key_file")) {
      auto file = node->value<std::string>();
      if (!file) BadSetting(source, prefix + "encryption_key_file", "must be a string");
      repo.key_file = *file;
    }
    if (const auto* node = r.Take("encryption_old_key_files")) {
      repo.old_key_files = ReadFileList(*node, source, prefix + "encryption_old_key_files");
    }
    if (r.Take("allow_plaintext_objects") != nullptr) {
      bool allow = false;
      r.Bool("allow_plaintext_objects", allow);
      repo.allow_plaintext_objects = allow;
    }
    r.Bool("best_effort", repo.best_effort);
    if (const auto* node = r.Take("s3")) {
      if (!node->is_table()) BadSetting(source, prefix + "s3", "must be a table");
      S3Settings check;  // refuses what ReadS3Table refuses, now rather than later
      ReadS3Table(*node->as_table(), source, check, prefix + "s3.");
      repo.s3 = *node->as_table();
    }
    r.RefuseUnknown();
    result.push_back(std::move(repo));
  }
  if (std::all_of(result.begin(), result.end(), [](const auto& r) { return r.best_effort; })) {
    BadSetting(source, "repository", "has only best_effort repositories: at least one must "
               "not be, or nothing is ever known to be archived");
  }
  return result;
}

// The settings of a parsed config file (`path` names it in messages); returns
// its [[repository]] tables.
std::vector<RepositoryTable> ReadTable(const toml::parse_result& parsed, const std::string& path,
                                       Config& config) {
  if (!parsed) {
    const auto& error = parsed.error();
    const auto& where = error.source().begin;
    Fail(ErrorCode::kConfig, "{}:{}:{}: {}", path, where.line, where.column, error.description());
  }
  const toml::table& root = parsed.table();
  TableReader r(root, path, "");
  std::vector<RepositoryTable> tables;
  if (const auto* node = r.Take("repository")) {
    if (const auto* list = node->as_array()) {
      tables = ReadRepositoryTables(*list, path);
    } else {
      r.String("repository", config.repo_url);
    }
  }
  std::string text;
  r.String("compression", text);
  if (!text.empty()) {
    config.compression = ParseCompressionSpec(text, fmt::format("{}: setting \"compression\"", path));
  }
  r.String("encryption_key_file", config.key_file);
  if (auto* node = r.Take("encryption_old_key_files")) {
    config.old_key_files = ReadFileList(*node, path, "encryption_old_key_files");
  }
  text.clear();
  r.String("log_level", text);
  if (!text.empty()) config.log_level = ParseLogLevel(text, fmt::format("{}: setting \"log_level\"", path));
  if (auto* node = r.Take("system_id")) {
    // Only an integer node: toml++ 3.4 converts a float (6E31) to int64_t unchecked.
    if (const auto* n = node->as_integer(); n != nullptr && n->get() > 0) {
      config.system_id = static_cast<uint64_t>(n->get());
    } else if (auto s = node->value<std::string>()) {
      config.system_id = ParseUnsigned(*s, path, "system_id");
    } else {
      BadSetting(path, "system_id", "must be the cluster's system identifier");
    }
  }
  r.Number("chunk_size", config.chunk_size);
  r.Number("parallel", config.parallel);
  r.Number("prefetch", config.prefetch);
  r.Number("push_ahead", config.push_ahead);
  r.Bool("allow_plaintext_objects", config.allow_plaintext_objects);
  if (auto* node = r.Take("s3")) {
    if (!node->is_table()) BadSetting(path, "s3", "must be a table ([s3])");
    ReadS3Table(*node->as_table(), path, config.s3);
  }
  r.RefuseUnknown();
  config.source_path = path;
  return tables;
}

// Fills config.repositories: each table over a copy of the top-level
// settings (keys loaded when `load_keys`), or the single repository.
// `selection` is --repo / WALSTORE_REPO: a number keeps that table only, a
// URL naming a table (normalised) that table, any other URL replaces the
// tables (with a WARNING naming them).
void ResolveRepositories(std::vector<RepositoryTable> tables,
                         const std::optional<std::string>& selection, bool load_keys,
                         Config& config) {
  if (selection && !selection->empty()) {
    if (const auto number = TryParseNumber<uint64_t>(*selection)) {
      if (*number == 0 || *number > tables.size()) {
        Fail(ErrorCode::kConfig, "--repo / WALSTORE_REPO {} names no repository: {}", *selection,
             tables.empty() ? std::string("the configuration has no [[repository]] tables")
                            : fmt::format("there are {} [[repository]] tables", tables.size()));
      }
      RepositoryTable chosen = std::move(tables[*number - 1]);
      chosen.best_effort = false;  // chosen alone, it is the one that counts
      tables = {std::move(chosen)};
    } else if (const auto named = std::find_if(
                   tables.begin(), tables.end(),
                   [&](const RepositoryTable& t) { return SameRepositoryUrl(t.url, *selection); });
               named != tables.end()) {
      RepositoryTable chosen = std::move(*named);  // with its own settings, as --repo N
      chosen.best_effort = false;
      tables = {std::move(chosen)};
    } else {
      if (!tables.empty()) {
        std::string ignored;
        for (const auto& table : tables) ignored += (ignored.empty() ? "" : ", ") + table.url;
        Log(LogLevel::kWarning,
            "--repo / WALSTORE_REPO \"{}\" is none of the configured [[repository]] tables: "
            "it is used alone with the top-level settings, and the tables ({}) are ignored",
            *selection, ignored);
      }
      tables.clear();
      config.repo_url = *selection;
    }
  }
  config.repositories.clear();
  if (tables.empty()) {
    if (!config.repo_url.empty()) config.repositories.push_back(config);
    return;
  }
  config.repo_url.clear();  // code that ignores `repositories` must not pick one
  for (auto& table : tables) {
    Config repo = config;
    repo.repo_url = table.url;
    if (table.compression) repo.compression = *table.compression;
    if (table.key_file) {
      repo.key_file = *table.key_file;
      repo.key.reset();
      if (load_keys && !repo.key_file.empty()) repo.key = LoadKeyFile(repo.key_file);
    }
    if (table.old_key_files) {
      repo.old_key_files = *table.old_key_files;
      repo.old_keys.clear();
      if (load_keys) {
        for (const auto& file : repo.old_key_files) repo.old_keys.push_back(LoadKeyFile(file));
      }
    }
    if (table.allow_plaintext_objects) repo.allow_plaintext_objects = *table.allow_plaintext_objects;
    repo.best_effort = table.best_effort;
    if (table.s3) ReadS3Table(*table.s3, config.source_path, repo.s3);
    config.repositories.push_back(std::move(repo));
  }
}

std::vector<RepositoryTable> ReadFile(const std::string& path, Config& config) {
  return ReadTable(toml::parse_file(path), path, config);
}

bool FileExists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

void ApplyEnvironment(const EnvLookup& env, Config& config) {
  auto get = [&](const char* name) -> std::optional<std::string> {
    auto value = env(name);
    if (value && value->empty()) return std::nullopt;
    return value;
  };
  if (auto v = get("WALSTORE_COMPRESSION")) {
    config.compression = ParseCompressionSpec(*v, "environment variable WALSTORE_COMPRESSION");
  }
  if (auto v = get("WALSTORE_LOG_LEVEL")) {
    config.log_level = ParseLogLevel(*v, "environment variable WALSTORE_LOG_LEVEL");
  }
  if (auto v = get("WALSTORE_SYSTEM_ID")) {
    config.system_id = ParseUnsigned(*v, "environment", "WALSTORE_SYSTEM_ID");
  }
  if (auto v = get("WALSTORE_PREFETCH")) {
    config.prefetch = static_cast<int>(
        std::min<uint64_t>(ParseUnsigned(*v, "environment", "WALSTORE_PREFETCH"), kMaxPrefetch + 1));
  }
  if (auto v = get("WALSTORE_PUSH_AHEAD")) {
    config.push_ahead = static_cast<int>(std::min<uint64_t>(
        ParseUnsigned(*v, "environment", "WALSTORE_PUSH_AHEAD"), kMaxPushAhead + 1));
  }
  if (auto v = get("WALSTORE_PARALLEL")) {  // as the file's setting: any count, lowered where used
    config.parallel = static_cast<int>(std::min<uint64_t>(
        ParseUnsigned(*v, "environment", "WALSTORE_PARALLEL"), std::numeric_limits<int>::max()));
  }
  if (auto v = get("WALSTORE_ALLOW_PLAINTEXT_OBJECTS")) {
    config.allow_plaintext_objects =
        ParseBool(*v, "environment", "WALSTORE_ALLOW_PLAINTEXT_OBJECTS");
  }
  auto& s3 = config.s3;
  if (auto v = get("AWS_ENDPOINT_URL")) s3.endpoint = *v;
  if (auto v = get("AWS_DEFAULT_REGION")) s3.region = *v;
  if (auto v = get("AWS_REGION")) s3.region = *v;
  if (auto v = get("AWS_PROFILE")) s3.profile = *v;
  if (auto v = get("AWS_ACCESS_KEY_ID")) {
    // Credentials from the environment come as a set: never mix with the file's.
    s3.access_key_id = *v;
    s3.secret_access_key = get("AWS_SECRET_ACCESS_KEY").value_or("");
    s3.session_token = get("AWS_SESSION_TOKEN").value_or("");
  }
  if (auto v = get("WALSTORE_S3_PATH_STYLE")) s3.path_style = ParseBool(*v, "environment", "WALSTORE_S3_PATH_STYLE");
  if (auto v = get("WALSTORE_S3_VERIFY_TLS")) s3.verify_tls = ParseBool(*v, "environment", "WALSTORE_S3_VERIFY_TLS");
  // AWS's generic variable first, so walstore's own setting wins over it.
  if (auto v = get("AWS_CA_BUNDLE")) s3.ca_bundle = *v;
  if (auto v = get("WALSTORE_S3_CA_BUNDLE")) s3.ca_bundle = *v;
  if (auto v = get("WALSTORE_S3_CA_PATH")) s3.ca_path = *v;
  if (auto v = get("WALSTORE_S3_STORAGE_CLASS")) s3.storage_class = *v;
  if (auto v = get("WALSTORE_S3_SSE")) s3.sse = *v;
  if (auto v = get("WALSTORE_S3_SSE_KMS_KEY_ID")) s3.sse_kms_key_id = *v;
}

}  // namespace

LogLevel ParseLogLevel(std::string_view text, std::string_view source) {
  if (text == "error") return LogLevel::kError;
  if (text == "warning") return LogLevel::kWarning;
  if (text == "notice") return LogLevel::kNotice;
  if (text == "info") return LogLevel::kInfo;
  if (text == "debug") return LogLevel::kDebug;
  Fail(ErrorCode::kConfig, "{}{}unknown log level \"{}\": use error, warning, notice, info or debug",
       source, source.empty() ? "" : ": ", text);
}

EnvLookup ProcessEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

Config LoadConfig(const ConfigOverrides& overrides, const EnvLookup& env) {
  Config config;
  std::optional<std::string> path = overrides.config_path;
  if (!path) path = env("WALSTORE_CONFIG");
  std::vector<RepositoryTable> tables;
  if (path && !path->empty()) {
    if (!FileExists(*path)) {
      throw Error(ErrorCode::kConfig, fmt::format("config file \"{}\" does not exist", *path),
                  "check --config / WALSTORE_CONFIG");
    }
    tables = ReadFile(*path, config);
  } else if (FileExists(kDefaultConfigPath)) {
    tables = ReadFile(kDefaultConfigPath, config);
  }
  ApplyEnvironment(env, config);
  std::optional<std::string> selection = overrides.repo_url;
  if (!selection) selection = env("WALSTORE_REPO");
  if (selection == std::optional<std::string>("all")) {
    if (!overrides.repo_all_allowed) {
      throw Error(ErrorCode::kConfig,
                  "--repo / WALSTORE_REPO \"all\" is only for walctl backup (take a backup "
                  "and copy it to every repository)",
                  "give no --repo (walpush, walfetch, walctl status and walctl sync use every "
                  "configured repository) or choose one with --repo N");
    }
    config.every_repository = true;
    selection.reset();  // every table, in order
  }
  if (overrides.compression) {
    config.compression = ParseCompressionSpec(*overrides.compression, "--compression");
  }
  if (overrides.log_level) config.log_level = *overrides.log_level;
  if (overrides.system_id) config.system_id = overrides.system_id;
  if (overrides.prefetch) config.prefetch = *overrides.prefetch;
  if (config.prefetch < 0 || config.prefetch > kMaxPrefetch) {
    Fail(ErrorCode::kConfig, "prefetch must be between 0 (off) and {} segments", kMaxPrefetch);
  }
  if (overrides.push_ahead) config.push_ahead = *overrides.push_ahead;
  if (config.push_ahead < 0 || config.push_ahead > kMaxPushAhead) {
    Fail(ErrorCode::kConfig, "push_ahead must be between 0 (off) and {} segments",
         kMaxPushAhead);
  }
  // parallel: any non-negative count, as in earlier releases (a config that
  // walpush and walfetch accepted must keep working); WorkerThreads lowers it
  // (and WarnAboutLoweredSettings says so).
  if (overrides.parallel) config.parallel = *overrides.parallel;
  if (config.chunk_size == 0 || config.chunk_size > (16u << 20)) {
    Fail(ErrorCode::kConfig, "chunk_size must be between 1 and 16777216 bytes");
  }

  // The key: --key-file, else the environment (file or hex, not both), else the file's.
  const auto env_key_file = env("WALSTORE_ENCRYPTION_KEY_FILE");
  const auto env_key_hex = env("WALSTORE_ENCRYPTION_KEY");
  const bool env_file_set = env_key_file && !env_key_file->empty();
  const bool env_hex_set = env_key_hex && !env_key_hex->empty();
  if (overrides.key_file) {
    config.key_file = *overrides.key_file;
  } else if (env_file_set && env_hex_set) {
    Fail(ErrorCode::kConfig,
         "both WALSTORE_ENCRYPTION_KEY_FILE and WALSTORE_ENCRYPTION_KEY are set: set only one");
  } else if (env_hex_set) {
    config.key_file.clear();
    config.key = ParseHexKey(*env_key_hex, "WALSTORE_ENCRYPTION_KEY");
  } else if (env_file_set) {
    config.key_file = *env_key_file;
  }
  if (!config.key && !config.key_file.empty()) config.key = LoadKeyFile(config.key_file);
  if (auto v = env("WALSTORE_ENCRYPTION_OLD_KEY_FILES"); v && !v->empty()) {
    config.old_key_files.clear();
    for (size_t start = 0; start <= v->size();) {
      size_t end = v->find(':', start);
      if (end == std::string::npos) end = v->size();
      if (end > start) config.old_key_files.push_back(v->substr(start, end - start));
      start = end + 1;
    }
  }
  for (const auto& file : config.old_key_files) config.old_keys.push_back(LoadKeyFile(file));
  ResolveRepositories(std::move(tables), selection, true, config);
  return config;
}

Config ParseConfigText(std::string_view text, const std::string& source) {
  Config config;
  auto tables = ReadTable(toml::parse(text, source), source, config);
  ResolveRepositories(std::move(tables), std::nullopt, false, config);
  return config;
}

std::string RepositoryLabel(const Config& config, size_t index) {
  const std::string& url = index < config.repositories.size()
                               ? config.repositories[index].repo_url
                               : config.repo_url;
  if (config.repositories.size() <= 1) return url;
  return fmt::format("repository {} ({})", index + 1, url);
}

Config LoadConfig(const std::optional<std::string>& explicit_path, const EnvLookup& env) {
  ConfigOverrides overrides;
  overrides.config_path = explicit_path;
  return LoadConfig(overrides, env);
}

std::vector<Key> Config::ReadKeys() const {
  std::vector<Key> keys;
  if (key) keys.push_back(*key);
  keys.insert(keys.end(), old_keys.begin(), old_keys.end());
  return keys;
}

std::string Config::Describe() const {
  std::string encryption = key ? fmt::format("aes-256-gcm (key id {})", key->IdHex()) : "off";
  if (repositories.size() > 1) {
    std::string text;
    for (size_t i = 0; i < repositories.size(); ++i) {
      text += fmt::format("{}{}: {}{}", i == 0 ? "" : "; ", RepositoryLabel(*this, i),
                          repositories[i].Describe(), repositories[i].best_effort ? ", best-effort" : "");
    }
    return text;
  }
  return fmt::format("repository={}, compression={}, encryption={}, config={}",
                     repo_url.empty() ? "(unset)" : repo_url, ToString(compression), encryption,
                     source_path.empty() ? "(none)" : source_path);
}

Config LoadProgramConfig(const ConfigOverrides& overrides, const EnvLookup& env) {
  Config config = LoadConfig(overrides, env);
  SetLogLevel(config.log_level);
  if (config.parallel > kMaxParallel) {
    Log(LogLevel::kWarning, "parallel = {} is more than {} threads: using {}", config.parallel,
        kMaxParallel, kMaxParallel);
  }
  Log(LogLevel::kDebug, "{}", config.Describe());
  return config;
}

}  // namespace walstore
