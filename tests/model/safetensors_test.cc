#include "model/safetensors.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace proteus {
namespace {

constexpr char kSrc[] = "/ckpt/model.safetensors";

std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/safetensors_test_", ::getpid(),
                      "_", name);
}

std::string LittleEndian64(uint64_t n) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(n >> (8 * i)));
  return out;
}

// A file with a hand-written (possibly lying) header.
std::string MakeFile(std::string header, const std::string& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return LittleEndian64(header.size()) + header + data;
}

std::string Bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

// Parses `file` expecting failure; returns the message and checks the code.
std::string ErrorOf(const std::string& file, absl::StatusCode code) {
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Parse(file, kSrc);
  EXPECT_FALSE(f.ok());
  if (f.ok()) return "";
  EXPECT_EQ(f.status().code(), code) << f.status();
  return std::string(f.status().message());
}

void ExpectStartsWith(const std::string& s, const std::string& prefix) {
  EXPECT_TRUE(absl::StartsWith(s, prefix))
      << "message \"" << s << "\" should start with \"" << prefix << "\"";
}

TEST(DTypeTest, NamesSizesAndParsing) {
  const std::pair<DType, std::pair<const char*, size_t>> all[] = {
      {DType::kF64, {"F64", 8}}, {DType::kF32, {"F32", 4}},
      {DType::kF16, {"F16", 2}}, {DType::kBF16, {"BF16", 2}},
      {DType::kI64, {"I64", 8}}, {DType::kI32, {"I32", 4}},
      {DType::kI16, {"I16", 2}}, {DType::kI8, {"I8", 1}},
      {DType::kU8, {"U8", 1}},   {DType::kBool, {"BOOL", 1}}};
  for (const auto& [dtype, name_size] : all) {
    EXPECT_EQ(DTypeName(dtype), name_size.first);
    EXPECT_EQ(DTypeSize(dtype), name_size.second);
    absl::StatusOr<DType> parsed = ParseDType(name_size.first);
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, dtype);
  }
  EXPECT_EQ(ParseDType("f32").status().message(), "unknown dtype \"f32\"");
  EXPECT_FALSE(ParseDType("F8_E4M3").ok());
  EXPECT_EQ(ShapeToString({}), "[]");
  EXPECT_EQ(ShapeToString({512, 256}), "[512, 256]");
}

TEST(SafetensorsTest, GoldenBytes) {
  SafetensorsWriter w;
  const float v[2] = {1.0f, -2.0f};
  ASSERT_TRUE(w.Add("a", DType::kF32, {2}, v, sizeof(v)).ok());
  const std::string header =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  ASSERT_EQ(header.size(), 54u);
  const std::string expected =
      LittleEndian64(56) + header + "  " + std::string("\x00\x00\x80\x3f", 4) +
      std::string("\x00\x00\x00\xc0", 4);
  EXPECT_EQ(w.Serialize(), expected);
}

TEST(SafetensorsTest, RoundTripEveryDTypeBitExact) {
  const DType dtypes[] = {DType::kF64, DType::kF32, DType::kF16, DType::kBF16,
                          DType::kI64, DType::kI32, DType::kI16, DType::kI8,
                          DType::kU8,  DType::kBool};
  const std::vector<std::vector<int64_t>> shapes = {{}, {0}, {3, 0, 2}, {5},
                                                    {2, 3}, {1, 2, 3}};
  SafetensorsWriter w;
  std::map<std::string, std::string> expected;
  uint32_t seed = 1;
  for (DType d : dtypes) {
    for (size_t s = 0; s < shapes.size(); ++s) {
      int64_t numel = 1;
      for (int64_t dim : shapes[s]) numel *= dim;
      const std::string name = absl::StrCat("t.", DTypeName(d).data(), ".", s);
      const std::string data = Bytes(numel * DTypeSize(d), seed++);
      ASSERT_TRUE(w.Add(name, d, shapes[s], data.data(), data.size()).ok());
      expected[name] = data;
    }
  }
  ASSERT_TRUE(w.AddMetadata("format", "pt").ok());
  ASSERT_TRUE(w.AddMetadata("proteus", "{\"step\": 3}").ok());

  const std::string path = TempPath("all.safetensors");
  ASSERT_TRUE(w.WriteFile(path).ok());
  EXPECT_FALSE(std::ifstream(path + ".tmp").good());
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->source(), path);
  std::vector<std::string> names;
  for (const auto& [name, data] : expected) names.push_back(name);
  EXPECT_EQ(f->Names(), names);
  size_t i = 0;
  for (DType d : dtypes) {
    for (size_t s = 0; s < shapes.size(); ++s, ++i) {
      const std::string name = absl::StrCat("t.", DTypeName(d).data(), ".", s);
      const TensorView* t = f->Find(name);
      ASSERT_NE(t, nullptr) << name;
      EXPECT_EQ(t->name, name);
      EXPECT_EQ(t->dtype, d);
      EXPECT_EQ(t->shape, shapes[s]);
      ASSERT_EQ(t->nbytes, expected[name].size()) << name;
      EXPECT_EQ(std::memcmp(t->data, expected[name].data(), t->nbytes), 0)
          << name;
    }
  }
  EXPECT_EQ(f->Find("t.F32.1")->nbytes, 0u);
  EXPECT_EQ(f->Find("t.F64.0")->nbytes, 8u);  // a scalar is one element
  EXPECT_EQ(f->Find("missing"), nullptr);
  EXPECT_EQ(f->Metadata(),
            (std::map<std::string, std::string>{{"format", "pt"},
                                                {"proteus", "{\"step\": 3}"}}));
  std::remove(path.c_str());
}

TEST(SafetensorsTest, HeaderPaddedToEightBytes) {
  for (int len = 1; len <= 16; ++len) {
    SafetensorsWriter w;
    const uint8_t byte = 7;
    ASSERT_TRUE(w.Add(std::string(len, 'x'), DType::kU8, {1}, &byte, 1).ok());
    const std::string out = w.Serialize();
    uint64_t n = 0;
    std::memcpy(&n, out.data(), 8);  // the test host is little-endian
    EXPECT_EQ(n % 8, 0u) << len;
    EXPECT_EQ(out.size(), 8 + n + 1);
    EXPECT_EQ(out.back(), 7);
    EXPECT_EQ(out[8], '{');
    EXPECT_EQ(out.find_last_not_of(' ', 8 + n - 1), out.rfind('}', 8 + n - 1));
  }
}

TEST(SafetensorsTest, DeterministicRegardlessOfAddOrder) {
  const std::string a = Bytes(12, 1), b = Bytes(3, 2), c = Bytes(16, 3);
  SafetensorsWriter w1, w2;
  ASSERT_TRUE(w1.Add("b", DType::kU8, {3}, b.data(), 3).ok());
  ASSERT_TRUE(w1.Add("a", DType::kF32, {3}, a.data(), 12).ok());
  ASSERT_TRUE(w1.Add("c", DType::kI64, {2}, c.data(), 16).ok());
  ASSERT_TRUE(w1.AddMetadata("k", "v").ok());
  ASSERT_TRUE(w2.AddMetadata("k", "v").ok());
  ASSERT_TRUE(w2.Add("c", DType::kI64, {2}, c.data(), 16).ok());
  ASSERT_TRUE(w2.Add("a", DType::kF32, {3}, a.data(), 12).ok());
  ASSERT_TRUE(w2.Add("b", DType::kU8, {3}, b.data(), 3).ok());
  const std::string out = w1.Serialize();
  EXPECT_EQ(out, w2.Serialize());
  // Laid out in name order, without gaps: a [0,12), b [12,15), c [15,31).
  EXPECT_NE(out.find(R"("a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]})"),
            std::string::npos);
  EXPECT_NE(out.find(R"("b":{"dtype":"U8","shape":[3],"data_offsets":[12,15]})"),
            std::string::npos);
  EXPECT_NE(out.find(R"("c":{"dtype":"I64","shape":[2],"data_offsets":[15,31]})"),
            std::string::npos);
  EXPECT_EQ(out.substr(out.size() - 31), a + b + c);
  // c's data is not aligned: the reader still serves it, memcpy gets it.
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Parse(out);
  ASSERT_TRUE(f.ok()) << f.status();
  int64_t c0 = 0, expect0 = 0;
  std::memcpy(&c0, f->Find("c")->data, 8);
  std::memcpy(&expect0, c.data(), 8);
  EXPECT_EQ(c0, expect0);
}

TEST(SafetensorsTest, EmptyFile) {
  SafetensorsWriter w;
  EXPECT_EQ(w.Serialize(), LittleEndian64(8) + "{}      ");
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Parse(w.Serialize());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->Names().empty());
  EXPECT_TRUE(f->Metadata().empty());
  EXPECT_EQ(f->source(), "<memory>");
}

TEST(SafetensorsTest, ViewsSurviveMoves) {
  SafetensorsWriter w;
  const int32_t v = 42;
  ASSERT_TRUE(w.Add("v", DType::kI32, {}, &v, 4).ok());
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Parse(w.Serialize());
  ASSERT_TRUE(f.ok());
  const TensorView* before = f->Find("v");
  SafetensorsFile moved = std::move(*f);
  SafetensorsFile again = std::move(moved);
  EXPECT_EQ(again.Find("v"), before);
  int32_t got = 0;
  std::memcpy(&got, before->data, 4);
  EXPECT_EQ(got, 42);
  EXPECT_TRUE(moved.Names().empty());  // NOLINT: moved-from is empty
  EXPECT_EQ(moved.Find("v"), nullptr);
}

TEST(SafetensorsTest, WriterRejectsBadInput) {
  SafetensorsWriter w;
  const std::string d = Bytes(64, 9);
  EXPECT_EQ(w.Add("w", DType::kF32, {2, 3}, d.data(), 20).message(),
            "w: F32 [2, 3] needs 24 bytes, got 20");
  ASSERT_TRUE(w.Add("w", DType::kF32, {2, 3}, d.data(), 24).ok());
  EXPECT_EQ(w.Add("w", DType::kF32, {2, 3}, d.data(), 24).message(),
            "w: duplicate tensor");
  EXPECT_EQ(w.Add("", DType::kU8, {1}, d.data(), 1).message(),
            ": tensor name must not be empty");
  EXPECT_EQ(w.Add("__metadata__", DType::kU8, {1}, d.data(), 1).message(),
            "__metadata__: reserved name");
  EXPECT_EQ(w.Add("n", DType::kU8, {-1}, d.data(), 0).message(),
            "n: invalid shape [-1] (negative or overflowing)");
  EXPECT_EQ(
      w.Add("o", DType::kF64, {int64_t{1} << 32, int64_t{1} << 32}, d.data(), 0)
          .message(),
      "o: invalid shape [4294967296, 4294967296] (negative or overflowing)");
  EXPECT_EQ(w.Add("p", DType::kU8, {4}, nullptr, 4).message(),
            "p: data is null");
  EXPECT_TRUE(w.Add("z", DType::kU8, {0}, nullptr, 0).ok());
  EXPECT_EQ(w.Add("bad\xff", DType::kU8, {1}, d.data(), 1).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(w.AddMetadata("k", "v").ok());
  EXPECT_EQ(w.AddMetadata("k", "v2").message(),
            "__metadata__: duplicate key \"k\"");
  EXPECT_FALSE(w.AddMetadata("k2", "\xc3").ok());
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Parse(w.Serialize());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->Names(), (std::vector<std::string>{"w", "z"}));
  EXPECT_EQ(f->Metadata().at("k"), "v");
}

TEST(SafetensorsTest, EveryTruncationIsRejected) {
  SafetensorsWriter w;
  const std::string a = Bytes(24, 4), b = Bytes(6, 5);
  ASSERT_TRUE(w.Add("layers.0.attn.wq", DType::kF32, {2, 3}, a.data(), 24).ok());
  ASSERT_TRUE(w.Add("layers.0.mix", DType::kBF16, {3}, b.data(), 6).ok());
  ASSERT_TRUE(w.Add("zero", DType::kI8, {0}, nullptr, 0).ok());
  ASSERT_TRUE(w.AddMetadata("m", "x").ok());
  const std::string full = w.Serialize();
  ASSERT_TRUE(SafetensorsFile::Parse(full).ok());
  for (size_t len = 0; len < full.size(); ++len) {
    absl::StatusOr<SafetensorsFile> f =
        SafetensorsFile::Parse(full.substr(0, len), kSrc);
    ASSERT_FALSE(f.ok()) << "length " << len;
    EXPECT_EQ(f.status().code(), absl::StatusCode::kDataLoss) << f.status();
    ExpectStartsWith(std::string(f.status().message()), absl::StrCat(kSrc, ": "));
  }
  // One byte of data missing names the last tensor.
  EXPECT_EQ(ErrorOf(full.substr(0, full.size() - 1), absl::StatusCode::kDataLoss),
            absl::StrCat(kSrc, ": layers.0.mix: data_offsets end 30 is beyond "
                               "the data region (29 bytes; truncated file?)"));
  EXPECT_EQ(ErrorOf(full + "x", absl::StatusCode::kDataLoss),
            absl::StrCat(kSrc, ": data region has 31 bytes but the tensors "
                               "cover 30"));
}

TEST(SafetensorsTest, LyingHeaders) {
  using C = absl::StatusCode;
  const std::string p = absl::StrCat(kSrc, ": ");
  const std::string d8 = Bytes(8, 6), d12 = Bytes(12, 7);
  EXPECT_EQ(ErrorOf("1234567", C::kDataLoss),
            p + "file is 7 bytes, too short for the 8-byte header length");
  EXPECT_EQ(ErrorOf(LittleEndian64(uint64_t{1} << 63) + "{}", C::kInvalidArgument),
            p + "header length 9223372036854775808 exceeds the limit of "
                "100000000 bytes");
  EXPECT_EQ(ErrorOf(LittleEndian64(~uint64_t{0}), C::kInvalidArgument),
            p + "header length 18446744073709551615 exceeds the limit of "
                "100000000 bytes");
  EXPECT_EQ(ErrorOf(LittleEndian64(200) + "{}", C::kDataLoss),
            p + "header length 200 exceeds the 2 bytes after the length field "
                "(truncated file?)");
  EXPECT_EQ(ErrorOf(LittleEndian64(0), C::kInvalidArgument),
            p + "header must be a JSON object starting with '{'");
  EXPECT_EQ(ErrorOf(MakeFile("[]", ""), C::kInvalidArgument),
            p + "header must be a JSON object starting with '{'");
  ExpectStartsWith(ErrorOf(MakeFile("{\"w\":", ""), C::kInvalidArgument),
                   p + "header: invalid JSON: ");
  ExpectStartsWith(ErrorOf(MakeFile("{\"w\xff\":1}", ""), C::kInvalidArgument),
                   p + "header: invalid JSON: ");
  EXPECT_EQ(ErrorOf(MakeFile(R"({"w":[1]})", ""), C::kInvalidArgument),
            p + "w: entry must be an object, got array");

  const auto entry = [](const std::string& name, const std::string& dtype,
                        const std::string& shape, const std::string& offsets) {
    return absl::StrCat("\"", name, "\":{\"dtype\":", dtype, ",\"shape\":",
                        shape, ",\"data_offsets\":", offsets, "}");
  };
  const auto one = [&](const std::string& dtype, const std::string& shape,
                       const std::string& offsets, const std::string& data) {
    return MakeFile("{" + entry("w", dtype, shape, offsets) + "}", data);
  };
  EXPECT_TRUE(SafetensorsFile::Parse(one("\"F32\"", "[2]", "[0,8]", d8)).ok());
  EXPECT_EQ(ErrorOf(one("\"F32\"", "[2]", "[0,8]", d8.substr(4)), C::kDataLoss),
            p + "w: data_offsets end 8 is beyond the data region (4 bytes; "
                "truncated file?)");
  EXPECT_EQ(ErrorOf(one("\"F32\"", "[3]", "[0,8]", d8), C::kInvalidArgument),
            p + "w: data_offsets [0, 8) span 8 bytes but F32 [3] needs 12");
  EXPECT_EQ(ErrorOf(one("\"F8\"", "[8]", "[0,8]", d8), C::kInvalidArgument),
            p + "w: unknown dtype \"F8\"");
  EXPECT_EQ(ErrorOf(one("4", "[2]", "[0,8]", d8), C::kInvalidArgument),
            p + "w: dtype must be a string, got 4");
  EXPECT_EQ(ErrorOf(one("\"F32\"", "[-2]", "[0,8]", d8), C::kInvalidArgument),
            p + "w: shape[0] must be a non-negative integer, got -2");
  EXPECT_EQ(ErrorOf(one("\"F32\"", "[2.0]", "[0,8]", d8), C::kInvalidArgument),
            p + "w: shape[0] must be a non-negative integer, got 2.0");
  EXPECT_EQ(ErrorOf(one("\"F32\"", "[1,9223372036854775808]", "[0,8]", d8),
                    C::kInvalidArgument),
            p + "w: shape[1] must be a non-negative integer, got "
                "9223372036854775808");
  EXPECT_EQ(ErrorOf(one("\"F32\"", "2", "[0,8]", d8), C::kInvalidArgument),
            p + "w: shape must be an array, got 2");
  EXPECT_EQ(ErrorOf(one("\"F32\"", "[4294967296,4294967296]", "[0,8]", d8),
                    C::kInvalidArgument),
            p + "w: byte size of shape [4294967296, 4294967296] x F32 "
                "overflows 64 bits");
  // 2^62 elements of 4 bytes overflow only in bytes.
  EXPECT_EQ(ErrorOf(one("\"F32\"", "[4611686018427387904]", "[0,8]", d8),
                    C::kInvalidArgument),
            p + "w: byte size of shape [4611686018427387904] x F32 overflows "
                "64 bits");
  EXPECT_EQ(ErrorOf(one("\"F32\"", "[2]", "[8,0]", d8), C::kInvalidArgument),
            p + "w: data_offsets begin 8 is after end 0");
  EXPECT_EQ(ErrorOf(one("\"F32\"", "[2]", "[0]", d8), C::kInvalidArgument),
            p + "w: data_offsets must be [begin, end] with non-negative "
                "integers, got [0]");
  EXPECT_EQ(ErrorOf(one("\"F32\"", "[2]", "[-1,7]", d8), C::kInvalidArgument),
            p + "w: data_offsets must be [begin, end] with non-negative "
                "integers, got [-1,7]");
  EXPECT_EQ(ErrorOf(one("\"F32\"", "[2]", "[0,8,9]", d8), C::kInvalidArgument),
            p + "w: data_offsets must be [begin, end] with non-negative "
                "integers, got array");
  EXPECT_EQ(ErrorOf(one("\"F32\"", "[2]",
                        "[18446744073709551608,18446744073709551615]", d8),
                    C::kInvalidArgument),
            p + "w: data_offsets [18446744073709551608, 18446744073709551615) "
                "span 7 bytes but F32 [2] needs 8");
  EXPECT_EQ(ErrorOf(one("\"F32\"", "[2]",
                        "[18446744073709551600,18446744073709551608]", d8),
                    C::kDataLoss),
            p + "w: data_offsets end 18446744073709551608 is beyond the data "
                "region (8 bytes; truncated file?)");
  EXPECT_EQ(ErrorOf(MakeFile(R"({"w":{"dtype":"U8","shape":[1]}})", "x"),
                    C::kInvalidArgument),
            p + "w: missing key \"data_offsets\"");
  EXPECT_EQ(ErrorOf(MakeFile(R"({"w":{"dtype":"U8","shape":[1],)"
                             R"("data_offsets":[0,1],"extra":0}})",
                             "x"),
                    C::kInvalidArgument),
            p + "w: unexpected key \"extra\"");
  // Two tensors sharing bytes, a gap, a zero-size tensor inside another.
  EXPECT_EQ(ErrorOf(MakeFile("{" + entry("a", "\"F32\"", "[2]", "[0,8]") + "," +
                                 entry("b", "\"F32\"", "[2]", "[4,12]") + "}",
                             d12),
                    C::kInvalidArgument),
            p + "b: data_offsets [4, 12) overlap tensor \"a\", which ends at 8");
  EXPECT_EQ(ErrorOf(MakeFile("{" + entry("a", "\"F32\"", "[1]", "[0,4]") + "," +
                                 entry("b", "\"F32\"", "[1]", "[8,12]") + "}",
                             d12),
                    C::kInvalidArgument),
            p + "b: data_offsets begin 8 leaves a gap after byte 4; tensors "
                "must be contiguous");
  EXPECT_EQ(ErrorOf(MakeFile("{" + entry("a", "\"F32\"", "[2]", "[0,8]") + "," +
                                 entry("e", "\"F32\"", "[0]", "[4,4]") + "}",
                             d8),
                    C::kInvalidArgument),
            p + "e: data_offsets [4, 4) overlap tensor \"a\", which ends at 8");
  // Zero-size tensors at a boundary are fine.
  EXPECT_TRUE(SafetensorsFile::Parse(
                  MakeFile("{" + entry("a", "\"F32\"", "[0]", "[0,0]") + "," +
                               entry("b", "\"F32\"", "[2]", "[0,8]") + "," +
                               entry("c", "\"F32\"", "[0,5]", "[8,8]") + "}",
                           d8))
                  .ok());
  EXPECT_EQ(ErrorOf(MakeFile(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                             R"("w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
                             "x"),
                    C::kInvalidArgument),
            p + "header: key \"w\" appears more than once");
  EXPECT_EQ(ErrorOf(MakeFile(R"({"__metadata__":{"k":1}})", ""),
                    C::kInvalidArgument),
            p + "__metadata__: value of \"k\" must be a string, got 1");
  EXPECT_EQ(ErrorOf(MakeFile(R"({"__metadata__":["k"]})", ""),
                    C::kInvalidArgument),
            p + "__metadata__: must be an object, got array");
  const std::string deep = "{\"w\":" + std::string(100000, '[') +
                           std::string(100000, ']') + "}";
  EXPECT_EQ(ErrorOf(MakeFile(deep, ""), C::kInvalidArgument),
            p + "header: JSON nested deeper than 8 levels");
}

TEST(SafetensorsTest, RandomCorruptionNeverCrashes) {
  SafetensorsWriter w;
  const std::string a = Bytes(40, 11);
  ASSERT_TRUE(w.Add("a", DType::kF64, {5}, a.data(), 40).ok());
  ASSERT_TRUE(w.Add("b", DType::kI16, {2, 2}, a.data(), 8).ok());
  ASSERT_TRUE(w.AddMetadata("k", "v").ok());
  const std::string full = w.Serialize();
  std::mt19937 rng(1234);
  int accepted = 0;
  for (int iter = 0; iter < 5000; ++iter) {
    std::string bad = full;
    const int flips = 1 + rng() % 3;
    for (int k = 0; k < flips; ++k) {
      bad[rng() % bad.size()] = static_cast<char>(rng());
    }
    absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Parse(bad);
    if (f.ok()) {
      ++accepted;  // e.g. a flip inside tensor data; every view in bounds
      for (const std::string& name : f->Names()) {
        const TensorView* t = f->Find(name);
        uint64_t sum = 0;
        for (size_t i = 0; i < t->nbytes; ++i) sum += t->data[i];
        (void)sum;
      }
    }
  }
  EXPECT_GT(accepted, 0);
  EXPECT_LT(accepted, 5000);
}

TEST(SafetensorsTest, OpenErrors) {
  const std::string missing = TempPath("missing.safetensors");
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Open(missing);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  ExpectStartsWith(std::string(f.status().message()), missing + ": ");

  f = SafetensorsFile::Open(::testing::TempDir());
  ASSERT_FALSE(f.ok());
  ExpectStartsWith(std::string(f.status().message()), ::testing::TempDir());

  const std::string bad = TempPath("bad.safetensors");
  std::ofstream(bad, std::ios::binary)
      << MakeFile(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                  "1234");
  f = SafetensorsFile::Open(bad);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kDataLoss);
  ExpectStartsWith(std::string(f.status().message()), bad + ": w: ");
  std::remove(bad.c_str());

  SafetensorsWriter w;
  EXPECT_FALSE(w.WriteFile(TempPath("no/such/dir/x.safetensors")).ok());
}

TEST(SafetensorsTest, CheckTensor) {
  TensorView v{"layers.0.attn.wq", DType::kF32, {512, 256}, nullptr, 0};
  EXPECT_TRUE(CheckTensor(v, DType::kF32, {512, 256}).ok());
  absl::Status s = CheckTensor(v, DType::kF32, {512, 512});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "layers.0.attn.wq: expected shape [512, 512], got [512, 256]");
  EXPECT_EQ(CheckTensor(v, DType::kBF16, {512, 256}).message(),
            "layers.0.attn.wq: expected dtype BF16, got F32");
  EXPECT_EQ(CheckTensor(v, DType::kF64, {512}).message(),
            "layers.0.attn.wq: expected dtype F64, got F32; expected shape "
            "[512], got [512, 256]");
  TensorView scalar{"s", DType::kI64, {}, nullptr, 0};
  EXPECT_EQ(CheckTensor(scalar, DType::kI64, {1}).message(),
            "s: expected shape [1], got []");
}

}  // namespace
}  // namespace proteus
