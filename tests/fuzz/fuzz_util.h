// Shared by the libFuzzer targets in tests/fuzz (docs/testing.md, "Fuzzing").
//
// Each target feeds untrusted bytes to one parser.  What the parsers promise
// is the oracle: bad input is refused with walstore::Error of the code their
// header names, never with another exception, a crash, undefined behaviour
// (ASan/UBSan), a hang or unbounded memory.  Expect<...>() therefore lets only
// the listed error codes through; anything else escapes and libFuzzer reports
// it with the input that caused it.
#pragma once

#include <walstore/crypto.h>
#include <walstore/error.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <string_view>

namespace walstore::fuzz {

// Aborts (a finding) with `what` when `condition` is false.
inline void Require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "fuzz: broken promise: %s\n", what);
    std::abort();
  }
}

// Runs `parse`; a walstore::Error whose code is in `allowed` is an expected
// refusal, any other code aborts (other exceptions propagate and abort).
template <typename F>
void Expect(std::initializer_list<ErrorCode> allowed, F&& parse) {
  try {
    parse();
  } catch (const Error& e) {
    for (ErrorCode code : allowed) {
      if (e.code() == code) return;
    }
    std::fprintf(stderr, "fuzz: unexpected error code %s: %s\n", InfoFor(e.code()).name,
                 e.what());
    std::abort();
  }
}

// The fixed keys of the object decoder target and its seed corpus: derived
// from fixed text so anyone can rebuild the seeds (never a real key).
inline Key FuzzKey() { return Key(Sha256Of(AsBytes("walstore fuzz key"))); }
inline Key OtherFuzzKey() { return Key(Sha256Of(AsBytes("walstore fuzz key (rotated out)"))); }
// The storage key the seed objects are written for (format version 2 binds
// an object to it); fuzz_object_decoder decodes under it or under another.
inline constexpr const char* kObjectIdentity = "fuzz/object";

// Splits fuzz input into option bytes and fields.
class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size)
      : text_(reinterpret_cast<const char*>(data), size) {}
  // The next byte (0 once the input is used up).
  uint8_t Byte() {
    if (text_.empty()) return 0;
    auto b = static_cast<uint8_t>(text_[0]);
    text_.remove_prefix(1);
    return b;
  }
  // Text up to the next `separator` (which is consumed), or the rest.
  std::string_view Field(char separator = '\n') {
    size_t end = text_.find(separator);
    std::string_view field = text_.substr(0, end);
    text_.remove_prefix(end == std::string_view::npos ? text_.size() : end + 1);
    return field;
  }
  std::string_view Rest() {
    std::string_view rest = text_;
    text_ = {};
    return rest;
  }
  bool empty() const { return text_.empty(); }

 private:
  std::string_view text_;
};

}  // namespace walstore::fuzz
