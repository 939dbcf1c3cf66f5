#include "server/default_model.h"

#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace proteus {
namespace {

bool HoldsModel(const std::string& dir) {
  std::error_code ec;
  return std::filesystem::is_regular_file(std::filesystem::path(dir) / "config.json", ec);
}

std::string ExecutablePath() {
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.string();
}

}  // namespace

std::vector<std::string> DefaultModelCandidates() {
  std::vector<std::string> out;
  const std::string exe = ExecutablePath();
  if (!exe.empty()) {
    const std::filesystem::path dir = std::filesystem::path(exe).parent_path();
    out.push_back((dir.parent_path() / "models" / "default").string());
  }
  // Bazel: the binary's data dependency //models:proteus_small.
  const std::string runfiles_model = absl::StrCat("proteus/models/", kDefaultModelName);
  if (const char* runfiles = std::getenv("RUNFILES_DIR"); runfiles != nullptr && *runfiles) {
    out.push_back(absl::StrCat(runfiles, "/", runfiles_model));
  }
  if (!exe.empty()) out.push_back(absl::StrCat(exe, ".runfiles/", runfiles_model));
#ifdef PROTEUS_SOURCE_DIR
  out.push_back(absl::StrCat(PROTEUS_SOURCE_DIR, "/models/", kDefaultModelName));
#endif
  return out;
}

absl::StatusOr<std::string> FindDefaultModel(const std::string& override_dir,
                                             const std::vector<std::string>& candidates) {
  if (!override_dir.empty()) {
    if (HoldsModel(override_dir)) return override_dir;
    return absl::NotFoundError(absl::StrCat("PROTEUS_DEFAULT_MODEL=", override_dir,
                                            ": no config.json there"));
  }
  for (const std::string& dir : candidates) {
    if (HoldsModel(dir)) return dir;
  }
  return absl::NotFoundError(absl::StrCat(
      "no --model given and no default model found (looked in: ",
      candidates.empty() ? std::string("nowhere") : absl::StrJoin(candidates, ", "),
      "); pass --model DIR, set PROTEUS_DEFAULT_MODEL, or ask for a random-initialised model "
      "with --random_init or --random_config FILE"));
}

}  // namespace proteus
