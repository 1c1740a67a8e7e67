// Filesystem repository (file:///path).  Internal: use OpenStorage().
#pragma once
#include <walstore/storage.h>
#include <memory>
#include <string>
namespace walstore {
// `root` is an absolute directory.  Only Initialize() (walctl init) creates
// it; writers give an existing empty root its format file
// (kRepositoryFormatFile) on first use and refuse a missing one; readers
// verify it is a repository before answering "absent" (see storage.h).
std::unique_ptr<Storage> OpenPosixStorage(const std::string& root);
}  // namespace walstore
