// MetricsEndpoint: the Prometheus scrape endpoint on its own port (GET /metrics, text format
// 0.0.4, from Metrics::Scrape; prometheus-cpp builds and serialises every series).
//
// Why not prometheus-cpp's Exposer: it serves through civetweb, whose threads get a fixed
// 100 KB stack (Debian's libcivetweb1). In a process linked against a CUDA LibTorch the static
// TLS of the loaded libraries alone is larger (cuBLASLt 94 KB, LibTorch 26 KB, cuBLAS 12 KB),
// so glibc refuses to create them and the exposer cannot start ("Cannot create threads"; seen
// on the H100 machine, bench/RESULTS.md). This endpoint serves from one std::thread with the
// default stack, one connection at a time; each connection has 5 s to send its request and
// take the answer, so a stuck scraper delays the next scrape, never the encoder.
//
// Thread-safety: Start and the destructor from one thread; serving runs on its own thread.
#ifndef PROTEUS_TELEMETRY_METRICS_ENDPOINT_H_
#define PROTEUS_TELEMETRY_METRICS_ENDPOINT_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "telemetry/metrics.h"

namespace proteus::telemetry {

class MetricsEndpoint {
 public:
  // Listens on `address` ("host:port", "[v6]:port"; port 0 picks one) and serves `metrics`,
  // which must outlive the endpoint. UNAVAILABLE, naming the address and the reason, if it
  // cannot listen.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(const std::string& address,
                                                                const Metrics& metrics);
  // Stops serving and joins the thread.
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  int port() const { return port_; }

 private:
  explicit MetricsEndpoint(const Metrics& metrics) : metrics_(metrics) {}
  void Serve();
  void Answer(int connection);

  const Metrics& metrics_;
  int listen_fd_ = -1;
  int wake_fds_[2] = {-1, -1};  // a pipe: the destructor writes, Serve wakes and returns
  int port_ = 0;
  std::thread thread_;
};

}  // namespace proteus::telemetry

#endif  // PROTEUS_TELEMETRY_METRICS_ENDPOINT_H_
