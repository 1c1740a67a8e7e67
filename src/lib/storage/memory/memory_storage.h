// In-memory repository (memory://name) for unit tests.  All Storage objects
// opened with the same name share one process-wide store.  Internal.
#pragma once
#include <walstore/storage.h>
#include <memory>
#include <string>
namespace walstore {
std::unique_ptr<Storage> OpenMemoryStorage(const std::string& name);
// Drops every object of the named store (tests).
void ResetMemoryStorage(const std::string& name);
}  // namespace walstore
