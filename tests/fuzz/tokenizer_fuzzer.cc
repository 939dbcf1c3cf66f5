// Fuzzes the byte tokenizer (model/tokenizer.h): ParseTokenIdsJson (the clients' and
// proteus_encode's "[256, 104, 105]" input), CheckTokenIds, TokenizeBytes, DetokenizeBytes.
//
// Input: the first byte picks vocab_size (kVocabSizes, invalid ones included); the rest is the
// JSON text, and also the bytes to tokenize and, read as int32s, ids to check and detokenize.
// Checks: accepted ids are exactly the JSON array's integers, all in range; errors are
// INVALID_ARGUMENT naming "token ids" (and the first bad index); bytes round-trip through
// TokenizeBytes and DetokenizeBytes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "model/tokenizer.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

constexpr int kVocabSizes[] = {260, 256, 1, 0, -5, std::numeric_limits<int>::max(),
                               std::numeric_limits<int>::min(), 300};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace proteus;
  if (size == 0) return 0;
  const int vocab_size = kVocabSizes[data[0] % (sizeof(kVocabSizes) / sizeof(int))];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

  absl::StatusOr<std::vector<int32_t>> ids = ParseTokenIdsJson(text, vocab_size);
  if (!ids.ok()) {
    const absl::Status& s = ids.status();
    FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument, "code: %s", s.ToString().c_str());
    FUZZ_CHECK(absl::StartsWith(s.message(), "token ids") ||
                   absl::StartsWith(s.message(), "vocab_size: "),
               "message: %s", s.ToString().c_str());
  } else {
    FUZZ_CHECK(vocab_size >= 1, "ids accepted for vocab_size %d", vocab_size);
    FUZZ_CHECK(CheckTokenIds(*ids, vocab_size).ok(), "accepted ids fail CheckTokenIds");
    const nlohmann::json j = nlohmann::json::parse(text.begin(), text.end());
    FUZZ_CHECK(j.is_array() && j.size() == ids->size(), "not the array's length");
    for (size_t i = 0; i < ids->size(); ++i) {
      FUZZ_CHECK(j[i].is_number_integer() && j[i].get<int64_t>() == (*ids)[i], "id %zu", i);
      FUZZ_CHECK((*ids)[i] >= 0 && (*ids)[i] < vocab_size, "id %zu out of range", i);
    }
  }

  // Bytes: one id each, and back.
  const std::vector<int32_t> tokens = TokenizeBytes(text);
  FUZZ_CHECK(tokens.size() == text.size(), "one token per byte");
  FUZZ_CHECK(DetokenizeBytes(tokens) == text, "bytes do not round-trip");
  if (vocab_size >= 256) FUZZ_CHECK(CheckTokenIds(tokens, vocab_size).ok(), "bytes out of range");

  // Arbitrary int32 ids: the first bad index is the one named.
  std::vector<int32_t> raw(text.size() / 4);
  if (!raw.empty()) std::memcpy(raw.data(), text.data(), raw.size() * 4);
  const absl::Status checked = CheckTokenIds(raw, vocab_size);
  if (vocab_size >= 1) {
    size_t first_bad = raw.size();
    for (size_t i = 0; i < raw.size() && first_bad == raw.size(); ++i) {
      if (raw[i] < 0 || raw[i] >= vocab_size) first_bad = i;
    }
    FUZZ_CHECK(checked.ok() == (first_bad == raw.size()), "CheckTokenIds: %s",
               checked.ToString().c_str());
    if (!checked.ok()) {
      FUZZ_CHECK(absl::StartsWith(checked.message(), absl::StrCat("token ids[", first_bad, "]: ")),
                 "names the wrong index: %s", checked.ToString().c_str());
    }
  } else {
    FUZZ_CHECK(checked.code() == absl::StatusCode::kInvalidArgument, "bad vocab_size accepted");
  }
  const std::string shown = DetokenizeBytes(raw);
  FUZZ_CHECK(shown.size() >= raw.size(), "DetokenizeBytes lost ids");
  return 0;
}
