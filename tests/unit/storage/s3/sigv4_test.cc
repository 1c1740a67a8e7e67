// SigV4 against AWS's published test suite and the S3 examples of the
// "Signature Calculations" page of the S3 API reference.
#include "storage/s3/sigv4.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "storage/s3/s3_test_paths.h"

namespace walstore::s3 {
namespace {

namespace fs = std::filesystem;

// normalize-path cases whose expected canonical path is the normalised one:
// S3 never normalises ("my-object//example//photo.user" is a key of its own),
// so these rules do not apply (see docs/s3.md).  get-space there does apply.
const std::set<std::string> kNotForS3 = {
    "get-relative",        "get-relative-relative",   "get-slash",
    "get-slash-dot-slash", "get-slash-pointless-dot", "get-slashes"};

// Two published cases are inconsistent: their .sts and .authz come from a
// slightly different request than their .req/.creq (checked below).
const std::map<std::string, std::function<void(SigningRequest&)>> kSuiteErrata = {
    // signed without the Content-Length header its .creq lists
    {"post-x-www-form-urlencoded",
     [](SigningRequest& r) {
       std::erase_if(r.headers, [](const auto& h) { return h.first == "Content-Length"; });
     }},
    // signed with "charset=utf8" where its .req and .creq say "charset=utf-8",
    // and without Content-Length although its .authz lists it
    {"post-x-www-form-urlencoded-parameters",
     [](SigningRequest& r) {
       std::erase_if(r.headers, [](const auto& h) { return h.first == "Content-Length"; });
       for (auto& [name, value] : r.headers) {
         if (name == "Content-Type") value = "application/x-www-form-urlencoded; charset=utf8";
       }
     }},
};

std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot read " << path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

struct SuiteCase {
  std::string name;
  SigningRequest request;
  std::string creq, sts, authz;
};

// Parses a .req file: request line, headers (a line starting with white space
// continues the previous header with another value), blank line, body.
SigningRequest ParseRequest(const std::string& text) {
  SigningRequest request;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  const size_t first = line.find(' ');
  const size_t last = line.rfind(' ');
  request.method = line.substr(0, first);
  const std::string target = line.substr(first + 1, last - first - 1);
  const size_t question = target.find('?');
  request.path = target.substr(0, question);
  if (question != std::string::npos) {
    std::istringstream query(target.substr(question + 1));
    std::string pair;
    while (std::getline(query, pair, '&')) {
      const size_t equals = pair.find('=');
      request.query.emplace_back(pair.substr(0, equals),
                                 equals == std::string::npos ? "" : pair.substr(equals + 1));
    }
  }
  while (std::getline(in, line) && !line.empty()) {
    if (line[0] == ' ' || line[0] == '\t') {
      request.headers.emplace_back(request.headers.back().first, line);
    } else {
      const size_t colon = line.find(':');
      request.headers.emplace_back(line.substr(0, colon), line.substr(colon + 1));
    }
  }
  std::string body;
  if (in) body.assign(std::istreambuf_iterator<char>(in), {});
  request.payload_hash = Sha256Hex(AsBytes(body));
  return request;
}

std::vector<SuiteCase> LoadSuite() {
  std::vector<SuiteCase> cases;
  for (const auto& entry : fs::recursive_directory_iterator(kSigV4SuiteDir)) {
    if (entry.path().extension() != ".req") continue;
    const fs::path base = entry.path().parent_path() / entry.path().stem();
    SuiteCase c;
    c.name = entry.path().stem().string();
    c.request = ParseRequest(ReadText(entry.path()));
    c.creq = ReadText(fs::path(base).concat(".creq"));
    c.sts = ReadText(fs::path(base).concat(".sts"));
    c.authz = ReadText(fs::path(base).concat(".authz"));
    cases.push_back(std::move(c));
  }
  std::sort(cases.begin(), cases.end(),
            [](const SuiteCase& a, const SuiteCase& b) { return a.name < b.name; });
  return cases;
}

const Credentials kSuiteCredentials{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
const Credentials kS3DocCredentials{"AKIAIOSFODNN7EXAMPLE",
                                    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// The S3 documentation examples use virtual-hosted examplebucket and
// x-amz-content-sha256; the Authorization header there has no space after ','.
SignResult SignS3DocExample(SigningRequest request) {
  request.headers.emplace_back("Host", "examplebucket.s3.amazonaws.com");
  request.headers.emplace_back("x-amz-date", "20130524T000000Z");
  request.headers.emplace_back("x-amz-content-sha256", request.payload_hash);
  return Sign(request, kS3DocCredentials, "us-east-1", "s3", "20130524T000000Z");
}

}  // namespace

TEST_SUITE("s3_sigv4") {
  TEST_CASE("every applicable case of the AWS SigV4 test suite matches byte for byte") {
    const std::vector<SuiteCase> cases = LoadSuite();
    REQUIRE(cases.size() == 31);  // the whole published suite; none may go missing
    int compared = 0;
    for (const SuiteCase& c : cases) {
      CAPTURE(c.name);
      const SignResult result =
          Sign(c.request, kSuiteCredentials, "us-east-1", "service", "20150830T123600Z");
      if (kNotForS3.count(c.name)) {
        // S3 rule instead: the path is encoded but kept as it is.
        const std::string first_line =
            result.canonical_request.substr(result.canonical_request.find('\n') + 1);
        CHECK(first_line.substr(0, first_line.find('\n')) == UriEncode(c.request.path, true));
        continue;
      }
      CHECK(result.canonical_request == c.creq);
      const auto errata = kSuiteErrata.find(c.name);
      if (errata == kSuiteErrata.end()) {
        CHECK(result.string_to_sign == c.sts);
        CHECK(result.authorization == c.authz);
      } else {
        // The published .sts/.authz were not derived from the published
        // .creq (its SHA-256 is not the one in .sts); they reproduce from the
        // request they were generated from.
        CHECK(c.sts.find(Sha256Hex(AsBytes(c.creq))) == std::string::npos);
        SigningRequest original = c.request;
        errata->second(original);
        const SignResult again =
            Sign(original, kSuiteCredentials, "us-east-1", "service", "20150830T123600Z");
        CHECK(again.string_to_sign == c.sts);
        CHECK(c.authz.ends_with("Signature=" + again.signature));
      }
      ++compared;
    }
    CHECK(compared == 25);
  }

  TEST_CASE("S3 example: GET object with a range, empty payload hash") {
    SigningRequest request{
        "GET", "/test.txt", {}, {{"Range", "bytes=0-9"}}, std::string(kEmptySha256)};
    const SignResult result = SignS3DocExample(request);
    CHECK(result.canonical_request ==
          "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
          "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
          "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(result.string_to_sign ==
          "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
          "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
    CHECK(result.signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    CHECK(result.authorization ==
          "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
          "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
          "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  }

  TEST_CASE("S3 example: PUT object with a signed payload and a key needing encoding") {
    const std::string body = "Welcome to Amazon S3.";
    SigningRequest request{
        "PUT",
        "/test$file.text",
        {},
        {{"Date", "Fri, 24 May 2013 00:00:00 GMT"}, {"x-amz-storage-class", "REDUCED_REDUNDANCY"}},
        Sha256Hex(AsBytes(body))};
    CHECK(request.payload_hash ==
          "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    const SignResult result = SignS3DocExample(request);
    CHECK(result.canonical_request.substr(0, 22) == "PUT\n/test%24file.text\n");
    CHECK(result.signed_headers == "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class");
    CHECK(result.string_to_sign.substr(result.string_to_sign.rfind('\n') + 1) ==
          "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
    CHECK(result.signature == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
  }

  TEST_CASE("S3 example: GET bucket lifecycle, a query name without value") {
    SigningRequest request{"GET", "/", {{"lifecycle", ""}}, {}, std::string(kEmptySha256)};
    const SignResult result = SignS3DocExample(request);
    CHECK(result.canonical_request.substr(0, 16) == "GET\n/\nlifecycle=");
    CHECK(result.signature == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
  }

  TEST_CASE("S3 example: GET bucket (list objects), query sorted by name") {
    SigningRequest request{
        "GET", "/", {{"prefix", "J"}, {"max-keys", "2"}}, {}, std::string(kEmptySha256)};
    const SignResult result = SignS3DocExample(request);
    CHECK(result.string_to_sign.substr(result.string_to_sign.rfind('\n') + 1) ==
          "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7");
    CHECK(result.signature == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
  }

  TEST_CASE("unsigned payload and session token are part of what is signed") {
    SigningRequest request{"PUT",
                           "/bucket/a b",
                           {},
                           {{"host", "h"}, {"x-amz-date", "20150830T123600Z"}},
                           std::string(kUnsignedPayload)};
    const SignResult plain =
        Sign(request, kSuiteCredentials, "us-east-1", "s3", "20150830T123600Z");
    CHECK(plain.canonical_request.substr(plain.canonical_request.rfind('\n') + 1) ==
          "UNSIGNED-PAYLOAD");
    CHECK(plain.canonical_request.find("/bucket/a%20b\n") != std::string::npos);
    request.headers.emplace_back("x-amz-security-token", "token");
    const SignResult with_token =
        Sign(request, kSuiteCredentials, "us-east-1", "s3", "20150830T123600Z");
    CHECK(with_token.signed_headers == "host;x-amz-date;x-amz-security-token");
    CHECK(with_token.signature != plain.signature);
  }

  TEST_CASE("encoding helpers") {
    CHECK(UriEncode("a b/c~d$", true) == "a%20b/c~d%24");
    CHECK(UriEncode("a b/c", false) == "a%20b%2Fc");
    CHECK(CanonicalQuery({{"continuation-token", "1/2+3="}, {"list-type", "2"}}) ==
          "continuation-token=1%2F2%2B3%3D&list-type=2");
    CHECK(AmzDate(1440938160) == "20150830T123600Z");
  }
}

}  // namespace walstore::s3
