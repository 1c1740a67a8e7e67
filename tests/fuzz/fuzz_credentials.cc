// The credential sources' parsers (src/lib/storage/s3/credentials.h) on
// arbitrary bytes: STS's AssumeRoleWithWebIdentity reply, the JSON of
// container credentials, IMDS and credential_process (a network peer or a
// program chooses these bytes), and a profile's section of an AWS shared
// credentials or config file.  None of them throws: a bad reply is a
// SourceResult that says why it gave nothing.
#include "fuzz_util.h"
#include "storage/s3/credentials.h"

using namespace walstore;

namespace {

// What every SourceResult promises: credentials with both halves of the key
// pair and a real expiry, or none with a reason.
void CheckResult(const s3::SourceResult& result) {
  if (result.credentials) {
    const s3::Credentials& credentials = result.credentials->credentials;
    fuzz::Require(!credentials.access_key_id.empty() && !credentials.secret_access_key.empty(),
                  "credentials have an access key id and a secret");
    fuzz::Require(!result.credentials->expiry || *result.credentials->expiry > 0,
                  "an expiry is a real time");
  } else {
    fuzz::Require(!result.why_not.empty(), "no credentials come with a reason");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::Expect({}, [&] { CheckResult(s3::ParseAssumeRoleReply(text)); });
  fuzz::Expect({}, [&] { CheckResult(s3::ParseCredentialsJson(text)); });
  fuzz::Expect({}, [&] {
    for (const bool config_file : {false, true}) {
      for (const char* profile : {"default", "prod"}) {
        for (const auto& [name, value] : s3::ParseProfileSection(text, profile, config_file)) {
          fuzz::Require(name.find('\n') == std::string::npos &&
                            value.find('\n') == std::string::npos,
                        "a setting stays on its line");
        }
      }
    }
  });
  return 0;
}
