#include "model/strict_json.h"

#include <new>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"

namespace proteus {

absl::StatusOr<StrictJson> ParseStrictJson(std::string_view text, std::string_view what,
                                           size_t max_depth) {
  using Json = nlohmann::json;
  StrictJson out;
  std::vector<std::set<std::string>> open;  // keys seen, per open container
  bool seen_duplicate = false;
  auto callback = [&](int, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        open.emplace_back();
        if (open.size() > max_depth) out.too_deep = true;
        break;
      case Json::parse_event_t::object_end:
      case Json::parse_event_t::array_end:
        if (!open.empty()) open.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!open.empty() && parsed.is_string() &&
            !open.back().insert(parsed.get<std::string>()).second && !seen_duplicate) {
          seen_duplicate = true;
          out.duplicate_key = parsed.get<std::string>();
        }
        break;
      default:
        break;
    }
    return true;  // keep everything: discarding skips end events
  };
  try {
    out.value = Json::parse(text.begin(), text.end(), callback);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(what), ": invalid JSON: ", e.what()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat(std::string(what), ": out of memory parsing JSON"));
  }
  return out;
}

std::string DescribeJson(const nlohmann::json& v) {
  if (v.is_structured()) return v.type_name();
  std::string s = v.dump();
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

}  // namespace proteus
