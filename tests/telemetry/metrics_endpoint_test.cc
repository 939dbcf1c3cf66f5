// The scrape endpoint over real loopback HTTP: the exposition at /metrics, the errors a person
// or a misconfigured scraper would meet, and a clear error when the port cannot be used.
#include "telemetry/metrics_endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace proteus::telemetry {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Sends `request` to 127.0.0.1:port and returns the whole response.
std::string Exchange(int port, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
    char buffer[4096];
    ssize_t n;
    while ((n = read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
  }
  close(fd);
  return response;
}

TEST(MetricsEndpointTest, ServesTheExpositionAndRefusesEverythingElse) {
  Metrics metrics(2, {});
  metrics.ingested_tokens().Increment(42);
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", metrics);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  const int port = (*endpoint)->port();
  ASSERT_GT(port, 0);

  const std::string ok = Exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(ok, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(ok, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(ok, HasSubstr("\r\n\r\n# HELP "));
  EXPECT_THAT(ok, HasSubstr("\nproteus_ingested_tokens_total 42\n"));
  EXPECT_THAT(ok, HasSubstr("proteus_router_tokens_total{layer=\"1\",regime=\"linear\"} 0"));
  // No routing was measured yet: no routing gauge at all (a 0 would read as collapse).
  EXPECT_THAT(ok, ::testing::Not(HasSubstr("proteus_router_gate_usage_perplexity{")));
  EXPECT_THAT(ok, ::testing::Not(HasSubstr("proteus_dna_drift_cosine_distance{")));
  // The body is exactly Content-Length bytes: the scrape text.
  const std::string body = ok.substr(ok.find("\r\n\r\n") + 4);
  EXPECT_THAT(ok, HasSubstr(absl::StrCat("Content-Length: ", body.size(), "\r\n")));
  EXPECT_EQ(body, metrics.Scrape());

  EXPECT_THAT(Exchange(port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n"), StartsWith("HTTP/1.1 200 OK"));
  const std::string head = Exchange(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(head, StartsWith("HTTP/1.1 200 OK"));
  EXPECT_EQ(head.substr(head.find("\r\n\r\n") + 4), "");
  EXPECT_THAT(Exchange(port, "GET / HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 404 Not Found"));
  EXPECT_THAT(Exchange(port, "POST /metrics HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 405 Method Not Allowed"));
  EXPECT_THAT(Exchange(port, "hello\r\n\r\n"), StartsWith("HTTP/1.1 400 Bad Request"));
  // Still serving after all that.
  EXPECT_THAT(Exchange(port, "GET /metrics HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 200 OK"));
}

TEST(MetricsEndpointTest, APortInUseOrABadAddressIsAClearError) {
  Metrics metrics(1, {});
  auto first = MetricsEndpoint::Start("127.0.0.1:0", metrics);
  ASSERT_TRUE(first.ok());
  const std::string taken = absl::StrCat("127.0.0.1:", (*first)->port());
  auto second = MetricsEndpoint::Start(taken, metrics);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(),
              HasSubstr(absl::StrCat("cannot serve metrics on ", taken, ": Address already in use")));
  EXPECT_THAT(MetricsEndpoint::Start("127.0.0.1", metrics).status().message(),
              HasSubstr("expected host:port"));
  EXPECT_THAT(MetricsEndpoint::Start("127.0.0.1:70000", metrics).status().message(),
              HasSubstr("expected host:port"));
}

}  // namespace
}  // namespace proteus::telemetry
