// JSON parsing for files we must not misread (config.json, safetensors
// headers): nlohmann silently keeps the last of duplicate keys and recurses
// without bound, so both are caught here. Callers word their own errors
// (a config error starts with the field, a header error with the file).
#ifndef PROTEUS_MODEL_STRICT_JSON_H_
#define PROTEUS_MODEL_STRICT_JSON_H_

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace proteus {

struct StrictJson {
  nlohmann::json value;
  std::string duplicate_key;  // the first key seen twice in one object, or ""
  bool too_deep = false;      // nested deeper than max_depth
};

// Parses `text`. Syntax errors are INVALID_ARGUMENT "<what>: invalid JSON:
// ...", running out of memory RESOURCE_EXHAUSTED; duplicates and depth are
// reported in the result for the caller to word.
absl::StatusOr<StrictJson> ParseStrictJson(std::string_view text, std::string_view what,
                                           size_t max_depth);

// A short rendering of a value for messages: containers by type only, so a
// hostile value can neither flood the message nor recurse.
std::string DescribeJson(const nlohmann::json& v);

}  // namespace proteus

#endif  // PROTEUS_MODEL_STRICT_JSON_H_
