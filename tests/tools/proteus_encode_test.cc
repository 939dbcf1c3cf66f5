// proteus_encode as a user runs it: a real process, real files.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <ATen/ATen.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "model/config.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "tests/testing/model_testing.h"

namespace proteus {
namespace {

namespace fs = std::filesystem;

std::string Binary() {
  const char* env = std::getenv("PROTEUS_ENCODE_BIN");
  return env != nullptr ? env : "tools/encode/proteus_encode";  // Bazel runfiles
}

struct Outcome {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

Outcome RunTool(const std::string& args) {
  Outcome o;
  FILE* pipe = popen((Binary() + " " + args + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return o;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) o.output.append(buf.data(), n);
  const int status = pclose(pipe);
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return o;
}

class ProteusEncodeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string((fs::path(::testing::TempDir()) / "proteus_encode_test").string());
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    ModelConfig config = testing::SmallRoutedConfig();
    ASSERT_TRUE(SaveModelConfig(config, *dir_ + "/small.json").ok());
    const Outcome o = RunTool("--init-checkpoint " + *dir_ + "/model --config " + *dir_ +
                              "/small.json --seed 17");
    ASSERT_EQ(o.exit_code, 0) << o.output;
    const std::vector<int32_t> doc = testing::MakeDocument(1500, 5);
    std::ofstream(*dir_ + "/doc.txt", std::ios::binary)
        << std::string(doc.begin(), doc.end());
  }
  static std::string Path(const std::string& name) { return *dir_ + "/" + name; }
  static std::string* dir_;
};
std::string* ProteusEncodeTest::dir_ = nullptr;

std::vector<float> Floats(const SafetensorsFile& f, const std::string& name) {
  const TensorView* v = f.Find(name);
  EXPECT_NE(v, nullptr) << name;
  if (v == nullptr) return {};
  EXPECT_EQ(v->dtype, DType::kF32) << name;
  std::vector<float> out(v->nbytes / sizeof(float));
  std::memcpy(out.data(), v->data, v->nbytes);
  return out;
}

std::vector<int64_t> Longs(const SafetensorsFile& f, const std::string& name) {
  const TensorView* v = f.Find(name);
  EXPECT_NE(v, nullptr) << name;
  if (v == nullptr) return {};
  EXPECT_EQ(v->dtype, DType::kI64) << name;
  std::vector<int64_t> out(v->nbytes / sizeof(int64_t));
  std::memcpy(out.data(), v->data, v->nbytes);
  return out;
}

TEST_F(ProteusEncodeTest, InitCheckpointLoadsAndRoundTrips) {
  absl::StatusOr<Checkpoint> ckpt = LoadCheckpoint(Path("model"));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  const ModelWeights expected = InitWeights(testing::SmallRoutedConfig(), 17);
  EXPECT_TRUE(at::equal(ckpt->weights.embed, expected.embed));
  EXPECT_TRUE(at::equal(ckpt->weights.layers[1].dna, expected.layers[1].dna));
  // Same seed, same bytes.
  const Outcome o = RunTool("--init-checkpoint " + Path("model2") + " --config " +
                            Path("small.json") + " --seed 17");
  ASSERT_EQ(o.exit_code, 0) << o.output;
  std::ifstream a(Path("model/model.safetensors"), std::ios::binary),
      b(Path("model2/model.safetensors"), std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(a), {}),
            std::string(std::istreambuf_iterator<char>(b), {}));
}

TEST_F(ProteusEncodeTest, WholeAndChunkedEncodingsAgree) {
  const Outcome whole_run = RunTool("--model " + Path("model") + " --input " + Path("doc.txt") +
                                    " --out " + Path("whole.safetensors"));
  ASSERT_EQ(whole_run.exit_code, 0) << whole_run.output;
  EXPECT_NE(whole_run.output.find("1500 tokens in 1 chunks"), std::string::npos)
      << whole_run.output;
  absl::StatusOr<SafetensorsFile> whole = SafetensorsFile::Open(Path("whole.safetensors"));
  ASSERT_TRUE(whole.ok()) << whole.status();
  const ModelConfig c = testing::SmallRoutedConfig();
  EXPECT_EQ(whole->Find("hidden")->shape, (std::vector<int64_t>{1500, c.d_model}));
  EXPECT_EQ(whole->Find("logits")->shape, (std::vector<int64_t>{1500, c.vocab_size}));
  EXPECT_EQ(whole->Find("layers.1.heads")->shape, (std::vector<int64_t>{1500, c.n_head}));
  const std::vector<int64_t> block_shape = whole->Find("layers.0.blocks")->shape;
  EXPECT_EQ(block_shape[0], (1500 + c.attn_block - 1) / c.attn_block);
  EXPECT_EQ(block_shape[1], c.attn_kv_heads);
  EXPECT_TRUE(std::isnan(Floats(*whole, "logprobs")[0]));
  EXPECT_EQ(Longs(*whole, "positions")[1499], 1499);
  EXPECT_EQ(Longs(*whole, "tokens")[0], testing::MakeDocument(1, 5)[0]);
  // -1 padding appears (early blocks select fewer than k_max).
  const std::vector<int64_t> blocks = Longs(*whole, "layers.0.blocks");
  EXPECT_EQ(blocks[0], -1);

  for (int chunk : {1, 7, 64, 333}) {
    SCOPED_TRACE(::testing::Message() << "chunk " << chunk);
    const std::string out = Path("chunk" + std::to_string(chunk) + ".safetensors");
    const Outcome o = RunTool("--model " + Path("model") + " --input " + Path("doc.txt") +
                              " --chunk " + std::to_string(chunk) + " --out " + out);
    ASSERT_EQ(o.exit_code, 0) << o.output;
    absl::StatusOr<SafetensorsFile> part = SafetensorsFile::Open(out);
    ASSERT_TRUE(part.ok()) << part.status();
    EXPECT_LE(testing::RelativeError(Floats(*part, "hidden"), Floats(*whole, "hidden")), 1e-5);
    EXPECT_LE(testing::RelativeError(Floats(*part, "document_embedding"),
                                     Floats(*whole, "document_embedding")),
              1e-5);
    EXPECT_EQ(part->Find("chunk_embeddings")->shape[0], (1500 + chunk - 1) / chunk);
    for (int l = 0; l < c.n_layer; ++l) {
      const std::string layer = "layers." + std::to_string(l);
      EXPECT_EQ(Longs(*part, layer + ".heads"), Longs(*whole, layer + ".heads")) << layer;
      EXPECT_EQ(Longs(*part, layer + ".blocks"), Longs(*whole, layer + ".blocks")) << layer;
    }
  }
}

TEST_F(ProteusEncodeTest, SeveralInputsAndTokenIds) {
  std::ofstream(Path("ids.json")) << "[104, 101, 108, 108, 111, 256, 33]";
  const Outcome o = RunTool("--model " + Path("model") + " --ids --input " + Path("ids.json") +
                            " --input " + Path("ids.json") + " --out " + Path("two.safetensors"));
  ASSERT_EQ(o.exit_code, 0) << o.output;
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Open(Path("two.safetensors"));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(Longs(*f, "doc0.tokens"), (std::vector<int64_t>{104, 101, 108, 108, 111, 256, 33}));
  EXPECT_EQ(Floats(*f, "doc0.hidden"), Floats(*f, "doc1.hidden"));
  EXPECT_EQ(f->Find("hidden"), nullptr);
}

TEST_F(ProteusEncodeTest, BadArgumentsExitNonZeroNamingTheArgument) {
  const std::string model = " --model " + Path("model");
  const std::string io = " --input " + Path("doc.txt") + " --out " + Path("x.safetensors");
  const std::pair<std::string, std::string> cases[] = {
      {"--input " + Path("doc.txt") + " --out " + Path("x.safetensors"), "--model"},
      {model + " --out " + Path("x.safetensors"), "--input"},
      {model + " --input " + Path("doc.txt"), "--out"},
      {model + io + " --chunk 0", "--chunk"},
      {model + io + " --chunk ten", "--chunk"},
      {model + io + " --device tpu", "--device"},
      {model + io + " --dtype int8", "--dtype"},
      {model + io + " --kv-dtype fp8", "--kv-dtype"},
      {model + io + " --dna-adapt sometimes", "--dna-adapt"},
      {model + io + " --bogus", "--bogus"},
      {model + io + " --chunk", "--chunk"},
      {" --model " + Path("no_such_dir") + io, "--model"},
      {model + " --input " + Path("missing.txt") + " --out " + Path("x.safetensors"), "--input"},
      {model + " --ids --input " + Path("doc.txt") + " --out " + Path("x.safetensors"), "--input"},
      {model + io + " --max-resident-tokens 10", "--max-resident-tokens"},
      {"--init-checkpoint " + Path("m3") + " --seed 1", "--config"},
      {"--init-checkpoint " + Path("m3") + " --config " + Path("small.json"), "--seed"},
      {"--init-checkpoint " + Path("m3") + " --config " + Path("small.json") + " --seed -4",
       "--seed"},
  };
  for (const auto& [args, named] : cases) {
    const Outcome o = RunTool(args);
    EXPECT_NE(o.exit_code, 0) << args;
    EXPECT_NE(o.output.find(named), std::string::npos) << args << "\n" << o.output;
  }
  // A malformed checkpoint config names the field.
  fs::create_directories(Path("broken"));
  fs::copy_file(Path("model/model.safetensors"), Path("broken/model.safetensors"),
                fs::copy_options::overwrite_existing);
  std::ofstream(Path("broken/config.json")) << R"({"d_model": 64.5})";
  const Outcome o = RunTool(" --model " + Path("broken") + io);
  EXPECT_NE(o.exit_code, 0);
  EXPECT_NE(o.output.find("d_model"), std::string::npos) << o.output;
  // --help documents every option and exits 0.
  const Outcome help = RunTool("--help");
  EXPECT_EQ(help.exit_code, 0);
  for (const char* flag : {"--model", "--input", "--ids", "--chunk", "--dna-adapt", "--device",
                           "--dtype", "--kv-dtype", "--out", "--init-checkpoint", "--config",
                           "--seed"}) {
    EXPECT_NE(help.output.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace proteus
