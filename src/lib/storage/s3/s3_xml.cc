#include "storage/s3/s3_xml.h"

#include <walstore/error.h>

#include <pugixml.hpp>
#include <sstream>

namespace walstore::s3 {
namespace {

pugi::xml_document Parse(const std::string& xml, const char* what) {
  pugi::xml_document document;
  if (!document.load_buffer(xml.data(), xml.size())) {
    Fail(ErrorCode::kStorage, "S3 sent a malformed {} reply: {:.200}", what, xml);
  }
  return document;
}

std::string Serialize(const pugi::xml_document& document) {
  std::ostringstream out;
  document.save(out, "", pugi::format_raw);
  return out.str();
}

}  // namespace

std::time_t ParseIsoTime(const std::string& text) {
  std::tm tm{};
  if (sscanf(text.c_str(), "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
             &tm.tm_min, &tm.tm_sec) != 6) {
    return 0;
  }
  // Out-of-range fields are malformed (and INT_MIN - 1900 would overflow);
  // so is a time before the epoch (no S3 object or credential is that old).
  if (tm.tm_year < 1970 || tm.tm_year > 9999 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
      tm.tm_mday > 31 || tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 ||
      tm.tm_sec < 0 || tm.tm_sec > 60) {
    return 0;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return timegm(&tm);
}

ListPage ParseListPage(const std::string& xml) {
  const pugi::xml_document document = Parse(xml, "ListObjectsV2");
  const pugi::xml_node root = document.child("ListBucketResult");
  if (!root) Fail(ErrorCode::kStorage, "S3 sent no ListBucketResult: {:.200}", xml);
  ListPage page;
  for (pugi::xml_node node : root.children("Contents")) {
    page.objects.push_back({node.child_value("Key"), node.child("Size").text().as_ullong(),
                            ParseIsoTime(node.child_value("LastModified"))});
  }
  for (pugi::xml_node node : root.children("CommonPrefixes")) {
    page.common_prefixes.emplace_back(node.child_value("Prefix"));
  }
  if (root.child("IsTruncated").text().as_bool()) {
    page.next_token = root.child_value("NextContinuationToken");
    if (page.next_token.empty()) {
      Fail(ErrorCode::kStorage, "S3 listing is truncated but has no NextContinuationToken");
    }
  }
  return page;
}

std::optional<UploadsPage> ParseUploadsPage(const std::string& xml) {
  pugi::xml_document document;
  if (!document.load_buffer(xml.data(), xml.size())) return std::nullopt;
  const pugi::xml_node root = document.child("ListMultipartUploadsResult");
  if (!root) return std::nullopt;
  UploadsPage page;
  for (pugi::xml_node node : root.children("Upload")) {
    page.uploads.push_back({node.child_value("Key"), node.child_value("UploadId"),
                            ParseIsoTime(node.child_value("Initiated"))});
  }
  if (root.child("IsTruncated").text().as_bool()) {
    page.next_key_marker = root.child_value("NextKeyMarker");
    page.next_upload_id_marker = root.child_value("NextUploadIdMarker");
    if (page.next_key_marker.empty() && page.next_upload_id_marker.empty()) {
      Fail(ErrorCode::kStorage, "S3 upload listing is truncated but has no NextKeyMarker");
    }
  }
  return page;
}

ErrorBody ParseErrorBody(const std::string& xml) {
  pugi::xml_document document;
  if (!document.load_buffer(xml.data(), xml.size())) return {};
  const pugi::xml_node error = document.child("Error");
  return {error.child_value("Code"), error.child_value("Message"), error.child_value("Region"),
          error.child_value("Endpoint")};
}

std::string DeleteRequestBody(const std::vector<std::string>& keys) {
  pugi::xml_document document;
  pugi::xml_node root = document.append_child("Delete");
  root.append_attribute("xmlns") = "http://s3.amazonaws.com/doc/2006-03-01/";
  root.append_child("Quiet").text() = "true";
  for (const std::string& key : keys) {
    root.append_child("Object").append_child("Key").text() = key.c_str();
  }
  return Serialize(document);
}

std::vector<std::string> ParseDeleteErrors(const std::string& xml) {
  const pugi::xml_document document = Parse(xml, "DeleteObjects");
  std::vector<std::string> errors;
  for (pugi::xml_node node : document.child("DeleteResult").children("Error")) {
    errors.push_back(fmt::format("{}: {} {}", node.child_value("Key"), node.child_value("Code"),
                                 node.child_value("Message")));
  }
  return errors;
}

std::string ParseUploadId(const std::string& xml) {
  const pugi::xml_document document = Parse(xml, "CreateMultipartUpload");
  std::string id = document.child("InitiateMultipartUploadResult").child_value("UploadId");
  if (id.empty()) Fail(ErrorCode::kStorage, "S3 sent no UploadId: {:.200}", xml);
  return id;
}

std::string CompleteRequestBody(const std::vector<std::string>& etags) {
  pugi::xml_document document;
  pugi::xml_node root = document.append_child("CompleteMultipartUpload");
  root.append_attribute("xmlns") = "http://s3.amazonaws.com/doc/2006-03-01/";
  unsigned long long number = 0;
  for (const std::string& etag : etags) {
    pugi::xml_node part = root.append_child("Part");
    part.append_child("PartNumber").text() = ++number;
    part.append_child("ETag").text() = etag.c_str();
  }
  return Serialize(document);
}

}  // namespace walstore::s3
