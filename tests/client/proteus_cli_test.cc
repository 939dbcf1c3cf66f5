// The `proteus` command as a user runs it (a real process), against an in-process server.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>

#include "model/safetensors.h"
#include "nlohmann/json.hpp"
#include "tests/server/server_testing.h"

namespace proteus::client {
namespace {

namespace st = proteus::server::testing;
using ::testing::HasSubstr;

std::string Binary() {
  const char* env = std::getenv("PROTEUS_CLI_BIN");
  return env != nullptr ? env : "client/proteus";  // Bazel runfiles
}

struct Outcome {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

Outcome RunCli(const std::string& args) {
  const std::string err_path = ::testing::TempDir() + "/proteus_cli_stderr";
  Outcome o;
  FILE* pipe = popen((Binary() + " " + args + " 2>" + err_path).c_str(), "r");
  if (pipe == nullptr) return o;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) o.out.append(buf.data(), n);
  const int status = pclose(pipe);
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  o.err = st::ReadFile(err_path);
  return o;
}

class ProteusCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = st::StartTestServer();
    ASSERT_NE(server_, nullptr);
    flags_ = "--server " + server_->address + " --progress never ";
    doc_ = ::testing::TempDir() + "/cli-doc.txt";
    std::ofstream(doc_, std::ios::binary) << st::AsBytes(st::MakeDocument(1200, 5));
  }
  std::unique_ptr<st::TestServer> server_;
  std::string flags_, doc_;
};

TEST_F(ProteusCliTest, HealthAndInfo) {
  Outcome health = RunCli(flags_ + "health");
  EXPECT_EQ(health.exit_code, 0) << health.err;
  EXPECT_EQ(health.out, "SERVING\n");
  Outcome info = RunCli(flags_ + "info");
  ASSERT_EQ(info.exit_code, 0) << info.err;
  const nlohmann::json j = nlohmann::json::parse(info.out);
  EXPECT_EQ(j["d_model"], 64);
  EXPECT_EQ(j["limits"]["max_chunk_tokens"], "4096");  // int64 is a string in proto JSON
}

TEST_F(ProteusCliTest, EncodePrintsJsonAndWritesSafetensors) {
  Outcome json = RunCli(flags_ + "encode --chunk_tokens 500 " + doc_);
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_THAT(json.err, HasSubstr("1200 tokens in 3 chunks"));
  EXPECT_THAT(json.err, HasSubstr("random-initialised"));
  const nlohmann::json j = nlohmann::json::parse(json.out);
  ASSERT_EQ(j["documents"].size(), 1u);
  EXPECT_EQ(j["documents"][0]["document_embedding"].size(), 64u);

  const std::string out = ::testing::TempDir() + "/cli.safetensors";
  Outcome st_out = RunCli(flags_ + "encode --log_likelihoods --out " + out + " " + doc_ + " " + doc_);
  ASSERT_EQ(st_out.exit_code, 0) << st_out.err;
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(out);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_NE(file->Find("doc1.document_embedding"), nullptr);
  EXPECT_EQ(file->Find("doc0.log_likelihoods")->shape, (std::vector<int64_t>{1200}));
  // Same document, same embedding, whatever the chunking.
  std::vector<float> a(64), b(64);
  std::memcpy(a.data(), file->Find("doc0.document_embedding")->data, 64 * sizeof(float));
  for (int i = 0; i < 64; ++i) b[i] = j["documents"][0]["document_embedding"][i];
  EXPECT_LE(st::RelativeError(a, b), 1e-5);
}

TEST_F(ProteusCliTest, DetachAndResume) {
  Outcome part = RunCli(flags_ + "encode --chunk_tokens 400 --detach_after_tokens 400 " + doc_);
  ASSERT_EQ(part.exit_code, 0) << part.err;
  const std::string id = nlohmann::json::parse(part.out)["documents"][0]["session_id"];
  // The printed command carries the document's routing key (x-proteus-session) and its id.
  const std::regex printed("proteus resume --affinity_key=([0-9a-f]{32}) " + id + " ");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(part.err, m, printed)) << part.err;
  Outcome rest = RunCli(flags_ + "resume --affinity_key=" + m[1].str() + " " + id + " " + doc_);
  ASSERT_EQ(rest.exit_code, 0) << rest.err;
  EXPECT_THAT(rest.err, HasSubstr("1200 tokens"));
}

TEST_F(ProteusCliTest, ErrorsAreReportedWithExitCodes) {
  EXPECT_EQ(RunCli(flags_ + "frobnicate").exit_code, 2);
  Outcome missing = RunCli(flags_ + "encode /nonexistent/file");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("/nonexistent/file"));
  Outcome bad_out = RunCli(flags_ + "encode --out x.txt " + doc_);
  EXPECT_EQ(bad_out.exit_code, 1);
  EXPECT_THAT(bad_out.err, HasSubstr(".json, .npy or .safetensors"));
  Outcome down = RunCli("--server 127.0.0.1:1 --timeout 2s health");
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_THAT(down.out, HasSubstr("UNREACHABLE"));
}

}  // namespace
}  // namespace proteus::client
