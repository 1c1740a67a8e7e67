// Filesystem repository (file:///path).  Internal: use OpenStorage().
#pragma once
#include <walstore/storage.h>
#include <memory>
#include <string>
namespace walstore {
// `root` is an absolute directory; created (with parents) on first write.
std::unique_ptr<Storage> OpenPosixStorage(const std::string& root);
}  // namespace walstore
