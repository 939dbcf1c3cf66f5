// Writing files so that a crash never leaves a half-written one behind.
#ifndef PROTEUS_MODEL_FILE_UTIL_H_
#define PROTEUS_MODEL_FILE_UTIL_H_

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace proteus {

// Writes `contents` to `path + ".tmp"`, fsyncs it and renames it over
// `path`: readers see the old file or the new one, never a part.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents);

// A regular file opened for reading, with its size at open time. The caller
// owns `file` and must fclose it.
struct OpenedFile {
  std::FILE* file = nullptr;
  int64_t size = 0;
};
// Errors: errno's status "<path>: cannot open", or INVALID_ARGUMENT
// "<path>: not a regular file" (directories, devices, pipes).
absl::StatusOr<OpenedFile> OpenRegularFile(const std::string& path);

}  // namespace proteus

#endif  // PROTEUS_MODEL_FILE_UTIL_H_
