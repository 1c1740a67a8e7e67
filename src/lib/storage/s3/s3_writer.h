// Writing an S3 repository: new objects by a single PUT or, above
// s3.multipart_threshold, a multipart upload, both conditional
// (If-None-Match: *) so that an existing object is never replaced; and the
// incomplete multipart uploads that killed writers leave behind.  Internal to
// the S3 backend; see s3_storage.h for how the Storage calls map to S3.
#pragma once

#include <walstore/storage.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storage/s3/s3_request.h"

namespace walstore::s3 {

// The writer of Storage::Create(key, options).  An object whose size_hint is
// at most s3.multipart_threshold is buffered whole and sent with one PUT (so
// is any object up to s3.part_size); any other starts a multipart upload once
// more than s3.part_size bytes were written and uploads parts of that size
// in the background, two at a time at most (Write() waits for a slot), holding
// part 1 back until Commit() so that RewriteHead() still works: memory stays
// at about four parts.  A part that fails fails the next Write() and
// Commit() with its error.  Its existence check (HEAD) starts at once in the background.
// Commit() returns kAlreadyExists when the key exists (HEAD before the write,
// again after a multipart upload, or a 412); a writer destroyed without a
// successful Commit() waits for its parts under way, then aborts its
// multipart upload (one attempt; a failure is logged, the parts stay
// invisible).  `requests` must outlive the writer.
// Throws kInternal for a key that breaks the key rules (ValidateKey).
std::unique_ptr<ObjectWriter> CreateObjectWriter(RequestSender& requests, const std::string& key,
                                                 const WriteOptions& options);

// Multipart uploads below the repository prefix started at least
// `min_age_seconds` ago (Storage::ListLeftovers); std::nullopt when the
// server does not implement ListMultipartUploads.
std::optional<std::vector<Leftover>> ListIncompleteUploads(RequestSender& requests,
                                                           int64_t min_age_seconds);

// Aborts one upload ListIncompleteUploads returned; false when it was gone
// already (finished or aborted meanwhile).
bool AbortIncompleteUpload(RequestSender& requests, const Leftover& leftover);

}  // namespace walstore::s3
