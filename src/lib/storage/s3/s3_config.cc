#include "storage/s3/s3_config.h"

#include <arpa/inet.h>
#include <walstore/error.h>

#include <fstream>
#include <map>

#include "http/text.h"

namespace walstore::s3 {
namespace {

bool IsIpOrLocalhost(const std::string& host_and_port) {
  if (host_and_port.starts_with('[')) return true;  // IPv6 literal
  const std::string host = host_and_port.substr(0, host_and_port.rfind(':'));
  in_addr address{};
  return host == "localhost" || host.ends_with(".localhost") ||
         inet_pton(AF_INET, host.c_str(), &address) == 1;
}

// Reads one [profile] section of an AWS shared credentials file.
std::map<std::string, std::string> ReadProfile(const std::string& path,
                                               const std::string& profile) {
  std::map<std::string, std::string> values;
  std::ifstream in(path);
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    const std::string_view text = http::TrimSpace(line);
    if (text.empty() || text.front() == '#' || text.front() == ';') continue;
    if (text.front() == '[') {
      std::string_view name = http::TrimSpace(text.substr(1, text.find(']') - 1));
      if (name.starts_with("profile ")) name = http::TrimSpace(name.substr(8));
      inside = name == profile;
    } else if (const size_t equals = text.find('='); inside && equals != std::string_view::npos) {
      values[std::string(http::TrimSpace(text.substr(0, equals)))] =
          std::string(http::TrimSpace(text.substr(equals + 1)));
    }
  }
  return values;
}

}  // namespace

Location ResolveLocation(const S3Settings& settings, const std::string& bucket) {
  Location location;
  location.region = settings.region.empty() ? "us-east-1" : settings.region;
  std::string endpoint = settings.endpoint.empty()
                             ? fmt::format("https://s3.{}.amazonaws.com", location.region)
                             : settings.endpoint;
  const size_t scheme_end = endpoint.find("://");
  if (scheme_end == std::string::npos) endpoint = "https://" + endpoint;
  location.scheme = endpoint.substr(0, endpoint.find("://"));
  std::string host = endpoint.substr(endpoint.find("://") + 3);
  while (host.ends_with('/')) host.pop_back();
  if ((location.scheme != "http" && location.scheme != "https") || host.empty() ||
      host.find_first_of("/?#@ ") != std::string::npos) {
    throw Error(ErrorCode::kConfig, fmt::format("invalid S3 endpoint \"{}\"", settings.endpoint),
                "use http(s)://host[:port], e.g. https://s3.eu-west-1.amazonaws.com or "
                "http://127.0.0.1:9000");
  }
  location.path_style =
      settings.path_style.value_or(IsIpOrLocalhost(host) || bucket.find('.') != std::string::npos);
  if (location.path_style) {
    location.host = host;
    location.path_prefix = "/" + bucket;
  } else {
    location.host = bucket + "." + host;
  }
  return location;
}

Credentials ResolveCredentials(const S3Settings& settings, const EnvLookup& env) {
  if (!settings.access_key_id.empty() && !settings.secret_access_key.empty()) {
    return {settings.access_key_id, settings.secret_access_key, settings.session_token};
  }
  std::string profile = settings.profile;
  if (profile.empty()) profile = env("AWS_PROFILE").value_or("default");
  std::string file;
  if (auto path = env("AWS_SHARED_CREDENTIALS_FILE")) {
    file = *path;
  } else if (auto home = env("HOME")) {
    file = *home + "/.aws/credentials";
  }
  if (!file.empty()) {
    auto values = ReadProfile(file, profile);
    if (!values["aws_access_key_id"].empty() && !values["aws_secret_access_key"].empty()) {
      return {values["aws_access_key_id"], values["aws_secret_access_key"],
              values["aws_session_token"]};
    }
  }
  throw Error(ErrorCode::kConfig,
              fmt::format("no S3 credentials: looked for access_key_id and secret_access_key in "
                          "the [s3] table of the config file, AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY in the environment, and profile \"{}\" in {}",
                          profile, file.empty() ? "~/.aws/credentials (HOME is not set)" : file),
              "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add the keys to the config "
              "file or to the credentials file");
}

}  // namespace walstore::s3
