#include "storage/s3/s3_config.h"

#include <arpa/inet.h>
#include <walstore/error.h>


namespace walstore::s3 {
namespace {

bool IsIpOrLocalhost(const std::string& host_and_port) {
  if (host_and_port.starts_with('[')) return true;  // IPv6 literal
  const std::string host = host_and_port.substr(0, host_and_port.rfind(':'));
  in_addr address{};
  return host == "localhost" || host.ends_with(".localhost") ||
         inet_pton(AF_INET, host.c_str(), &address) == 1;
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

}  // namespace walstore::s3
