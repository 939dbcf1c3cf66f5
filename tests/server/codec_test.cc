// Wire <-> model conversions.
#include "server/codec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "server/status_map.h"

namespace proteus::server {
namespace {

TEST(CodecTest, Bfloat16RoundsToNearestEven) {
  EXPECT_EQ(FloatToBfloat16(1.0f), 0x3f80);
  EXPECT_EQ(FloatToBfloat16(-2.0f), 0xc000);
  // 1 + 2^-8 lies halfway between two bf16 values: ties to even (down).
  EXPECT_EQ(FloatToBfloat16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  // 1 + 3·2^-8 lies halfway: ties to even (up).
  EXPECT_EQ(FloatToBfloat16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(FloatToBfloat16(std::numeric_limits<float>::infinity()), 0x7f80);
  const uint16_t nan = FloatToBfloat16(std::nanf(""));
  EXPECT_EQ(nan & 0x7f80, 0x7f80);
  EXPECT_NE(nan & 0x007f, 0);
}

TEST(CodecTest, TensorsArePackedLittleEndianWithShape) {
  v1::Tensor t;
  FillTensor({1.0f, -2.5f, 3.25f, 0.0f}, {2, 2}, v1::DTYPE_FLOAT32, &t);
  EXPECT_EQ(t.dtype(), v1::DTYPE_FLOAT32);
  ASSERT_EQ(t.shape_size(), 2);
  ASSERT_EQ(t.data().size(), 16u);
  const unsigned char* p = reinterpret_cast<const unsigned char*>(t.data().data());
  EXPECT_EQ(p[4 + 3], 0xc0);  // -2.5f = 0xc0200000, most significant byte last
  EXPECT_EQ(p[4 + 2], 0x20);
  FillTensor({1.0f, -2.0f}, {2}, v1::DTYPE_BFLOAT16, &t);
  EXPECT_EQ(t.dtype(), v1::DTYPE_BFLOAT16);
  EXPECT_EQ(t.data(), std::string("\x80\x3f\x00\xc0", 4));
}

TEST(CodecTest, ChunkTokensFromBytesOrIds) {
  v1::Chunk chunk;
  chunk.set_data(std::string("\x00\xff", 2));
  EXPECT_EQ(*ChunkTokens(chunk, 260, 10, "chunk 0"), (std::vector<int32_t>{0, 255}));
  chunk.mutable_token_ids()->add_ids(256);
  EXPECT_EQ(*ChunkTokens(chunk, 260, 10, "chunk 0"), (std::vector<int32_t>{256}));
  chunk.mutable_token_ids()->add_ids(-5);
  absl::StatusOr<std::vector<int32_t>> bad = ChunkTokens(chunk, 260, 10, "chunk 7");
  EXPECT_EQ(bad.status().message(), "chunk 7: token ids[1]: -5 is out of range [0, 260)");
  chunk.clear_input();
  EXPECT_TRUE(ChunkTokens(chunk, 260, 10, "chunk 0")->empty());
  chunk.set_data("0123456789a");
  EXPECT_EQ(ChunkTokens(chunk, 260, 10, "chunk 0").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CodecTest, FingerprintsSeeOrderAndLength) {
  EXPECT_EQ(TokensFingerprint({1, 2, 3}), TokensFingerprint({1, 2, 3}));
  EXPECT_NE(TokensFingerprint({1, 2, 3}), TokensFingerprint({3, 2, 1}));
  EXPECT_NE(TokensFingerprint({}), TokensFingerprint({0}));
}

TEST(CodecTest, OutputOptionsBecomeTheModelRequest) {
  v1::OutputOptions options;
  EXPECT_FALSE(ToChunkRequest(options).hidden);
  EXPECT_EQ(ToChunkRequest(options).hidden_layer, -1);
  options.set_pooling(v1::POOLING_LAST);  // pooled from the model's last_hidden
  EXPECT_FALSE(ToChunkRequest(options).hidden);
  options.set_hidden_states(true);
  options.set_layer(2);
  EXPECT_TRUE(ToChunkRequest(options).hidden);
  EXPECT_EQ(ToChunkRequest(options).hidden_layer, 2);
  EXPECT_TRUE(ValidateOutputOptions(options, 3).ok());
  absl::Status s = ValidateOutputOptions(options, 2);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "options.layer: must be unset or -1 (the final output) or a layer in [0, 2), got 2");
  options.set_layer(-2);
  EXPECT_EQ(ValidateOutputOptions(options, 2).code(), absl::StatusCode::kInvalidArgument);
  options.set_layer(-1);
  options.set_pooling(static_cast<v1::Pooling>(42));
  EXPECT_EQ(ValidateOutputOptions(options, 2).code(), absl::StatusCode::kInvalidArgument);
}

TEST(StatusMapTest, EveryCodeKeepsItsMeaningAndMessage) {
  for (int code = 0; code <= 16; ++code) {
    const absl::Status s(static_cast<absl::StatusCode>(code), code == 0 ? "" : "why");
    const grpc::Status g = ToGrpcStatus(s);
    EXPECT_EQ(static_cast<int>(g.error_code()), code);
    EXPECT_EQ(FromGrpcStatus(g), s);
  }
  EXPECT_EQ(ToGrpcStatus(absl::Status(static_cast<absl::StatusCode>(99), "odd")).error_code(),
            grpc::StatusCode::UNKNOWN);
}

}  // namespace
}  // namespace proteus::server
