#include "storage/s3/credentials.h"

#include <arpa/inet.h>
#include <sys/wait.h>
#include <unistd.h>
#include <walstore/error.h>
#include <walstore/log.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <pugixml.hpp>
#include <sstream>

#include "http/http_client.h"
#include "http/text.h"
#include "storage/s3/s3_xml.h"

namespace walstore::s3 {
namespace {

SourceResult Missing(std::string why) { return {std::nullopt, std::move(why)}; }

SourceResult Found(std::string id, std::string secret, std::string token,
                   const std::string& expiration) {
  if (id.empty() || secret.empty()) return Missing("the reply lacks the access key id or secret");
  TimedCredentials timed{{std::move(id), std::move(secret), std::move(token)}, std::nullopt};
  if (!expiration.empty()) {
    const std::time_t expiry = ParseIsoTime(expiration);
    if (expiry == 0) return Missing(fmt::format("malformed Expiration \"{:.40}\"", expiration));
    timed.expiry = expiry;
  }
  return {std::move(timed), ""};
}

// The file named by `variable`, else ~/.aws/<name>; "" without HOME.
std::string AwsFile(const EnvLookup& env, const char* variable, const char* name) {
  if (auto path = env(variable)) return *path;
  if (auto home = env("HOME")) return *home + "/.aws/" + name;
  return "";
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The profile's section of an AWS file at `path` (none when it is unreadable).
ProfileValues ReadProfile(const std::string& path, const std::string& profile, bool config_file) {
  return ParseProfileSection(ReadWholeFile(path), profile, config_file);
}

// One attempt at `request` with short timeouts; nullopt when the transport
// failed (nothing listening, timeout).
std::optional<http::Response> Fetch(const http::Request& request, double connect_timeout) {
  http::ClientOptions options;
  options.connect_timeout_seconds = connect_timeout;
  options.low_speed_seconds = 5;
  options.max_collected_body = 1 << 20;
  return http::Client(options).PerformNoThrow(request);
}

std::string DescribeReply(const http::Response& response) {
  std::string code = ParseErrorBody(response.body).code;
  if (code.empty()) {  // STS wraps its error: <ErrorResponse><Error><Code>
    pugi::xml_document document;
    if (document.load_buffer(response.body.data(), response.body.size())) {
      code = document.child("ErrorResponse").child("Error").child_value("Code");
    }
  }
  return fmt::format("HTTP {}{}", response.status, code.empty() ? "" : " " + code);
}

// "" when `uri` is one AWS allows for container credentials: https, or http
// to loopback or the ECS / EKS Pod Identity agents.
std::string CheckContainerUri(const std::string& uri) {
  if (uri.starts_with("https://")) return "";
  if (!uri.starts_with("http://")) return "is neither http:// nor https://";
  std::string host = uri.substr(7, uri.find_first_of("/?", 7) - 7);
  if (host.starts_with('[')) {
    host = host.substr(1, host.find(']') - 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1 &&
      (ntohl(v4.s_addr) >> 24 == 127 || host == "169.254.170.2" || host == "169.254.170.23")) {
    return "";
  }
  if (host == "localhost" || host == "::1" || host == "fd00:ec2::23") return "";
  return "uses http:// to a host that is not loopback or the ECS / EKS agent";
}

SourceResult StaticKeys(const S3Settings& settings) {
  if (!settings.access_key_id.empty() && !settings.secret_access_key.empty()) {
    return {TimedCredentials{
                {settings.access_key_id, settings.secret_access_key, settings.session_token}, std::nullopt},
            ""};
  }
  return Missing(
      "no access_key_id and secret_access_key in the [s3] table of the config file, nor "
      "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment");
}

SourceResult WebIdentity(const S3Settings& settings, const EnvLookup& env) {
  const auto token_file = env("AWS_WEB_IDENTITY_TOKEN_FILE");
  const auto role = env("AWS_ROLE_ARN");
  if (!token_file || !role) return Missing("AWS_WEB_IDENTITY_TOKEN_FILE or AWS_ROLE_ARN is not set");
  const std::string token(http::TrimSpace(ReadWholeFile(*token_file)));
  if (token.empty()) return Missing(fmt::format("token file {} is missing or empty", *token_file));
  std::string endpoint = env("AWS_ENDPOINT_URL_STS").value_or(fmt::format(
      "https://sts.{}.amazonaws.com", settings.region.empty() ? "us-east-1" : settings.region));
  while (endpoint.ends_with('/')) endpoint.pop_back();
  const std::string body = CanonicalQuery(
      {{"Action", "AssumeRoleWithWebIdentity"},
       {"Version", "2011-06-15"},
       {"RoleArn", *role},
       {"RoleSessionName", env("AWS_ROLE_SESSION_NAME").value_or("walstore")},
       {"WebIdentityToken", token}});
  MemoryReadStream stream(body);
  http::Request request{"POST", endpoint + "/",
                        {{"content-type", "application/x-www-form-urlencoded"}}, &stream,
                        body.size()};
  const auto response = Fetch(request, std::min(settings.connect_timeout_seconds, 5.0));
  if (!response) return Missing(fmt::format("STS at {} did not answer", endpoint));
  if (response->status != 200) {
    return Missing(fmt::format("STS at {} answered {}", endpoint, DescribeReply(*response)));
  }
  return ParseAssumeRoleReply(response->body);
}

// Runs `command` with /bin/sh and returns its standard output (at most
// 64 KiB), or nullopt with `why` set when it could not run or failed.
std::optional<std::string> RunProcess(const std::string& command, std::string& why) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) {
    why = "could not create a pipe";
    return std::nullopt;
  }
  const pid_t pid = fork();
  if (pid < 0) {
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    why = "could not fork";
    return std::nullopt;
  }
  if (pid == 0) {
    dup2(pipe_fds[1], STDOUT_FILENO);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(pipe_fds[1]);
  std::string output;
  char buffer[4096];
  ssize_t n;
  while ((n = read(pipe_fds[0], buffer, sizeof buffer)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0 && output.size() < (64u << 10)) output.append(buffer, n);
  }
  close(pipe_fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    why = WIFEXITED(status) ? fmt::format("exited with status {}", WEXITSTATUS(status))
                            : "was killed by a signal";
    return std::nullopt;
  }
  return output;
}

SourceResult Profile(const S3Settings& settings, const EnvLookup& env) {
  const std::string profile =
      settings.profile.empty() ? env("AWS_PROFILE").value_or("default") : settings.profile;
  const std::string credentials_file = AwsFile(env, "AWS_SHARED_CREDENTIALS_FILE", "credentials");
  const std::string config_file = AwsFile(env, "AWS_CONFIG_FILE", "config");
  if (credentials_file.empty() && config_file.empty()) {
    return Missing(fmt::format("profile \"{}\": no ~/.aws files (HOME is not set)", profile));
  }
  ProfileValues values = ReadProfile(config_file, profile, true);
  for (auto& [name, value] : ReadProfile(credentials_file, profile, false)) values[name] = value;
  if (!values["aws_access_key_id"].empty() && !values["aws_secret_access_key"].empty()) {
    return {TimedCredentials{{values["aws_access_key_id"], values["aws_secret_access_key"],
                              values["aws_session_token"]}, std::nullopt},
            ""};
  }
  const std::string& command = values["credential_process"];
  if (command.empty()) {
    return Missing(fmt::format(
        "profile \"{}\" has neither aws_access_key_id and aws_secret_access_key nor "
        "credential_process in {} or {}",
        profile, credentials_file, config_file));
  }
  std::string why;
  const auto output = RunProcess(command, why);
  if (!output) return Missing(fmt::format("credential_process of profile \"{}\" {}", profile, why));
  SourceResult result = ParseCredentialsJson(*output);
  if (!result.credentials) {
    result.why_not = fmt::format("credential_process of profile \"{}\": {}", profile, result.why_not);
  }
  return result;
}

SourceResult Container(const S3Settings& settings, const EnvLookup& env) {
  std::string uri;
  if (auto relative = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")) {
    uri = "http://169.254.170.2" + *relative;
  } else if (auto full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI")) {
    uri = *full;
    if (std::string problem = CheckContainerUri(uri); !problem.empty()) {
      return Missing("AWS_CONTAINER_CREDENTIALS_FULL_URI " + problem);
    }
  } else {
    return Missing(
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI are not set");
  }
  http::Request request{"GET", uri};
  std::string authorization;
  if (auto file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")) {
    authorization = std::string(http::TrimSpace(ReadWholeFile(*file)));
    if (authorization.empty()) return Missing(fmt::format("token file {} is missing or empty", *file));
  } else {
    authorization = env("AWS_CONTAINER_AUTHORIZATION_TOKEN").value_or("");
  }
  if (!authorization.empty()) request.headers.emplace_back("authorization", authorization);
  const auto response = Fetch(request, std::min(settings.connect_timeout_seconds, 2.0));
  if (!response) return Missing(fmt::format("{} did not answer", uri));
  if (response->status != 200) {
    return Missing(fmt::format("{} answered {}", uri, DescribeReply(*response)));
  }
  return ParseCredentialsJson(response->body);
}

SourceResult InstanceMetadata(const EnvLookup& env) {
  if (http::AsciiLower(env("AWS_EC2_METADATA_DISABLED").value_or("")) == "true") {
    return Missing("AWS_EC2_METADATA_DISABLED is true");
  }
  std::string base = env("AWS_EC2_METADATA_SERVICE_ENDPOINT").value_or("http://169.254.169.254");
  while (base.ends_with('/')) base.pop_back();
  const auto token = Fetch({"PUT", base + "/latest/api/token",
                            {{"x-aws-ec2-metadata-token-ttl-seconds", "21600"}}},
                           1);
  if (!token) return Missing(fmt::format("no instance metadata service at {}", base));
  if (token->status != 200 || token->body.empty()) {
    return Missing(fmt::format("{} refused an IMDSv2 token: HTTP {}", base, token->status));
  }
  const http::Headers authorized = {{"x-aws-ec2-metadata-token", token->body}};
  const std::string roles_url = base + "/latest/meta-data/iam/security-credentials/";
  const auto roles = Fetch({"GET", roles_url, authorized}, 1);
  if (!roles || roles->status != 200) {
    return Missing(roles && roles->status == 404
                       ? std::string("the instance has no IAM role")
                       : fmt::format("{} answered {}", roles_url,
                                     roles ? DescribeReply(*roles) : "nothing"));
  }
  const std::string role(http::TrimSpace(roles->body.substr(0, roles->body.find('\n'))));
  if (role.empty() || role.find_first_of("/?#") != std::string::npos) {
    return Missing(fmt::format("{} named no usable role", roles_url));
  }
  const auto credentials = Fetch({"GET", roles_url + role, authorized}, 1);
  if (!credentials || credentials->status != 200) {
    return Missing(fmt::format("{}{} answered {}", roles_url, role,
                               credentials ? DescribeReply(*credentials) : "nothing"));
  }
  return ParseCredentialsJson(credentials->body);
}

std::string FormatTime(std::time_t time) {
  std::tm tm{};
  gmtime_r(&time, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

}  // namespace

std::vector<CredentialSource> DefaultCredentialChain(const S3Settings& settings,
                                                     const EnvLookup& env) {
  return {
      {"static keys", [settings] { return StaticKeys(settings); }},
      {"web identity", [settings, env] { return WebIdentity(settings, env); }},
      {"profile", [settings, env] { return Profile(settings, env); }},
      {"container credentials", [settings, env] { return Container(settings, env); }},
      {"EC2 instance metadata", [env] { return InstanceMetadata(env); }},
  };
}

ProfileValues ParseProfileSection(std::string_view file_text, const std::string& profile,
                                  bool config_file) {
  ProfileValues values;
  bool inside = false;
  while (!file_text.empty()) {
    const size_t newline = file_text.find('\n');
    const std::string_view text = http::TrimSpace(file_text.substr(0, newline));
    file_text.remove_prefix(newline == std::string_view::npos ? file_text.size() : newline + 1);
    if (text.empty() || text.front() == '#' || text.front() == ';') continue;
    if (text.front() == '[') {
      std::string_view name = http::TrimSpace(text.substr(1, text.find(']') - 1));
      const bool prefixed = name.starts_with("profile ");
      if (prefixed) name = http::TrimSpace(name.substr(8));
      inside = name == profile && (!config_file || prefixed || name == "default");
    } else if (const size_t equals = text.find('='); inside && equals != std::string_view::npos) {
      values[std::string(http::TrimSpace(text.substr(0, equals)))] =
          std::string(http::TrimSpace(text.substr(equals + 1)));
    }
  }
  return values;
}

SourceResult ParseAssumeRoleReply(const std::string& xml) {
  pugi::xml_document document;
  if (!document.load_buffer(xml.data(), xml.size())) return Missing("STS sent malformed XML");
  const pugi::xml_node credentials = document.child("AssumeRoleWithWebIdentityResponse")
                                         .child("AssumeRoleWithWebIdentityResult")
                                         .child("Credentials");
  if (!credentials) return Missing("STS sent no <Credentials>");
  return Found(credentials.child_value("AccessKeyId"), credentials.child_value("SecretAccessKey"),
               credentials.child_value("SessionToken"), credentials.child_value("Expiration"));
}

SourceResult ParseCredentialsJson(const std::string& json) {
  const nlohmann::json document = nlohmann::json::parse(json, nullptr, false);
  if (document.is_discarded() || !document.is_object()) return Missing("not a JSON object");
  auto text = [&](const char* name) {
    const auto field = document.find(name);
    return field != document.end() && field->is_string() ? field->get<std::string>() : "";
  };
  if (document.contains("Code") && text("Code") != "Success") {
    return Missing(fmt::format("Code is \"{:.40}\"", text("Code")));
  }
  if (document.contains("Version") && document["Version"] != 1) return Missing("Version is not 1");
  const std::string token = document.contains("Token") ? text("Token") : text("SessionToken");
  return Found(text("AccessKeyId"), text("SecretAccessKey"), token, text("Expiration"));
}

CredentialProvider::CredentialProvider(std::vector<CredentialSource> chain, Clock clock)
    : clock_(std::move(clock)) {
  std::vector<std::string> tried;
  for (CredentialSource& source : chain) {
    SourceResult result = source.fetch();
    if (result.credentials && result.credentials->expiry && *result.credentials->expiry <= clock_()) {
      result = Missing("its credentials expired at " + FormatTime(*result.credentials->expiry));
    }
    if (result.credentials) {
      source_ = std::move(source);
      current_ = std::move(*result.credentials);
      Log(LogLevel::kDebug, "S3 credentials from {}", source_.name);
      return;
    }
    tried.push_back(fmt::format("{}: {}", source.name, result.why_not));
  }
  throw Error(ErrorCode::kConfig, fmt::format("no S3 credentials: {}", fmt::join(tried, "; ")),
              "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, add the keys to the config file "
              "or a profile, or run where a role provides them (see Credentials in docs/s3.md)");
}

Credentials CredentialProvider::Current() {
  std::lock_guard lock(mutex_);
  const std::time_t now = clock_();
  const bool fresh_enough = !current_.expiry || *current_.expiry - now > kRefreshMarginSeconds;
  const bool waiting = now < next_refresh_attempt_ && *current_.expiry > now;
  if (fresh_enough || waiting) return current_.credentials;
  SourceResult fresh = source_.fetch();
  if (fresh.credentials && (!fresh.credentials->expiry || *fresh.credentials->expiry > now)) {
    current_ = std::move(*fresh.credentials);
    next_refresh_attempt_ = 0;
    Log(LogLevel::kDebug, "S3 credentials refreshed from {}", source_.name);
    return current_.credentials;
  }
  if (fresh.credentials) fresh.why_not = "it gave credentials that had already expired";
  next_refresh_attempt_ = now + kRetryAfterFailureSeconds;
  if (*current_.expiry > now) {
    Log(LogLevel::kWarning, "could not refresh the S3 credentials from {} ({}); the current ones "
        "stay valid until {}", source_.name, fresh.why_not, FormatTime(*current_.expiry));
    return current_.credentials;
  }
  throw Error(ErrorCode::kAuth,
              fmt::format("the S3 credentials from {} expired at {} and could not be refreshed: {}",
                          source_.name, FormatTime(*current_.expiry), fresh.why_not),
              fmt::format("check that {} still hands out credentials", source_.name));
}

}  // namespace walstore::s3
