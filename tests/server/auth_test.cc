// Bearer tokens: the token file, the header, and the end-to-end behaviour over gRPC.
#include "server/auth.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "server/status_map.h"
#include "tests/server/server_testing.h"

namespace proteus::server {
namespace {

using ::testing::HasSubstr;

std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(AuthTest, TokenFileSkipsCommentsAndBlankLines) {
  absl::StatusOr<TokenAuthenticator> auth = TokenAuthenticator::FromFile(
      WriteFile("tokens", "# team tokens\n\n  alpha-123  \nbeta-456\n"));
  ASSERT_TRUE(auth.ok()) << auth.status();
  std::multimap<std::string, std::string> md = {{"authorization", "Bearer beta-456"}};
  EXPECT_EQ(*auth->Authenticate(md), 2);
  md = {{"authorization", "bearer alpha-123"}};
  EXPECT_EQ(*auth->Authenticate(md), 1);
}

TEST(AuthTest, BadTokenFilesNameThePath) {
  EXPECT_EQ(TokenAuthenticator::FromFile("/nonexistent/tokens").status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<TokenAuthenticator> empty =
      TokenAuthenticator::FromFile(WriteFile("empty", "# nothing\n"));
  EXPECT_THAT(std::string(empty.status().message()), HasSubstr("no token"));
  absl::StatusOr<TokenAuthenticator> spaced =
      TokenAuthenticator::FromFile(WriteFile("spaced", "two words\n"));
  EXPECT_THAT(std::string(spaced.status().message()), HasSubstr("line 1"));
}

TEST(AuthTest, MissingMalformedAndWrongTokensAreUnauthenticated) {
  TokenAuthenticator auth({"secret-token"});
  std::multimap<std::string, std::string> none;
  EXPECT_THAT(std::string(auth.Authenticate(none).status().message()),
              HasSubstr("missing bearer token"));
  std::multimap<std::string, std::string> basic = {{"authorization", "Basic abc"}};
  EXPECT_EQ(auth.Authenticate(basic).status().code(), absl::StatusCode::kUnauthenticated);
  std::multimap<std::string, std::string> wrong = {{"authorization", "Bearer secret-tokex"}};
  EXPECT_EQ(auth.Authenticate(wrong).status().code(), absl::StatusCode::kUnauthenticated);
  std::multimap<std::string, std::string> prefix = {{"authorization", "Bearer secret"}};
  EXPECT_FALSE(auth.Authenticate(prefix).ok());
  EXPECT_EQ(*TokenAuthenticator().Authenticate(none), 0);  // authentication off
}

TEST(AuthTest, OverGrpcEveryEncoderCallNeedsAValidTokenAndSessionsStayWithTheirToken) {
  ServerOptions options = testing::TestOptions();
  options.token_file = WriteFile("server-tokens", "token-a\ntoken-b\n");
  auto t = testing::StartTestServer(options);
  ASSERT_NE(t, nullptr);
  v1::EncodeRequest request;
  request.set_data("hello");
  v1::EncodeResponse response;
  for (const std::string& token : {std::string(), std::string("token-x")}) {
    grpc::ClientContext context;
    if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
    grpc::Status s = t->stub->Encode(&context, request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << token;
  }
  {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer token-b");
    EXPECT_TRUE(t->stub->Encode(&context, request, &response).ok());
  }
  testing::Stream anonymous(t->stub.get());
  EXPECT_EQ(anonymous.Open().status().code(), absl::StatusCode::kUnauthenticated);

  testing::Stream a(t->stub.get(), "token-a");
  absl::StatusOr<v1::SessionOpened> opened = a.Open();
  ASSERT_TRUE(opened.ok()) << opened.status();
  testing::Stream b(t->stub.get(), "token-b");
  absl::StatusOr<v1::SessionOpened> stolen = b.Open(opened->session_id());
  EXPECT_EQ(stolen.status().code(), absl::StatusCode::kPermissionDenied);
  testing::Stream a2(t->stub.get(), "token-a");
  EXPECT_TRUE(a2.Open(opened->session_id()).ok());
  // Health needs no token.
  EXPECT_EQ(testing::HealthOf(t->health.get()), "SERVING");
}

}  // namespace
}  // namespace proteus::server
