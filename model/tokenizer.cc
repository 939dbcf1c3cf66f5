#include "model/tokenizer.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace proteus {
namespace {

using Json = nlohmann::json;

// T is int64_t or uint64_t: JSON integers can exceed either alone.
template <typename T>
absl::Status OutOfRange(size_t index, T id, int vocab_size) {
  return absl::InvalidArgumentError(absl::StrCat(
      "token ids[", index, "]: ", id, " is out of range [0, ", vocab_size, ")"));
}

absl::Status CheckVocabSize(int vocab_size) {
  if (vocab_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocab_size: must be >= 1, got ", vocab_size));
  }
  return absl::OkStatus();
}

// Containers by type only: a hostile element can neither flood the message
// nor recurse deeply.
std::string Describe(const Json& v) {
  if (v.is_structured()) return v.type_name();
  std::string s = v.dump();
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

}  // namespace

std::vector<int32_t> TokenizeBytes(std::string_view bytes) {
  std::vector<int32_t> ids(bytes.size());
  for (size_t i = 0; i < bytes.size(); ++i) {
    ids[i] = static_cast<unsigned char>(bytes[i]);
  }
  return ids;
}

absl::StatusOr<std::vector<int32_t>> ParseTokenIdsJson(std::string_view json_text,
                                                       int vocab_size) {
  if (absl::Status s = CheckVocabSize(vocab_size); !s.ok()) return s;
  Json j;
  try {
    j = Json::parse(json_text.begin(), json_text.end());
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("token ids: invalid JSON: ", e.what()));
  }
  if (!j.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "token ids: expected a JSON array of integers, got ", j.type_name()));
  }
  std::vector<int32_t> ids;
  ids.reserve(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    const Json& v = j[i];
    if (!v.is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token ids[", i, "]: must be an integer, got ", Describe(v)));
    }
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u >= static_cast<uint64_t>(vocab_size)) {
        return OutOfRange(i, u, vocab_size);
      }
      ids.push_back(static_cast<int32_t>(u));
    } else {
      const int64_t s = v.get<int64_t>();
      if (s < 0 || s >= vocab_size) return OutOfRange(i, s, vocab_size);
      ids.push_back(static_cast<int32_t>(s));
    }
  }
  return ids;
}

absl::Status CheckTokenIds(absl::Span<const int32_t> ids, int vocab_size) {
  if (absl::Status s = CheckVocabSize(vocab_size); !s.ok()) return s;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size) {
      return OutOfRange(i, int64_t{ids[i]}, vocab_size);
    }
  }
  return absl::OkStatus();
}

std::string DetokenizeBytes(absl::Span<const int32_t> ids) {
  static constexpr const char* kSpecialNames[] = {"<bos>", "<eos>", "<pad>",
                                                  "<sep>"};
  std::string out;
  out.reserve(ids.size());
  for (int32_t id : ids) {
    if (id >= 0 && id < kNumByteTokens) {
      out.push_back(static_cast<char>(static_cast<unsigned char>(id)));
    } else if (id >= kBos && id <= kSep) {
      out += kSpecialNames[id - kBos];
    } else {
      absl::StrAppend(&out, "<id:", id, ">");
    }
  }
  return out;
}

}  // namespace proteus
