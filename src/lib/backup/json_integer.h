// Internal: the one check of a JSON number that must be an integer of type T,
// shared by the readers of untrusted JSON (backup.json, backup_manifest).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <utility>

namespace walstore::backup {

// `value` as T when it is a JSON integer that T holds; nullopt for any other
// type (a string, a float, a boolean) or an integer out of T's range.
template <typename T>
std::optional<T> JsonInteger(const nlohmann::json& value) {
  if (value.is_number_unsigned() && std::in_range<T>(value.get<uint64_t>())) {
    return static_cast<T>(value.get<uint64_t>());
  }
  if (value.is_number_integer() && std::in_range<T>(value.get<int64_t>())) {
    return static_cast<T>(value.get<int64_t>());
  }
  return std::nullopt;
}

}  // namespace walstore::backup
