// Writing files so that a crash never leaves a half-written one behind.
#ifndef PROTEUS_MODEL_FILE_UTIL_H_
#define PROTEUS_MODEL_FILE_UTIL_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace proteus {

// Writes `contents` to `path + ".tmp"`, fsyncs it and renames it over
// `path`: readers see the old file or the new one, never a part.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents);

}  // namespace proteus

#endif  // PROTEUS_MODEL_FILE_UTIL_H_
