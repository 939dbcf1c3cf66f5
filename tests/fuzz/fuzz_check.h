// FUZZ_CHECK: a property of the code under test that must hold for every input. A failure prints
// what failed and aborts, which libFuzzer reports as a crash and saves the input that caused it.
// (assert() would vanish under NDEBUG; these never do.)
#ifndef PROTEUS_TESTS_FUZZ_FUZZ_CHECK_H_
#define PROTEUS_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond, ...)                                                     \
  do {                                                                            \
    if (!(cond)) {                                                                \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: ", __FILE__, __LINE__, \
                   #cond);                                                        \
      std::fprintf(stderr, __VA_ARGS__);                                          \
      std::fprintf(stderr, "\n");                                                 \
      std::abort();                                                               \
    }                                                                             \
  } while (0)

#endif  // PROTEUS_TESTS_FUZZ_FUZZ_CHECK_H_
