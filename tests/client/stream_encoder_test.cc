// The client library against a real in-process server: results, reconnects, detach and
// resume, TLS with a token.
#include "client/stream_encoder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "tests/server/server_testing.h"

namespace proteus::client {
namespace {

namespace st = proteus::server::testing;

class StreamEncoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = st::StartTestServer();
    ASSERT_NE(server_, nullptr);
    doc_ = st::MakeDocument(2000, 77);
    path_ = ::testing::TempDir() + "/doc.txt";
    std::ofstream(path_, std::ios::binary) << st::AsBytes(doc_);
    ConnectionOptions options;
    options.server = server_->address;
    connection_ = std::make_unique<Connection>(*Connection::Connect(options));
    // The reference: the same chunks, through the server, with nothing going wrong.
    absl::StatusOr<v1::DocumentResult> whole = st::StreamDocument(server_->stub.get(), doc_, 300);
    ASSERT_TRUE(whole.ok()) << whole.status();
    expected_ = st::ToVector(whole->document_embedding());
  }

  absl::StatusOr<EncodedDocument> Encode(EncodeOptions options) {
    absl::StatusOr<std::unique_ptr<DocumentSource>> source = OpenByteFile(path_);
    if (!source.ok()) return source.status();
    return StreamEncodeDocument(*connection_, **source, options);
  }

  std::unique_ptr<st::TestServer> server_;
  std::vector<int32_t> doc_;
  std::string path_;
  std::unique_ptr<Connection> connection_;
  std::vector<float> expected_;
};

TEST_F(StreamEncoderTest, AFileStreamsInChunksWithAllOutputs) {
  EncodeOptions options;
  options.chunk_tokens = 300;
  options.outputs.set_hidden_states(true);
  options.outputs.set_log_likelihoods(true);
  int64_t last_progress = 0;
  options.progress = [&](int64_t done, int64_t total) {
    EXPECT_EQ(total, 2000);
    EXPECT_GT(done, last_progress);
    last_progress = done;
  };
  absl::StatusOr<EncodedDocument> doc = Encode(options);
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_TRUE(doc->finished);
  EXPECT_EQ(last_progress, 2000);
  EXPECT_EQ(doc->result.tokens(), 2000);
  EXPECT_EQ(doc->chunks.size(), 7u);
  EXPECT_EQ(doc->missing_chunks, 0);
  EXPECT_EQ(st::ToVector(doc->result.document_embedding()), expected_);
  size_t hidden = 0, ll = 0;
  for (const ChunkOutputs& c : doc->chunks) {
    hidden += c.hidden.size();
    ll += c.log_likelihoods.size();
  }
  EXPECT_EQ(hidden, 2000u * 64);
  EXPECT_EQ(ll, 2000u);
}

TEST_F(StreamEncoderTest, ADroppedStreamReconnectsAndResumesWithoutLosingOutputs) {
  EncodeOptions options;
  options.chunk_tokens = 300;
  options.TEST_cut_after_updates = 2;
  options.retry_backoff = absl::Milliseconds(10);
  absl::StatusOr<EncodedDocument> doc = Encode(options);
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_EQ(doc->reconnects, 1);
  EXPECT_EQ(doc->chunks.size(), 7u);
  EXPECT_EQ(doc->missing_chunks, 0);  // resent chunks were replayed from the server's cache
  EXPECT_EQ(doc->result.chunks(), 7u);
  EXPECT_EQ(st::ToVector(doc->result.document_embedding()), expected_);
}

TEST_F(StreamEncoderTest, DetachThenResumeFinishesTheSameDocument) {
  EncodeOptions first;
  first.chunk_tokens = 300;
  first.stop_after_tokens = 600;
  absl::StatusOr<EncodedDocument> part = Encode(first);
  ASSERT_TRUE(part.ok()) << part.status();
  EXPECT_FALSE(part->finished);
  EXPECT_EQ(part->chunks.back().end, 600);
  EncodeOptions rest;
  rest.chunk_tokens = 300;
  rest.session_id = part->session_id;
  absl::StatusOr<EncodedDocument> doc = Encode(rest);
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_TRUE(doc->finished);
  EXPECT_EQ(doc->missing_chunks, 2);  // applied by the first run
  EXPECT_EQ(doc->chunks.front().start, 600);
  EXPECT_EQ(st::ToVector(doc->result.document_embedding()), expected_);
}

TEST_F(StreamEncoderTest, ALostSessionRestartsTheDocumentWithTheSameAffinityKey) {
  // The replica dies after two chunks (deploy/README.md "When a replica dies"); a new one comes
  // up at the same address without the session. The client restarts the document there.
  const int port = server_->server->ports()[0];
  std::unique_ptr<st::TestServer> replacement;
  EncodeOptions options;
  options.chunk_tokens = 300;
  options.retry_backoff = absl::Milliseconds(50);
  std::vector<std::pair<std::string, std::string>> sessions;
  options.on_session = [&](const std::string& id, const std::string& key) {
    sessions.emplace_back(id, key);
  };
  int updates = 0;
  options.progress = [&](int64_t, int64_t) {
    if (++updates != 2) return;
    server_->server->Shutdown(absl::ZeroDuration());
    server::ServerOptions o = st::TestOptions();
    o.listen_addresses = {absl::StrCat("127.0.0.1:", port)};
    replacement = st::StartTestServer(o);
    ASSERT_NE(replacement, nullptr) << "could not start the replacement on port " << port;
  };
  absl::StatusOr<EncodedDocument> doc = Encode(options);
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_EQ(doc->restarts, 1);
  EXPECT_TRUE(doc->finished);
  EXPECT_EQ(st::ToVector(doc->result.document_embedding()), expected_);
  EXPECT_EQ(doc->result.chunks(), 7u);  // the whole document again, in the new session
  ASSERT_EQ(sessions.size(), 2u);
  EXPECT_NE(sessions[0].first, sessions[1].first);
  EXPECT_EQ(sessions[0].second, sessions[1].second);  // one key for the document's life
  EXPECT_EQ(doc->affinity_key, sessions[0].second);
  EXPECT_THAT(doc->affinity_key, ::testing::MatchesRegex("[0-9a-f]{32}"));
  // Another document gets another key; a resume sends only the key it is given.
  absl::StatusOr<EncodedDocument> other = Encode(EncodeOptions());
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_NE(other->affinity_key, doc->affinity_key);
  server_ = std::move(replacement);  // TearDown-free: the fixture owns it now
}

TEST_F(StreamEncoderTest, ServerErrorsAreNotRetriedAndNameTheFile) {
  EncodeOptions options;
  options.session_id = "0123456789abcdef0123456789abcdef";
  absl::StatusOr<EncodedDocument> doc = Encode(options);
  EXPECT_EQ(doc.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(doc.status().message()), ::testing::HasSubstr(path_));
  const std::string empty = ::testing::TempDir() + "/empty.txt";
  std::ofstream(empty).flush();
  absl::StatusOr<std::unique_ptr<DocumentSource>> source = OpenByteFile(empty);
  ASSERT_TRUE(source.ok());
  EXPECT_EQ(StreamEncodeDocument(*connection_, **source, EncodeOptions()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(StreamEncoderTlsTest, EncodesOverTlsWithABearerToken) {
  const std::string dir = ::testing::TempDir() + "/client-pki";
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(st::MakeTestPki(dir).ok());
  std::ofstream(dir + "/tokens") << "client-token\n";
  server::ServerOptions server_options = st::TestOptions();
  server_options.tls = {dir + "/server.pem", dir + "/server.key", dir + "/ca.pem"};
  server_options.token_file = dir + "/tokens";
  auto server = st::StartTestServer(server_options);
  ASSERT_NE(server, nullptr);
  const std::string path = ::testing::TempDir() + "/tls-doc.txt";
  std::ofstream(path, std::ios::binary) << "a short document over mutual TLS";
  ConnectionOptions options;
  options.server = server->address;
  options.ca_file = dir + "/ca.pem";
  options.cert_file = dir + "/client.pem";
  options.key_file = dir + "/client.key";
  options.server_name = "localhost";
  options.token_file = dir + "/tokens";
  absl::StatusOr<Connection> connection = Connection::Connect(options);
  ASSERT_TRUE(connection.ok()) << connection.status();
  absl::StatusOr<std::unique_ptr<DocumentSource>> source = OpenByteFile(path);
  EncodeOptions encode;
  encode.max_attempts = 1;
  absl::StatusOr<EncodedDocument> doc = StreamEncodeDocument(*connection, **source, encode);
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_EQ(doc->result.tokens(), 32);
  options.token_file.clear();
  options.token = "wrong";
  absl::StatusOr<Connection> wrong = Connection::Connect(options);
  EXPECT_EQ(StreamEncodeDocument(*wrong, **source, encode).status().code(),
            absl::StatusCode::kUnauthenticated);
}

}  // namespace
}  // namespace proteus::client
