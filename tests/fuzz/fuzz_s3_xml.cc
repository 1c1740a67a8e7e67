// The S3 reply parsers (src/lib/storage/s3/s3_xml.cc) on arbitrary bodies: a
// server (or anything between it and us) chooses these bytes.  Bad replies
// are kStorage; ParseErrorBody never throws.
#include "fuzz_util.h"
#include "storage/s3/s3_xml.h"

using namespace walstore;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string xml(reinterpret_cast<const char*>(data), size);
  fuzz::Expect({ErrorCode::kStorage}, [&] {
    const s3::ListPage page = s3::ParseListPage(xml);
    // The next request carries the token and the keys go into a delete body.
    std::vector<std::string> keys;
    for (const auto& object : page.objects) keys.push_back(object.key);
    s3::DeleteRequestBody(keys);
  });
  fuzz::Expect({}, [&] { s3::ParseErrorBody(xml); });
  fuzz::Expect({ErrorCode::kStorage}, [&] { s3::ParseDeleteErrors(xml); });
  fuzz::Expect({ErrorCode::kStorage}, [&] {
    const std::string id = s3::ParseUploadId(xml);
    fuzz::Require(!id.empty(), "an upload id is never empty");
  });
  fuzz::Require(s3::ParseIsoTime(xml) >= 0, "a time is never before the epoch");
  return 0;
}
