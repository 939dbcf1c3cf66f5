#include "kernels/cuda/autotuner.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace proteus {
namespace {

int64_t PowerOfTwoBucket(int64_t n) {
  int64_t b = 1;
  while (b < n) b <<= 1;
  return b;
}

}  // namespace

std::string TuneKey::ToString() const {
  const double bucket = std::ceil(std::clamp(density, 0.0, 1.0) * 8.0) / 8.0;
  return absl::StrFormat("%s|%s|hd%d|b%d|%s|T%d|d%.3f", device, dtype, head_dim, block, pathway,
                         PowerOfTwoBucket(tokens), bucket);
}

std::string CachePathFromEnv() {
  const char* dir = std::getenv("PROTEUS_CACHE_DIR");
  if (dir == nullptr || *dir == '\0') return "";
  return (std::filesystem::path(dir) / "flux_tuning.json").string();
}

Autotuner::Autotuner(AutotunerOptions options) : options_(std::move(options)) {}

size_t Autotuner::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return table_.size();
}

int Autotuner::tunings() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tunings_;
}

namespace {

// Reads one table file into `table` (entries already there are replaced).
absl::Status ReadTable(const std::string& path, std::map<std::string, FluxTileConfig>* table) {
  if (path.empty() || !std::filesystem::exists(path)) return absl::OkStatus();
  std::ifstream in(path);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("entries") || !j["entries"].is_object()) {
    return absl::DataLossError(absl::StrCat(path, ": not a flux tuning table"));
  }
  std::map<std::string, FluxTileConfig> read;
  for (const auto& [key, value] : j["entries"].items()) {
    if (!value.is_object() || !value.contains("block_n") || !value.contains("warps") ||
        !value["block_n"].is_number_integer() || !value["warps"].is_number_integer()) {
      return absl::DataLossError(absl::StrCat(path, ": entry ", key, " is malformed"));
    }
    read[key] = FluxTileConfig{value["block_n"].get<int>(), value["warps"].get<int>()};
  }
  for (auto& [key, tile] : read) (*table)[key] = tile;
  return absl::OkStatus();
}

}  // namespace

absl::Status Autotuner::Load() {
  std::lock_guard<std::mutex> lock(mu_);
  loaded_ = true;
  absl::Status defaults = ReadTable(options_.defaults_path, &table_);
  absl::Status cache = ReadTable(options_.cache_path, &table_);
  return cache.ok() ? defaults : cache;
}

absl::Status Autotuner::Save() const {
  if (options_.cache_path.empty()) return absl::OkStatus();
  nlohmann::json j;
  j["format"] = "proteus flux tuning cache v1";
  j["entries"] = nlohmann::json::object();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, tile] : table_) {
      j["entries"][key] = {{"block_n", tile.block_n}, {"warps", tile.warps}};
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(options_.cache_path).parent_path(), ec);
  const std::string tmp = options_.cache_path + ".tmp";
  {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
    if (!out) return absl::InternalError(absl::StrCat(tmp, ": write failed"));
  }
  std::filesystem::rename(tmp, options_.cache_path, ec);  // atomic: readers see old or new
  if (ec) return absl::InternalError(absl::StrCat(options_.cache_path, ": ", ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<FluxTileConfig> Autotuner::Choose(const TuneKey& key, const TimeFn& time) {
  if (!options_.enabled) return DefaultFluxTile(key.block);
  bool need_load;
  {
    std::lock_guard<std::mutex> lock(mu_);
    need_load = !loaded_;
  }
  if (need_load) {
    if (absl::Status s = Load(); !s.ok()) {
      std::fprintf(stderr, "autotuner: ignoring the cache: %s\n", std::string(s.message()).c_str());
    }
  }
  const std::string k = key.ToString();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = table_.find(k);
    if (it != table_.end()) return it->second;
  }
  FluxTileConfig best;
  double best_ms = std::numeric_limits<double>::infinity();
  std::string errors;
  for (const FluxTileConfig& tile : FluxTileCandidates(key.block)) {
    absl::StatusOr<double> ms = time(tile);
    if (!ms.ok()) {
      absl::StrAppend(&errors, " ", tile.ToString(), ": ", ms.status().message(), ";");
      continue;
    }
    if (*ms < best_ms) {
      best_ms = *ms;
      best = tile;
    }
  }
  if (!std::isfinite(best_ms)) {
    return absl::FailedPreconditionError(absl::StrCat("autotuner: no tile ran for ", k, ":", errors));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    table_[k] = best;
    ++tunings_;
  }
  if (absl::Status s = Save(); !s.ok()) {
    std::fprintf(stderr, "autotuner: %s\n", std::string(s.message()).c_str());
  }
  return best;
}

}  // namespace proteus
