#include "model/tokenizer.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace proteus {
namespace {

std::string ErrorOf(std::string_view json, int vocab_size = 260) {
  absl::StatusOr<std::vector<int32_t>> ids = ParseTokenIdsJson(json, vocab_size);
  EXPECT_FALSE(ids.ok()) << json;
  if (ids.ok()) return "";
  EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(ids.status().message());
}

TEST(TokenizerTest, SpecialIds) {
  EXPECT_EQ(kBos, 256);
  EXPECT_EQ(kEos, 257);
  EXPECT_EQ(kPad, 258);
  EXPECT_EQ(kSep, 259);
}

TEST(TokenizerTest, EveryByteIsItsOwnId) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::vector<int32_t> ids = TokenizeBytes(all);
  ASSERT_EQ(ids.size(), 256u);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(ids[b], b);
  EXPECT_EQ(DetokenizeBytes(ids), all);
}

TEST(TokenizerTest, NothingInserted) {
  EXPECT_TRUE(TokenizeBytes("").empty());
  // "é" is two UTF-8 bytes; binary NUL is kept.
  EXPECT_EQ(TokenizeBytes(std::string("h\xc3\xa9\0", 4)),
            (std::vector<int32_t>{104, 0xc3, 0xa9, 0}));
}

TEST(TokenizerTest, DetokenizeRendersSpecials) {
  EXPECT_EQ(DetokenizeBytes({kBos, 'h', 'i', kSep, kPad, kEos}),
            "<bos>hi<sep><pad><eos>");
  EXPECT_EQ(DetokenizeBytes({300, -1, 'a'}), "<id:300><id:-1>a");
  EXPECT_EQ(DetokenizeBytes({}), "");
}

TEST(TokenizerTest, ParseValidIds) {
  absl::StatusOr<std::vector<int32_t>> ids =
      ParseTokenIdsJson("[256, 104, 105, 0, 255, 259]", 260);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, (std::vector<int32_t>{256, 104, 105, 0, 255, 259}));
  ids = ParseTokenIdsJson(" [ ] ", 260);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_TRUE(ids->empty());
  ids = ParseTokenIdsJson("[-0]", 260);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, std::vector<int32_t>{0});
}

TEST(TokenizerTest, ParseRejectsNonIntegers) {
  EXPECT_EQ(ErrorOf("[1, 3.0]"), "token ids[1]: must be an integer, got 3.0");
  EXPECT_EQ(ErrorOf("[\"3\"]"), "token ids[0]: must be an integer, got \"3\"");
  EXPECT_EQ(ErrorOf("[1, 2, true]"),
            "token ids[2]: must be an integer, got true");
  EXPECT_EQ(ErrorOf("[null]"), "token ids[0]: must be an integer, got null");
  EXPECT_EQ(ErrorOf("[[1]]"), "token ids[0]: must be an integer, got array");
  EXPECT_EQ(ErrorOf("[1e2]"), "token ids[0]: must be an integer, got 100.0");
}

TEST(TokenizerTest, ParseRejectsOutOfRange) {
  EXPECT_EQ(ErrorOf("[1, 260]"), "token ids[1]: 260 is out of range [0, 260)");
  EXPECT_EQ(ErrorOf("[-1]"), "token ids[0]: -1 is out of range [0, 260)");
  EXPECT_EQ(ErrorOf("[256]", 256), "token ids[0]: 256 is out of range [0, 256)");
  EXPECT_EQ(ErrorOf("[0, 18446744073709551615]"),
            "token ids[1]: 18446744073709551615 is out of range [0, 260)");
  EXPECT_EQ(ErrorOf("[-9223372036854775808]"),
            "token ids[0]: -9223372036854775808 is out of range [0, 260)");
  // Beyond int64/uint64 nlohmann yields a float.
  EXPECT_EQ(ErrorOf("[1, 100000000000000000000]"),
            "token ids[1]: must be an integer, got 1e+20");
}

TEST(TokenizerTest, ParseRejectsBadDocuments) {
  EXPECT_EQ(ErrorOf("{\"ids\": [1]}"),
            "token ids: expected a JSON array of integers, got object");
  EXPECT_EQ(ErrorOf("5"),
            "token ids: expected a JSON array of integers, got number");
  const std::string bad = ErrorOf("[1, 2");
  EXPECT_EQ(bad.rfind("token ids: invalid JSON: ", 0), 0u) << bad;
  EXPECT_NE(bad.find("line 1, column 6"), std::string::npos) << bad;
  EXPECT_EQ(ErrorOf("[1]", 0), "vocab_size: must be >= 1, got 0");
  // Deep nesting is neither a crash nor a stack overflow.
  std::string deep = "[" + std::string(200000, '[') + std::string(200000, ']') +
                     "]";
  EXPECT_EQ(ErrorOf(deep), "token ids[0]: must be an integer, got array");
}

TEST(TokenizerTest, CheckTokenIdsNamesFirstBadIndex) {
  EXPECT_TRUE(CheckTokenIds({0, 255, 259}, 260).ok());
  EXPECT_TRUE(CheckTokenIds({}, 260).ok());
  absl::Status s = CheckTokenIds({1, 2, 3, 4, 5, -1, 999}, 260);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "token ids[5]: -1 is out of range [0, 260)");
  s = CheckTokenIds({kSep}, 259);
  EXPECT_EQ(s.message(), "token ids[0]: 259 is out of range [0, 259)");
  EXPECT_EQ(CheckTokenIds({1}, -5).message(), "vocab_size: must be >= 1, got -5");
}

}  // namespace
}  // namespace proteus
