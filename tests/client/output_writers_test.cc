// The client's output formats and progress line, without a server.
#include "client/output_writers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "client/progress_bar.h"
#include "model/safetensors.h"
#include "nlohmann/json.hpp"

namespace proteus::client {
namespace {

std::vector<NamedDocument> TwoDocuments() {
  std::vector<NamedDocument> docs(2);
  for (int j = 0; j < 2; ++j) {
    EncodedDocument& d = docs[j].document;
    docs[j].file = "doc" + std::to_string(j) + ".txt";
    d.session_id = std::string(32, 'a' + j);
    d.finished = true;
    d.result.set_tokens(5);
    d.result.set_bits_per_byte(7.5);
    for (int i = 0; i < 2; ++i) d.result.add_document_embedding(j + i * 0.5f);
    for (int c = 0; c < 2; ++c) {
      ChunkOutputs chunk;
      chunk.number = c;
      chunk.start = c * 3;
      chunk.end = c == 0 ? 3 : 5;
      chunk.embedding = {float(c), float(c + 1)};
      const int n = chunk.end - chunk.start;
      chunk.hidden.assign(n * 2, 0.25f * (c + 1));
      chunk.log_likelihoods.assign(n, -1.0f);
      if (c == 0) chunk.log_likelihoods[0] = std::nanf("");
      d.chunks.push_back(chunk);
    }
  }
  return docs;
}

TEST(OutputWritersTest, FormatFollowsTheExtension) {
  EXPECT_EQ(*OutputFormatOf("a.json"), OutputFormat::kJson);
  EXPECT_EQ(*OutputFormatOf("a.npy"), OutputFormat::kNpy);
  EXPECT_EQ(*OutputFormatOf("x/a.safetensors"), OutputFormat::kSafetensors);
  EXPECT_EQ(OutputFormatOf("a.txt").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(OutputWritersTest, JsonHasEveryFieldAndNullForNaN) {
  const nlohmann::json j = nlohmann::json::parse(ToJson(TwoDocuments(), 2));
  ASSERT_EQ(j["documents"].size(), 2u);
  const nlohmann::json& d = j["documents"][1];
  EXPECT_EQ(d["file"], "doc1.txt");
  EXPECT_EQ(d["tokens"], 5);
  EXPECT_EQ(d["bits_per_byte"], 7.5);
  EXPECT_EQ(d["document_embedding"], (std::vector<float>{1.0f, 1.5f}));
  EXPECT_EQ(d["chunk_embeddings"].size(), 2u);
  EXPECT_EQ(d["hidden_states"].size(), 5u);
  EXPECT_TRUE(d["log_likelihoods"][0].is_null());
  EXPECT_EQ(d["log_likelihoods"][1], -1.0);
}

TEST(OutputWritersTest, NpyIsAFloat32MatrixOfDocumentEmbeddings) {
  absl::StatusOr<std::string> npy = ToNpy(TwoDocuments(), 2);
  ASSERT_TRUE(npy.ok());
  ASSERT_EQ(npy->substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const size_t header = static_cast<unsigned char>((*npy)[8]) |
                        (static_cast<unsigned char>((*npy)[9]) << 8);
  EXPECT_EQ((10 + header) % 64, 0u);  // data aligned as numpy writes it
  const std::string dict = npy->substr(10, header);
  EXPECT_THAT(dict, ::testing::HasSubstr("'descr': '<f4'"));
  EXPECT_THAT(dict, ::testing::HasSubstr("'shape': (2, 2)"));
  EXPECT_EQ(dict.back(), '\n');
  ASSERT_EQ(npy->size(), 10 + header + 4 * sizeof(float));
  float values[4];
  std::memcpy(values, npy->data() + 10 + header, sizeof(values));
  EXPECT_EQ(values[2], 1.0f);
  EXPECT_EQ(values[3], 1.5f);
  std::vector<NamedDocument> unfinished = TwoDocuments();
  unfinished[0].document.finished = false;
  EXPECT_FALSE(ToNpy(unfinished, 2).ok());
}

TEST(OutputWritersTest, SafetensorsNamesEachDocument) {
  absl::StatusOr<std::string> bytes = ToSafetensors(TwoDocuments(), 2);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Parse(*bytes);
  ASSERT_TRUE(file.ok()) << file.status();
  const TensorView* e = file->Find("doc1.document_embedding");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(file->Find("doc0.chunk_embeddings")->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(file->Find("doc0.hidden_states")->shape, (std::vector<int64_t>{5, 2}));
  EXPECT_EQ(file->Find("doc0.log_likelihoods")->shape, (std::vector<int64_t>{5}));
  EXPECT_THAT(file->Metadata().at("documents"), ::testing::HasSubstr("doc1.txt"));
}

TEST(ProgressBarTest, ShowsRateAndEta) {
  EXPECT_EQ(FormatProgress("f", 500, 1000, 2.0, 10),
            "f [#####>....]  50.0%  500/1000 tokens  250 tok/s  ETA 0:02");
  EXPECT_EQ(FormatProgress("f", 2000000, 2000000, 4.0, 4),
            "f [####] 100.0%  2.0M/2.0M tokens  500.0k tok/s  ETA 0:00");
  EXPECT_EQ(HumanCount(12345), "12.3k");
}

TEST(TensorTest, Bfloat16WidensExactly) {
  v1::Tensor t;
  t.set_dtype(v1::DTYPE_BFLOAT16);
  t.set_data(std::string("\x80\x3f\x00\xc0", 4));
  EXPECT_EQ(TensorToFloats(t), (std::vector<float>{1.0f, -2.0f}));
}

}  // namespace
}  // namespace proteus::client
