// Checkpoint directories (DESIGN §2.7, §2.8 "Checkpoint"): bit-exact round
// trips and clear errors for anything malformed.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "model/encoder.h"
#include "model/weights.h"
#include "tests/testing/model_testing.h"

namespace proteus {
namespace {

namespace fs = std::filesystem;
using testing::SmallRoutedConfig;

std::string TempDir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("proteus_ckpt_" + name);
  fs::remove_all(dir);
  return dir.string();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

TEST(CheckpointTest, RoundTripIsBitExact) {
  const ModelConfig config = SmallRoutedConfig();
  const std::string dir = TempDir("roundtrip");
  ASSERT_TRUE(WriteRandomCheckpoint(config, 123, dir).ok());
  absl::StatusOr<Checkpoint> loaded = LoadCheckpoint(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(ModelConfigToJson(loaded->config), ModelConfigToJson(config));
  const ModelWeights expected = InitWeights(config, 123);
  EXPECT_TRUE(at::equal(loaded->weights.embed, expected.embed));
  for (int l = 0; l < config.n_layer; ++l) {
    EXPECT_TRUE(at::equal(loaded->weights.layers[l].wq, expected.layers[l].wq));
    EXPECT_TRUE(at::equal(loaded->weights.layers[l].dna, expected.layers[l].dna));
    EXPECT_TRUE(at::equal(loaded->weights.layers[l].router, expected.layers[l].router));
    EXPECT_TRUE(at::equal(loaded->weights.layers[l].w_down, expected.layers[l].w_down));
  }
  // Saving what was loaded reproduces the files byte for byte.
  const std::string again = TempDir("roundtrip_again");
  ASSERT_TRUE(SaveCheckpoint(again, loaded->config, loaded->weights).ok());
  EXPECT_EQ(ReadFile(again + "/model.safetensors"), ReadFile(dir + "/model.safetensors"));
  EXPECT_EQ(ReadFile(again + "/config.json"), ReadFile(dir + "/config.json"));
  // Same seed, same bytes; another seed, other bytes.
  const std::string other = TempDir("roundtrip_other");
  ASSERT_TRUE(WriteRandomCheckpoint(config, 124, other).ok());
  EXPECT_NE(ReadFile(other + "/model.safetensors"), ReadFile(dir + "/model.safetensors"));
}

TEST(CheckpointTest, EncoderFromCheckpointMatchesRandomEncoder) {
  const ModelConfig config = SmallRoutedConfig();
  const std::string dir = TempDir("encoder");
  ASSERT_TRUE(WriteRandomCheckpoint(config, 9, dir).ok());
  auto from_disk = Encoder::Open(dir, EncoderOptions());
  ASSERT_TRUE(from_disk.ok()) << from_disk.status();
  auto in_memory = Encoder::OpenRandom(config, 9, EncoderOptions());
  ASSERT_TRUE(in_memory.ok());
  const std::vector<int32_t> doc = testing::MakeDocument(100, 4);
  ChunkRequest request;
  request.hidden = true;
  ChunkResult a, b;
  auto sa = *(*from_disk)->NewSession(SessionOptions());
  auto sb = *(*in_memory)->NewSession(SessionOptions());
  ASSERT_TRUE((*from_disk)->EncodeChunk(*sa, doc, request, &a).ok());
  ASSERT_TRUE((*in_memory)->EncodeChunk(*sb, doc, request, &b).ok());
  EXPECT_EQ(a.hidden, b.hidden);
}

TEST(CheckpointTest, TruncatedWeightsAreRejectedNeverACrash) {
  const ModelConfig config = SmallRoutedConfig();
  const std::string dir = TempDir("truncated");
  ASSERT_TRUE(WriteRandomCheckpoint(config, 1, dir).ok());
  const std::string bytes = ReadFile(dir + "/model.safetensors");
  for (size_t keep : {size_t{0}, size_t{7}, size_t{8}, size_t{100}, bytes.size() / 2,
                      bytes.size() - 1}) {
    WriteFile(dir + "/model.safetensors", bytes.substr(0, keep));
    absl::StatusOr<Checkpoint> loaded = LoadCheckpoint(dir);
    ASSERT_FALSE(loaded.ok()) << "kept " << keep << " bytes";
    EXPECT_NE(loaded.status().message().find("model.safetensors"), std::string::npos)
        << loaded.status();
  }
}

TEST(CheckpointTest, MismatchesNameTheTensor) {
  ModelConfig config = SmallRoutedConfig();
  const std::string dir = TempDir("mismatch");
  ASSERT_TRUE(WriteRandomCheckpoint(config, 1, dir).ok());
  ModelWeights weights = InitWeights(config, 1);

  // A wrong shape.
  weights.layers[1].wk = at::zeros({3, config.d_model});
  ASSERT_FALSE(SaveCheckpoint(TempDir("bad_shape"), config, weights).ok());

  // A config that disagrees with the weights on disk.
  ModelConfig wider = config;
  wider.mlp_hidden = 256;
  ASSERT_TRUE(SaveModelConfig(wider, dir + "/config.json").ok());
  absl::StatusOr<Checkpoint> loaded = LoadCheckpoint(dir);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().message().rfind("layers.0.mlp.w_gate: expected shape [256, 64]", 0), 0u)
      << loaded.status();

  // A config without routing: router and DNA tensors are unexpected.
  ModelConfig plain = testing::SmallPlainConfig();
  plain.attn_kv_heads = config.attn_kv_heads;
  ASSERT_TRUE(SaveModelConfig(plain, dir + "/config.json").ok());
  loaded = LoadCheckpoint(dir);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("unexpected tensor"), std::string::npos)
      << loaded.status();

  // A missing config.
  fs::remove(dir + "/config.json");
  loaded = LoadCheckpoint(dir);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("config.json"), std::string::npos) << loaded.status();

  // A missing directory.
  EXPECT_EQ(LoadCheckpoint(dir + "/nope").status().code(), absl::StatusCode::kNotFound);
}

TEST(CheckpointTest, MissingTensorAndWrongDtypeAndNonFiniteValues) {
  const ModelConfig config = SmallRoutedConfig();
  const std::string dir = TempDir("dtype");
  ASSERT_TRUE(WriteRandomCheckpoint(config, 1, dir).ok());
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok());
  auto rewrite = [&](const std::string& skip, const std::string& as_f16,
                     const std::string& poison) {
    SafetensorsWriter writer;
    std::vector<std::vector<uint8_t>> storage;
    for (const std::string& name : file->Names()) {
      if (name == skip) continue;
      const TensorView* v = file->Find(name);
      std::vector<uint8_t> bytes(v->data, v->data + v->nbytes);
      DType dtype = v->dtype;
      if (name == as_f16) {
        at::Tensor t = at::from_blob(bytes.data(), {static_cast<int64_t>(v->nbytes / 4)})
                           .to(at::kHalf)
                           .contiguous();
        bytes.assign(static_cast<uint8_t*>(t.data_ptr()),
                     static_cast<uint8_t*>(t.data_ptr()) + t.nbytes());
        dtype = DType::kF16;
      }
      if (name == poison) {
        const float nan = std::nanf("");
        std::memcpy(bytes.data(), &nan, sizeof(nan));
      }
      storage.push_back(bytes);
      ASSERT_TRUE(writer.Add(name, dtype, v->shape, storage.back().data(), storage.back().size()).ok());
    }
    ASSERT_TRUE(writer.WriteFile(dir + "/model.safetensors").ok());
  };
  rewrite("layers.1.attn.wo", "", "");
  absl::StatusOr<Checkpoint> loaded = LoadCheckpoint(dir);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().message().rfind("layers.1.attn.wo: missing", 0), 0u) << loaded.status();

  rewrite("", "layers.0.mlp.w_up", "");
  loaded = LoadCheckpoint(dir);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().message().rfind("layers.0.mlp.w_up: dtype F16", 0), 0u)
      << loaded.status();

  rewrite("", "layers.0.attn.dna", "");
  loaded = LoadCheckpoint(dir);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().message().rfind("layers.0.attn.dna: DNA prototypes must be F32 or F64", 0),
            0u)
      << loaded.status();

  rewrite("", "", "final_norm.weight");
  loaded = LoadCheckpoint(dir);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().message().rfind("final_norm.weight: holds NaN", 0), 0u)
      << loaded.status();
}

}  // namespace
}  // namespace proteus
