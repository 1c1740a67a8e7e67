// The S3 XML documents: listings, errors, batch delete, multipart.
#include "storage/s3/s3_xml.h"

#include <doctest/doctest.h>
#include <walstore/error.h>

namespace walstore::s3 {

TEST_SUITE("s3_xml") {
  TEST_CASE("a truncated ListObjectsV2 page") {
    const ListPage page = ParseListPage(
        R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>wal</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated><NextContinuationToken>1/abc+=</NextContinuationToken>
  <Contents><Key>p/a &amp; b</Key><LastModified>2026-11-21T11:20:14.000Z</LastModified>
    <ETag>"x"</ETag><Size>16777216</Size><StorageClass>STANDARD</StorageClass></Contents>
  <Contents><Key>p/c</Key><LastModified>1970-01-01T00:01:00.000Z</LastModified><Size>0</Size></Contents>
</ListBucketResult>)");
    REQUIRE(page.objects.size() == 2);
    CHECK(page.objects[0].key == "p/a & b");
    CHECK(page.objects[0].size == 16777216);
    CHECK(page.objects[0].modified == 1795260014);
    CHECK(page.objects[1].modified == 60);
    CHECK(page.next_token == "1/abc+=");
  }

  TEST_CASE("ParseIsoTime: fields out of range are malformed (0)") {
    // tests/fuzz/fuzz_s3_xml.cc: a year of INT_MIN overflowed "year - 1900".
    CHECK(ParseIsoTime("2026-11-21T11:20:14.000Z") == 1795260014);
    CHECK(ParseIsoTime("-2147483648-01-01T00:00:00Z") == 0);
    // Before the epoch (fuzz_credentials: an STS Expiration in 1013 was negative).
    CHECK(ParseIsoTime("1013-11-29T11:21:00Z") == 0);
    CHECK(ParseIsoTime("1969-12-31T23:59:59Z") == 0);
    CHECK(ParseIsoTime("1970-01-01T00:00:01Z") == 1);
    CHECK(ParseIsoTime("2026--2147483648-01T00:00:00Z") == 0);
    CHECK(ParseIsoTime("2026-13-01T00:00:00Z") == 0);
    CHECK(ParseIsoTime("2026-11-32T00:00:00Z") == 0);
    CHECK(ParseIsoTime("2026-11-21T24:00:00Z") == 0);
    CHECK(ParseIsoTime("2026-11-21T11:60:00Z") == 0);
    CHECK(ParseIsoTime("2147483647-99999-99999T99999:99999:99999Z") == 0);
    const ListPage page = ParseListPage(
        "<ListBucketResult><Contents><Key>k</Key><LastModified>-2147483648-1-1T0:0:0"
        "</LastModified></Contents></ListBucketResult>");
    REQUIRE(page.objects.size() == 1);
    CHECK(page.objects[0].modified == 0);
  }

  TEST_CASE("the last page has no token; junk is a storage error") {
    CHECK(ParseListPage("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>")
              .next_token.empty());
    CHECK_THROWS_AS(ParseListPage("<html>proxy error</html>"), Error);
    CHECK_THROWS_AS(ParseListPage("not xml at all <"), Error);
    CHECK_THROWS_AS(
        ParseListPage("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"),
        Error);
  }

  TEST_CASE("error documents") {
    const ErrorBody error = ParseErrorBody(
        "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Please reduce your request "
        "rate.</Message><RequestId>1</RequestId></Error>");
    CHECK(error.code == "SlowDown");
    CHECK(error.message == "Please reduce your request rate.");
    CHECK(ParseErrorBody("").code.empty());
    CHECK(
        ParseErrorBody("<DeleteResult><Error><Code>X</Code></Error></DeleteResult>").code.empty());
  }

  TEST_CASE("batch delete request and reply") {
    const std::string body = DeleteRequestBody({"p/a", "p/<b>"});
    CHECK(body ==
          "<?xml version=\"1.0\"?><Delete "
          "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>"
          "<Object><Key>p/a</Key></Object><Object><Key>p/&lt;b&gt;</Key></Object></Delete>");
    const std::vector<std::string> errors = ParseDeleteErrors(
        "<DeleteResult><Deleted><Key>p/a</Key></Deleted><Error><Key>p/b</Key><Code>AccessDenied"
        "</Code><Message>Access Denied</Message></Error></DeleteResult>");
    REQUIRE(errors.size() == 1);
    CHECK(errors[0] == "p/b: AccessDenied Access Denied");
    CHECK(ParseDeleteErrors("<DeleteResult/>").empty());
  }

  TEST_CASE("multipart upload documents") {
    CHECK(ParseUploadId("<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                        "<UploadId>VXBsb2FkSUQ</UploadId></InitiateMultipartUploadResult>") ==
          "VXBsb2FkSUQ");
    CHECK_THROWS_AS(ParseUploadId("<InitiateMultipartUploadResult/>"), Error);
    CHECK(CompleteRequestBody({"\"e1\"", "\"e2\""}) ==
          "<?xml version=\"1.0\"?><CompleteMultipartUpload "
          "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
          "<Part><PartNumber>1</PartNumber><ETag>\"e1\"</ETag></Part>"
          "<Part><PartNumber>2</PartNumber><ETag>\"e2\"</ETag></Part></CompleteMultipartUpload>");
  }

  TEST_CASE("ListMultipartUploads pages; another document means the server cannot list them") {
    const auto page = ParseUploadsPage(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
        "<ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>"
        "<NextKeyMarker>p/7/wal/b</NextKeyMarker><NextUploadIdMarker>id-2</NextUploadIdMarker>"
        "<MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>"
        "<Upload><Key>p/7/wal/a</Key><UploadId>id-1</UploadId>"
        "<Initiated>2026-11-21T11:20:14.000Z</Initiated></Upload>"
        "<Upload><Key>p/7/wal/b</Key><UploadId>id-2</UploadId>"
        "<Initiated>2026-11-22T00:00:00.000Z</Initiated></Upload>"
        "</ListMultipartUploadsResult>");
    REQUIRE(page);
    REQUIRE(page->uploads.size() == 2);
    CHECK(page->uploads[0].key == "p/7/wal/a");
    CHECK(page->uploads[0].upload_id == "id-1");
    CHECK(page->uploads[0].initiated == 1795260014);
    CHECK(page->uploads[1].upload_id == "id-2");
    CHECK(page->next_key_marker == "p/7/wal/b");
    CHECK(page->next_upload_id_marker == "id-2");

    const auto last = ParseUploadsPage(
        "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>"
        "<NextKeyMarker>ignored</NextKeyMarker></ListMultipartUploadsResult>");
    REQUIRE(last);
    CHECK(last->uploads.empty());
    CHECK(last->next_key_marker.empty());

    CHECK_THROWS_AS(ParseUploadsPage("<ListMultipartUploadsResult><IsTruncated>true"
                                     "</IsTruncated></ListMultipartUploadsResult>"),
                    Error);
    // s3rver and others answer GET ?uploads with a bucket listing or an error.
    CHECK_FALSE(ParseUploadsPage("<ListBucketResult><Name>b</Name></ListBucketResult>"));
    CHECK_FALSE(ParseUploadsPage("<Error><Code>NotImplemented</Code></Error>"));
    CHECK_FALSE(ParseUploadsPage("not xml"));
  }
}

}  // namespace walstore::s3
