// The unit test binary: doctest's runner, with the in-memory backend
// registered so that tests can name memory://NAME repositories (the
// production programs cannot).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "storage/memory/memory_storage.h"

int main(int argc, char** argv) {
  walstore::RegisterMemoryStorage();
  return doctest::Context(argc, argv).run();
}
