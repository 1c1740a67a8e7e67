#include <walstore/number.h>

namespace walstore {

void FailBadNumber(ErrorCode code, std::string_view what, std::string_view text,
                   std::string_view expected) {
  constexpr size_t kShown = 40;  // enough to recognise the text, not a screenful of junk
  const std::string shown = text.size() > kShown ? std::string(text.substr(0, kShown)) + "..."
                                                 : std::string(text);
  Fail(code, "{} must be {}, not \"{}\"", what, expected, shown);
}

}  // namespace walstore
