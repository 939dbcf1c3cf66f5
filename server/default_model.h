// Where proteus_server finds its model when --model is not given: the trained default model
// shipped in the repository (models/proteus-small, issue 7), wherever the build or the image put
// it. Never a random model: that must be asked for (--random_init / --random_config).
#ifndef PROTEUS_SERVER_DEFAULT_MODEL_H_
#define PROTEUS_SERVER_DEFAULT_MODEL_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace proteus {

// The name of the shipped model's directory under models/.
inline constexpr char kDefaultModelName[] = "proteus-small";

// The places the default model may be, in order: next to the installed binary
// (<exe>/../models/default, the container layout), Bazel's runfiles, the source tree the binary
// was built from (when the build says where it is).
std::vector<std::string> DefaultModelCandidates();

// `override_dir` (the PROTEUS_DEFAULT_MODEL environment variable; empty: unset) must hold a
// model if set. Otherwise the first candidate holding config.json. NOT_FOUND names every place
// looked in and what to pass instead.
absl::StatusOr<std::string> FindDefaultModel(const std::string& override_dir,
                                             const std::vector<std::string>& candidates);

}  // namespace proteus

#endif  // PROTEUS_SERVER_DEFAULT_MODEL_H_
