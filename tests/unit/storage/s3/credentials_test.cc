// Tests for src/lib/storage/s3/credentials.cc: each source of the chain
// (against loopback fakes for STS, container credentials and IMDSv2), the
// parsers of their replies, the missing-credentials message, and refresh
// with an injected clock.
#include "storage/s3/credentials.h"

#include <doctest/doctest.h>
#include <walstore/error.h>

#include <map>
#include <string>

#include "http/test_server.h"
#include "storage/s3/s3_test_server.h"
#include "storage/s3/s3_xml.h"
#include "test_util.h"

namespace walstore::s3 {
namespace {

using http::test::ServerReply;
using http::test::ServerRequest;
using http::test::TestServer;
using test::Reply;
using walstore::test::Contains;
using walstore::test::MapEnv;
using walstore::test::TempDir;
using walstore::test::ThrownError;
using walstore::test::WriteFile;

// The environment of a test: IMDS off unless a test turns it on.
EnvLookup Env(std::map<std::string, std::string> vars) {
  vars.emplace("AWS_EC2_METADATA_DISABLED", "true");
  return MapEnv(std::move(vars));
}

Credentials Resolve(const S3Settings& settings, const EnvLookup& env) {
  return CredentialProvider(DefaultCredentialChain(settings, env)).Current();
}

std::optional<Error> ResolveError(const S3Settings& settings, const EnvLookup& env) {
  return ThrownError([&] { Resolve(settings, env); });
}

const char* kCredentialsFile =
    "# comment\n"
    "[default]\n"
    "aws_access_key_id = DEFAULTKEY\n"
    "aws_secret_access_key = defaultsecret\n"
    "\n"
    "[archive]\n"
    "aws_access_key_id=ARCHIVEKEY\n"
    "aws_secret_access_key=archivesecret\n"
    "aws_session_token = archivetoken\n";

const char* kJson =
    R"({"AccessKeyId":"ASIAJSON","SecretAccessKey":"jsonsecret","Token":"jsontoken",)"
    R"("Expiration":"2030-01-02T03:04:05Z"})";

const char* kStsReply =
    R"(<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">)"
    "<AssumeRoleWithWebIdentityResult><Credentials>"
    "<SessionToken>ststoken</SessionToken><SecretAccessKey>stssecret</SecretAccessKey>"
    "<Expiration>2030-01-02T03:04:05Z</Expiration><AccessKeyId>ASIASTS</AccessKeyId>"
    "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";

std::string Header(const ServerRequest& request, const std::string& name) {
  const std::string head = request.head;
  std::string lower = head;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const size_t at = lower.find("\r\n" + name + ":");
  if (at == std::string::npos) return "(absent)";
  const size_t start = head.find_first_not_of(' ', at + name.size() + 3);
  return head.substr(start, head.find("\r\n", start) - start);
}

// A source that hands out credentials "K<n>" valid `lifetime` seconds from
// the fake clock, or fails when `fail` is set.
struct FakeSource {
  std::time_t now = 1000000;
  std::time_t lifetime = 3600;
  bool fail = false;
  int calls = 0;
  CredentialSource Source() {
    return {"fake source", [this] {
              ++calls;
              if (fail) return SourceResult{std::nullopt, "the fake is down"};
              return SourceResult{TimedCredentials{{"K" + std::to_string(calls), "s", "t"},
                                                   now + lifetime},
                                  ""};
            }};
  }
  CredentialProvider::Clock Clock() {
    return [this] { return now; };
  }
};

}  // namespace

TEST_SUITE("s3_credentials") {
  TEST_CASE("keys from the settings come first, without touching anything else") {
    S3Settings settings;
    settings.access_key_id = "AKID";
    settings.secret_access_key = "secret";
    settings.session_token = "token";
    // A web identity and IMDS that would fail loudly are never asked.
    const Credentials credentials =
        Resolve(settings, MapEnv({{"AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent"},
                                  {"AWS_ROLE_ARN", "arn:aws:iam::1:role/r"}}));
    CHECK(credentials.access_key_id == "AKID");
    CHECK(credentials.secret_access_key == "secret");
    CHECK(credentials.session_token == "token");
    CHECK(CredentialProvider(DefaultCredentialChain(settings, Env({}))).source_name() ==
          "static keys");
  }

  TEST_CASE("profiles of the shared credentials file") {
    TempDir dir;
    const std::string file = dir / "credentials";
    WriteFile(file, kCredentialsFile);
    S3Settings settings;
    Credentials credentials = Resolve(settings, Env({{"AWS_SHARED_CREDENTIALS_FILE", file}}));
    CHECK(credentials.access_key_id == "DEFAULTKEY");
    CHECK(credentials.secret_access_key == "defaultsecret");
    CHECK(credentials.session_token.empty());

    credentials =
        Resolve(settings, Env({{"AWS_SHARED_CREDENTIALS_FILE", file}, {"AWS_PROFILE", "archive"}}));
    CHECK(credentials.access_key_id == "ARCHIVEKEY");
    CHECK(credentials.session_token == "archivetoken");

    settings.profile = "default";  // the settings' profile beats AWS_PROFILE
    credentials =
        Resolve(settings, Env({{"AWS_SHARED_CREDENTIALS_FILE", file}, {"AWS_PROFILE", "archive"}}));
    CHECK(credentials.access_key_id == "DEFAULTKEY");

    // ~/.aws/credentials when AWS_SHARED_CREDENTIALS_FILE is not set.
    WriteFile(dir / "home/.aws/credentials", kCredentialsFile);
    settings.profile = "archive";
    credentials = Resolve(settings, Env({{"HOME", dir / "home"}}));
    CHECK(credentials.access_key_id == "ARCHIVEKEY");
  }

  TEST_CASE("profiles of the config file: [profile name] and [default], not [name]") {
    TempDir dir;
    WriteFile(dir / "config",
              "[default]\naws_access_key_id = CFGDEFAULT\naws_secret_access_key = s1\n"
              "[profile archive]\naws_access_key_id = CFGARCHIVE\naws_secret_access_key = s2\n"
              "[bare]\naws_access_key_id = CFGBARE\naws_secret_access_key = s3\n");
    const auto env = [&](const std::string& profile) {
      return Env({{"AWS_CONFIG_FILE", dir / "config"},
                  {"AWS_SHARED_CREDENTIALS_FILE", dir / "none"},
                  {"AWS_PROFILE", profile}});
    };
    CHECK(Resolve({}, env("default")).access_key_id == "CFGDEFAULT");
    CHECK(Resolve({}, env("archive")).access_key_id == "CFGARCHIVE");
    auto error = ResolveError({}, env("bare"));
    REQUIRE(error);
    CHECK(Contains(error->what(), "profile \"bare\" has neither"));
    CHECK(Contains(error->what(), dir / "config"));

    // ~/.aws/config without AWS_CONFIG_FILE; the credentials file wins for keys.
    WriteFile(dir / "home/.aws/config", "[profile archive]\naws_access_key_id = FROMCONFIG\n"
                                        "aws_secret_access_key = s\n");
    WriteFile(dir / "home/.aws/credentials", kCredentialsFile);
    CHECK(Resolve({}, Env({{"HOME", dir / "home"}, {"AWS_PROFILE", "archive"}})).access_key_id ==
          "ARCHIVEKEY");
  }

  TEST_CASE("ParseProfileSection: CRLF, no last newline, later lines win, odd sections") {
    const std::string text =
        "[default]\r\naws_access_key_id = A1\r\n  aws_access_key_id=A2  \r\n"
        "novalue\n=orphan\n[archive\nregion = x\n[ profile  archive ]\nkey = a = b";
    ProfileValues values = ParseProfileSection(text, "default", false);
    // A line without '=' is skipped; "=orphan" names nothing walstore reads.
    CHECK(values == ProfileValues{{"aws_access_key_id", "A2"}, {"", "orphan"}});
    // "[archive" has no ']': its name is "archive" all the same.
    values = ParseProfileSection(text, "archive", false);
    CHECK(values == ProfileValues{{"region", "x"}, {"key", "a = b"}});
    // The config file takes only "[profile archive]".
    values = ParseProfileSection(text, "archive", true);
    CHECK(values == ProfileValues{{"key", "a = b"}});
    CHECK(ParseProfileSection("", "default", true).empty());
    CHECK(ParseProfileSection("[\n[]\n]\n=\n", "", false) == ProfileValues{{"", ""}});
  }

  TEST_CASE("credential_process: its JSON, Version 1, optional Expiration; failures say why") {
    TempDir dir;
    WriteFile(dir / "process.sh",
              "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"ASIAPROC\", "
              "\"SecretAccessKey\": \"procsecret\", \"SessionToken\": \"proctoken\", "
              "\"Expiration\": \"2030-01-02T03:04:05Z\"}'\n",
              0700);
    WriteFile(dir / "fails.sh", "#!/bin/sh\necho 'partial {' ; exit 3\n", 0700);
    WriteFile(dir / "garbage.sh", "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"A\"'\n",
              0700);
    WriteFile(dir / "config", "[profile proc]\ncredential_process = " + (dir / "process.sh") +
                                  "\n[profile fails]\ncredential_process = " + (dir / "fails.sh") +
                                  "\n[profile garbage]\ncredential_process = " +
                                  (dir / "garbage.sh") + "\n");
    const auto env = [&](const std::string& profile) {
      return Env({{"AWS_CONFIG_FILE", dir / "config"},
                  {"AWS_SHARED_CREDENTIALS_FILE", dir / "none"},
                  {"AWS_PROFILE", profile}});
    };
    const Credentials credentials = Resolve({}, env("proc"));
    CHECK(credentials.access_key_id == "ASIAPROC");
    CHECK(credentials.secret_access_key == "procsecret");
    CHECK(credentials.session_token == "proctoken");

    auto failed = ResolveError({}, env("fails"));
    REQUIRE(failed);
    CHECK(failed->code() == ErrorCode::kConfig);
    CHECK(Contains(failed->what(), "credential_process of profile \"fails\" exited with status 3"));
    auto garbage = ResolveError({}, env("garbage"));
    REQUIRE(garbage);
    CHECK(Contains(garbage->what(), "credential_process of profile \"garbage\": not a JSON object"));
  }

  TEST_CASE("ParseCredentialsJson: complete, truncated, incomplete, refused replies") {
    SourceResult result = ParseCredentialsJson(kJson);
    REQUIRE(result.credentials);
    CHECK(result.credentials->credentials.access_key_id == "ASIAJSON");
    CHECK(result.credentials->credentials.secret_access_key == "jsonsecret");
    CHECK(result.credentials->credentials.session_token == "jsontoken");
    CHECK(result.credentials->expiry == ParseIsoTime("2030-01-02T03:04:05Z"));

    // credential_process spelling, no Expiration: long-term keys.
    result = ParseCredentialsJson(
        R"({"Version":1,"AccessKeyId":"A","SecretAccessKey":"S","SessionToken":"T"})");
    REQUIRE(result.credentials);
    CHECK(result.credentials->credentials.session_token == "T");
    CHECK_FALSE(result.credentials->expiry);

    const std::string json = kJson;
    CHECK(ParseCredentialsJson(json.substr(0, json.size() / 2)).why_not == "not a JSON object");
    CHECK(ParseCredentialsJson("[1]").why_not == "not a JSON object");
    CHECK(ParseCredentialsJson(R"({"AccessKeyId":"A","Token":"T"})").why_not ==
          "the reply lacks the access key id or secret");
    CHECK(ParseCredentialsJson(R"({"AccessKeyId":"A","SecretAccessKey":7})").why_not ==
          "the reply lacks the access key id or secret");
    CHECK(ParseCredentialsJson(R"({"Code":"AssumeRoleUnauthorizedAccess","AccessKeyId":"A"})")
              .why_not == "Code is \"AssumeRoleUnauthorizedAccess\"");
    CHECK(ParseCredentialsJson(R"({"Version":2,"AccessKeyId":"A","SecretAccessKey":"S"})")
              .why_not == "Version is not 1");
    CHECK(ParseCredentialsJson(
              R"({"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"tomorrow"})")
              .why_not == "malformed Expiration \"tomorrow\"");
  }

  TEST_CASE("ParseAssumeRoleReply: credentials, truncated XML, another document") {
    const SourceResult result = ParseAssumeRoleReply(kStsReply);
    REQUIRE(result.credentials);
    CHECK(result.credentials->credentials.access_key_id == "ASIASTS");
    CHECK(result.credentials->credentials.secret_access_key == "stssecret");
    CHECK(result.credentials->credentials.session_token == "ststoken");
    CHECK(result.credentials->expiry == ParseIsoTime("2030-01-02T03:04:05Z"));
    const std::string xml = kStsReply;
    CHECK(ParseAssumeRoleReply(xml.substr(0, xml.size() - 40)).why_not == "STS sent malformed XML");
    CHECK(ParseAssumeRoleReply("<ErrorResponse/>").why_not == "STS sent no <Credentials>");
    // fuzz_credentials: an Expiration before the epoch was a negative expiry.
    std::string old = xml;
    old.replace(old.find("2030-"), 4, "1013");
    CHECK(ParseAssumeRoleReply(old).why_not ==
          "malformed Expiration \"1013-01-02T03:04:05Z\"");
  }

  TEST_CASE("web identity: the token and role go to STS at AWS_ENDPOINT_URL_STS") {
    TempDir dir;
    WriteFile(dir / "token", "eyJ.jwt.token\n");
    std::string body;
    bool refuse = false;
    TestServer sts([&](const ServerRequest& request) {
      body = request.body;
      if (refuse) {
        return ServerReply{Reply("403 Forbidden",
                                 "<ErrorResponse><Error><Code>AccessDenied</Code></Error>"
                                 "</ErrorResponse>")};
      }
      return ServerReply{Reply("200 OK", kStsReply)};
    });
    const auto env = Env({{"AWS_WEB_IDENTITY_TOKEN_FILE", dir / "token"},
                          {"AWS_ROLE_ARN", "arn:aws:iam::123:role/wal"},
                          {"AWS_ROLE_SESSION_NAME", "pod-1"},
                          {"AWS_ENDPOINT_URL_STS", sts.Url("")},
                          {"AWS_SHARED_CREDENTIALS_FILE", dir / "none"}});
    const Credentials credentials = Resolve({}, env);
    CHECK(credentials.access_key_id == "ASIASTS");
    CHECK(credentials.session_token == "ststoken");
    CHECK(Contains(body, "Action=AssumeRoleWithWebIdentity"));
    CHECK(Contains(body, "RoleArn=arn%3Aaws%3Aiam%3A%3A123%3Arole%2Fwal"));
    CHECK(Contains(body, "RoleSessionName=pod-1"));
    CHECK(Contains(body + "&", "WebIdentityToken=eyJ.jwt.token&"));
    CHECK(Contains(body, "Version=2011-06-15"));

    refuse = true;
    auto error = ResolveError({}, env);
    REQUIRE(error);
    CHECK(Contains(error->what(),
                   "web identity: STS at " + sts.Url("") + " answered HTTP 403 AccessDenied"));
    CHECK_FALSE(Contains(error->what(), "eyJ"));
  }

  TEST_CASE("container credentials: FULL_URI with the token file's Authorization") {
    TempDir dir;
    WriteFile(dir / "auth", "pod-identity-token\n");
    std::string authorization;
    std::string path;
    TestServer agent([&](const ServerRequest& request) {
      authorization = Header(request, "authorization");
      path = request.head.substr(0, request.head.find(" HTTP/"));
      return ServerReply{Reply("200 OK", kJson)};
    });
    auto env = Env({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.Url("/v1/credentials")},
                    {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", dir / "auth"},
                    {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "not-this-one"},
                    {"AWS_SHARED_CREDENTIALS_FILE", dir / "none"}});
    const Credentials credentials = Resolve({}, env);
    CHECK(credentials.access_key_id == "ASIAJSON");
    CHECK(credentials.session_token == "jsontoken");
    CHECK(authorization == "pod-identity-token");
    CHECK(path == "GET /v1/credentials");

    // The token variable without a file.
    Resolve({}, Env({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.Url("/v1/credentials")},
                     {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "plain-token"},
                     {"AWS_SHARED_CREDENTIALS_FILE", dir / "none"}}));
    CHECK(authorization == "plain-token");

    // Plain http to anywhere but loopback or the agents is refused.
    auto error = ResolveError(
        {}, Env({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://metadata.example.com/creds"},
                 {"AWS_SHARED_CREDENTIALS_FILE", dir / "none"}}));
    REQUIRE(error);
    CHECK(Contains(error->what(), "container credentials: AWS_CONTAINER_CREDENTIALS_FULL_URI uses "
                                  "http:// to a host that is not loopback"));
  }

  TEST_CASE("EC2 instance metadata: IMDSv2 token, role name, role credentials") {
    TempDir dir;
    std::vector<std::string> seen;
    TestServer imds([&](const ServerRequest& request) {
      const std::string line = request.head.substr(0, request.head.find(" HTTP/"));
      seen.push_back(line + " token=" + Header(request, "x-aws-ec2-metadata-token") + " ttl=" +
                     Header(request, "x-aws-ec2-metadata-token-ttl-seconds"));
      if (line == "PUT /latest/api/token") return ServerReply{Reply("200 OK", "imds-session")};
      if (line == "GET /latest/meta-data/iam/security-credentials/") {
        return ServerReply{Reply("200 OK", "wal-role\n")};
      }
      if (line == "GET /latest/meta-data/iam/security-credentials/wal-role") {
        return ServerReply{Reply("200 OK", std::string(R"({"Code":"Success",)") + (kJson + 1))};
      }
      return ServerReply{Reply("404 Not Found", "")};
    });
    std::map<std::string, std::string> vars = {
        {"AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.Url("/")},
        {"AWS_SHARED_CREDENTIALS_FILE", dir / "none"}};
    const Credentials credentials = Resolve({}, MapEnv(vars));
    CHECK(credentials.access_key_id == "ASIAJSON");
    CHECK(credentials.session_token == "jsontoken");
    REQUIRE(seen.size() == 3);
    CHECK(seen[0] == "PUT /latest/api/token token=(absent) ttl=21600");
    CHECK(seen[1] == "GET /latest/meta-data/iam/security-credentials/ token=imds-session ttl=(absent)");
    CHECK(seen[2] ==
          "GET /latest/meta-data/iam/security-credentials/wal-role token=imds-session ttl=(absent)");

    // Disabled: never asked.
    seen.clear();
    vars["AWS_EC2_METADATA_DISABLED"] = "TRUE";
    auto error = ResolveError({}, MapEnv(vars));
    REQUIRE(error);
    CHECK(seen.empty());
    CHECK(Contains(error->what(), "EC2 instance metadata: AWS_EC2_METADATA_DISABLED is true"));
  }

  TEST_CASE("missing credentials name every source and why, and no secret") {
    TempDir dir;
    WriteFile(dir / "credentials", "[other]\naws_access_key_id = X\n");
    S3Settings settings;
    settings.access_key_id = "ONLYTHEID";  // without a secret: not usable
    const std::string refused_port = [] {
      TestServer server([](const ServerRequest&) { return ServerReply{}; });
      return server.Url("");
    }();  // nothing listens there any more
    auto error = ResolveError(settings,
                              MapEnv({{"AWS_SHARED_CREDENTIALS_FILE", dir / "credentials"},
                                      {"AWS_CONFIG_FILE", dir / "config"},
                                      {"AWS_EC2_METADATA_SERVICE_ENDPOINT", refused_port}}));
    REQUIRE(error);
    const std::string message = error->what();
    CHECK(error->code() == ErrorCode::kConfig);
    CHECK(Contains(message, "static keys: no access_key_id and secret_access_key in the [s3] "
                            "table of the config file, nor AWS_ACCESS_KEY_ID and "
                            "AWS_SECRET_ACCESS_KEY in the environment"));
    CHECK(Contains(message, "web identity: AWS_WEB_IDENTITY_TOKEN_FILE or AWS_ROLE_ARN is not set"));
    CHECK(Contains(message, "profile: profile \"default\" has neither"));
    CHECK(Contains(message, dir / "credentials"));
    CHECK(Contains(message, "container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and "
                            "AWS_CONTAINER_CREDENTIALS_FULL_URI are not set"));
    CHECK(Contains(message, "EC2 instance metadata: no instance metadata service at " +
                                refused_port));
    CHECK_FALSE(Contains(message, "ONLYTHEID"));
  }

  TEST_CASE("credentials that have already expired count as none") {
    FakeSource fake;
    fake.lifetime = -1;
    auto error = ThrownError([&] { CredentialProvider({fake.Source()}, fake.Clock()); });
    REQUIRE(error);
    CHECK(error->code() == ErrorCode::kConfig);
    CHECK(Contains(error->what(), "fake source: its credentials expired at 1970-01-12T13:46:39Z"));
  }

  TEST_CASE("refresh: within 5 minutes of expiry; a failed refresh keeps valid credentials") {
    FakeSource fake;
    CredentialProvider provider({fake.Source()}, fake.Clock());
    CHECK(provider.Current().access_key_id == "K1");
    fake.now += 3600 - 301;  // 301 s left: no refresh yet
    CHECK(provider.Current().access_key_id == "K1");
    CHECK(fake.calls == 1);
    fake.now += 2;  // 299 s left
    CHECK(provider.Current().access_key_id == "K2");
    CHECK(fake.calls == 2);

    fake.now += 3600 - 100;  // 100 s left, and the source is down
    fake.fail = true;
    CHECK(provider.Current().access_key_id == "K2");
    CHECK(fake.calls == 3);
    fake.now += 5;  // no new attempt for kRetryAfterFailureSeconds
    CHECK(provider.Current().access_key_id == "K2");
    CHECK(fake.calls == 3);
    fake.now += 6;
    CHECK(provider.Current().access_key_id == "K2");
    CHECK(fake.calls == 4);

    fake.now += 100;  // expired, source still down
    auto error = ThrownError([&] { provider.Current(); });
    REQUIRE(error);
    CHECK(error->code() == ErrorCode::kAuth);
    CHECK(Contains(error->what(), "the S3 credentials from fake source expired at"));
    CHECK(Contains(error->what(), "could not be refreshed: the fake is down"));

    fake.fail = false;  // back: the next request gets fresh ones
    CHECK(provider.Current().access_key_id == "K6");
  }

  TEST_CASE("credentials without an expiry are never refreshed") {
    int calls = 0;
    std::time_t now = 0;
    CredentialProvider provider(
        {{"keys", [&] {
            ++calls;
            return SourceResult{TimedCredentials{{"A", "S", ""}, std::nullopt}, ""};
          }}},
        [&] { return now; });
    now += 10 * 365 * 86400;
    CHECK(provider.Current().access_key_id == "A");
    CHECK(calls == 1);
  }
}

}  // namespace walstore::s3
