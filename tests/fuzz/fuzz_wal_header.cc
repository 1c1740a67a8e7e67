// ParseWalLongHeader (src/lib/archive/wal_file.cc) on arbitrary first bytes
// of a file walpush is asked to archive, then the check against its name.
// A header that parses has a sane segment and block size; the mismatch check
// never divides by zero or throws.
#include <walstore/wal_file.h>
#include <walstore/wal_name.h>

#include "fuzz_util.h"

using namespace walstore;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto header = ParseWalLongHeader(Bytes(data, size));
  if (!header) return 0;
  fuzz::Require(size >= kWalLongHeaderSize, "needs a whole header");
  fuzz::Require(IsValidSegmentSize(header->segment_size), "segment size is valid");
  fuzz::Require(header->timeline != 0, "timeline is not 0");
  static const WalFileName name = *ParseWalFileName("000000010000000A000000FE");
  static const WalFileName partial = *ParseWalFileName("000000010000000A000000FE.partial");
  SegmentHeaderMismatch(*header, name, header->segment_size);
  SegmentHeaderMismatch(*header, partial, 0);
  return 0;
}
