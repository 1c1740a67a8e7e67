// Where the S3 backend gets the credentials it signs with: a chain of
// sources tried in the AWS SDKs' order, and a provider that keeps the chosen
// source's temporary credentials fresh.  Internal to the S3 backend.
//
// The chain (DefaultCredentialChain), first source with a key pair wins:
//   1. static keys: access_key_id + secret_access_key (+ session_token) of
//      the [s3] table, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
//      AWS_SESSION_TOKEN (LoadConfig puts them in S3Settings);
//   2. web identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN
//      (+ AWS_ROLE_SESSION_NAME), exchanged with STS
//      AssumeRoleWithWebIdentity at AWS_ENDPOINT_URL_STS, else
//      https://sts.<region>.amazonaws.com (EKS IRSA);
//   3. profile settings.profile / $AWS_PROFILE / "default": keys of the
//      shared credentials file ($AWS_SHARED_CREDENTIALS_FILE, ~/.aws/credentials,
//      sections "[name]") or of the config file ($AWS_CONFIG_FILE,
//      ~/.aws/config, sections "[profile name]" and "[default]"), else the
//      profile's credential_process;
//   4. container credentials: AWS_CONTAINER_CREDENTIALS_FULL_URI or
//      http://169.254.170.2 + AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, with
//      the Authorization header from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
//      or AWS_CONTAINER_AUTHORIZATION_TOKEN (ECS, EKS Pod Identity);
//   5. EC2 instance metadata, IMDSv2 (a session token first), at
//      AWS_EC2_METADATA_SERVICE_ENDPOINT or http://169.254.169.254, with a
//      1 s connect timeout; skipped when AWS_EC2_METADATA_DISABLED=true.
// Sources 1 and 3 (keys) make no network call, so the common static-key
// case costs nothing.  Secrets never appear in a message.
#pragma once

#include <walstore/config.h>

#include <ctime>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/s3/sigv4.h"

namespace walstore::s3 {

struct TimedCredentials {
  Credentials credentials;
  std::optional<std::time_t> expiry;  // nullopt: they do not expire
};

// What one source gave: credentials, or in `why_not` why it gave none
// ("AWS_ROLE_ARN is not set", "STS answered HTTP 403 AccessDenied").
struct SourceResult {
  std::optional<TimedCredentials> credentials;
  std::string why_not;
};

struct CredentialSource {
  std::string name;  // "web identity", "container credentials", ... in messages
  std::function<SourceResult()> fetch;
};

// The chain above for `settings` and `env`, in order; nothing is fetched yet.
std::vector<CredentialSource> DefaultCredentialChain(const S3Settings& settings,
                                                     const EnvLookup& env);

// One profile's settings from the text of an AWS shared credentials file
// (`config_file` false: sections "[name]" or "[profile name]") or config file
// (true: "[profile name]", and "[default]" for the profile "default"):
// "key = value" lines, later ones winning; comments start with # or ;.  Any
// text is accepted (lines it cannot read are skipped).
using ProfileValues = std::map<std::string, std::string>;
ProfileValues ParseProfileSection(std::string_view file_text, const std::string& profile,
                                  bool config_file);

// Parsers of the sources' replies (malformed, truncated or incomplete input
// is a SourceResult with `why_not`, never an exception).
// An STS AssumeRoleWithWebIdentity reply (XML, or an STS <ErrorResponse>).
SourceResult ParseAssumeRoleReply(const std::string& xml);
// The JSON of container credentials, IMDS and credential_process:
// AccessKeyId, SecretAccessKey, Token or SessionToken, Expiration (ISO 8601,
// optional).  A "Code" other than "Success" (IMDS) or a "Version" other than
// 1 (credential_process) is refused.
SourceResult ParseCredentialsJson(const std::string& json);

// Credentials for signing, from the first source of a chain that gives some,
// refreshed from that same source when they are about to expire.
//
// Thread-safe: Current() may be called from several threads; a refresh
// holds a lock while it fetches.
class CredentialProvider {
 public:
  // Refresh when fewer than this many seconds of validity remain.
  static constexpr std::time_t kRefreshMarginSeconds = 300;
  // After a failed refresh, wait this long before asking the source again.
  static constexpr std::time_t kRetryAfterFailureSeconds = 10;

  using Clock = std::function<std::time_t()>;

  // Tries the sources in order.  Throws kConfig naming every source tried
  // and why each gave nothing (credentials already expired count as none).
  explicit CredentialProvider(std::vector<CredentialSource> chain,
                              Clock clock = [] { return std::time(nullptr); });
  CredentialProvider(const CredentialProvider&) = delete;
  CredentialProvider& operator=(const CredentialProvider&) = delete;

  // The credentials to sign with now.  Within kRefreshMarginSeconds of their
  // expiry asks the source for new ones; when that fails, keeps using the
  // current ones while they are valid (with a warning) and throws kAuth
  // naming the source and its failure once they have expired.
  Credentials Current();

  // The name of the source in use ("static keys", "web identity", ...).
  const std::string& source_name() const { return source_.name; }

 private:
  std::mutex mutex_;
  Clock clock_;
  CredentialSource source_;
  TimedCredentials current_;
  std::time_t next_refresh_attempt_ = 0;
};

}  // namespace walstore::s3
