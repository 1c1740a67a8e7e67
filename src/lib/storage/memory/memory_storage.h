// In-memory repository (memory://name) for unit tests.  All Storage objects
// opened with the same name share one process-wide store.  Built into the
// test binaries only (libwalstore_memory), never into walpush / walfetch /
// walctl: a repository that vanishes with the process must not be usable
// there.
#pragma once
#include <walstore/storage.h>
#include <memory>
#include <string>
namespace walstore {
std::unique_ptr<Storage> OpenMemoryStorage(const std::string& name);
// Makes OpenStorage() open memory://name URLs (test main() calls it).
void RegisterMemoryStorage();
// Drops every object of the named store (tests).
void ResetMemoryStorage(const std::string& name);
}  // namespace walstore
