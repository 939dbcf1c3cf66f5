// End-to-end ingest through gRPC against the model called directly (issue 5): one document is
// streamed in chunks (a) through Encoder::EncodeChunk in this process ("direct") and (b) through a
// ProteusServer in this process over loopback gRPC, with the stream kept --in_flight chunks ahead
// of its answers as the `proteus` client does ("grpc"). Both hold the same model (same config,
// same seed) on the same device; the rounds alternate so drift hits both. Prints every round's
// document time, the median ratio grpc / direct, and the chunk acknowledgement latency (chunk
// written → its update read) percentiles.
//
//   ingest_bench [--device cpu|cuda] [--dtype float32|bfloat16] [--random_config FILE]
//                [--tokens N] [--chunk N] [--in_flight N] [--rounds N]
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "model/config.h"
#include "model/encoder.h"
#include "proteus/v1/encoder.grpc.pb.h"
#include "server/proteus_server.h"
#include "server/server_options.h"

ABSL_FLAG(std::string, device, "cuda", "cpu or cuda");
ABSL_FLAG(std::string, dtype, "bfloat16", "float32 or bfloat16 (the KV cache too)");
ABSL_FLAG(std::string, random_config, "", "model config JSON (default: every field's default)");
ABSL_FLAG(int64_t, tokens, 1 << 20, "document length in tokens");
ABSL_FLAG(int64_t, chunk, 1 << 16, "tokens per chunk");
ABSL_FLAG(int, in_flight, 2, "chunks the gRPC stream may be ahead of its answers");
ABSL_FLAG(int, rounds, 3, "documents per path after one warm-up each");

namespace proteus {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  return v[i];
}

struct Round {
  double document_ms = 0;
  std::vector<double> chunk_ms;  // direct: EncodeChunk; grpc: written → update read
  std::vector<float> embedding;  // the document embedding, to check both paths agree
};

// The document through the public Encoder API, as a library user would call it.
absl::Status EncodeDirect(const Encoder& encoder, const std::vector<int32_t>& doc, int64_t chunk,
                          Round* round) {
  const auto t0 = Clock::now();
  absl::StatusOr<std::unique_ptr<Session>> session = encoder.NewSession(SessionOptions());
  if (!session.ok()) return session.status();
  for (size_t start = 0; start < doc.size(); start += chunk) {
    const size_t n = std::min<size_t>(chunk, doc.size() - start);
    ChunkResult result;
    const auto c0 = Clock::now();
    // EncodeChunk returns once its results are on the host.
    absl::Status s = encoder.EncodeChunk(**session, absl::MakeConstSpan(doc).subspan(start, n),
                                         ChunkRequest(), &result);
    if (!s.ok()) return s;
    round->chunk_ms.push_back(Ms(Clock::now() - c0));
  }
  absl::StatusOr<std::vector<float>> embedding = (*session)->DocumentEmbedding();
  if (!embedding.ok()) return embedding.status();
  round->embedding = *embedding;
  round->document_ms = Ms(Clock::now() - t0);
  return absl::OkStatus();
}

// The document through StreamEncode: a writer thread keeps up to `in_flight` chunks ahead of
// the updates this thread reads.
absl::Status EncodeGrpc(v1::Encoder::Stub& stub, const std::vector<int32_t>& doc, int64_t chunk,
                        int in_flight, Round* round) {
  const size_t chunks = (doc.size() + chunk - 1) / chunk;
  std::vector<Clock::time_point> written(chunks);
  std::mutex mu;
  std::condition_variable cv;
  size_t acknowledged = 0;
  bool stop = false;

  const auto t0 = Clock::now();
  grpc::ClientContext context;
  auto stream = stub.StreamEncode(&context);
  v1::StreamEncodeRequest open;
  open.mutable_open();
  v1::StreamEncodeResponse response;
  if (!stream->Write(open) || !stream->Read(&response) || !response.has_opened()) {
    return absl::UnavailableError(absl::StrCat("open failed: ", stream->Finish().error_message()));
  }
  std::thread writer([&] {
    for (size_t k = 0; k < chunks; ++k) {
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop || k < acknowledged + in_flight; });
        if (stop) return;
      }
      v1::StreamEncodeRequest request;
      v1::Chunk* c = request.mutable_chunk();
      c->set_chunk_number(k);
      const size_t start = k * chunk, n = std::min<size_t>(chunk, doc.size() - start);
      c->mutable_token_ids()->mutable_ids()->Add(doc.begin() + start, doc.begin() + start + n);
      {
        std::lock_guard<std::mutex> lock(mu);
        written[k] = Clock::now();
      }
      if (!stream->Write(request)) return;
    }
    v1::StreamEncodeRequest finish;
    finish.mutable_finish();
    stream->Write(finish);
    stream->WritesDone();
  });
  absl::Status status;
  while (stream->Read(&response)) {
    if (response.has_update()) {
      const auto now = Clock::now();
      std::lock_guard<std::mutex> lock(mu);
      round->chunk_ms.push_back(Ms(now - written[response.update().chunk_number()]));
      ++acknowledged;
      cv.notify_all();
    } else if (response.has_result()) {
      const auto& e = response.result().document_embedding();
      round->embedding.assign(e.begin(), e.end());
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
    cv.notify_all();
  }
  writer.join();
  grpc::Status end = stream->Finish();
  if (!end.ok()) return absl::InternalError(absl::StrCat("stream ended: ", end.error_message()));
  if (round->chunk_ms.size() != chunks || round->embedding.empty()) {
    return absl::InternalError(absl::StrCat("got ", round->chunk_ms.size(), " of ", chunks,
                                            " updates", round->embedding.empty() ? ", no result" : ""));
  }
  round->document_ms = Ms(Clock::now() - t0);
  return absl::OkStatus();
}

double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = a.size() == b.size() ? 0.0 : 1e30;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, double{std::abs(a[i] - b[i])});
  return m;
}

int Fail(const absl::Status& s, const char* what) {
  std::fprintf(stderr, "ingest_bench: %s: %s\n", what, std::string(s.message()).c_str());
  return 1;
}

int Run() {
  ModelConfig config;
  if (const std::string path = absl::GetFlag(FLAGS_random_config); !path.empty()) {
    absl::StatusOr<ModelConfig> loaded = LoadModelConfig(path);
    if (!loaded.ok()) return Fail(loaded.status(), "--random_config");
    config = *loaded;
  }
  EncoderOptions options;
  absl::StatusOr<DeviceKind> device = ParseDeviceKind(absl::GetFlag(FLAGS_device), "--device");
  if (!device.ok()) return Fail(device.status(), "--device");
  absl::StatusOr<DType> dtype = ParseFloatDType(absl::GetFlag(FLAGS_dtype), "--dtype");
  if (!dtype.ok()) return Fail(dtype.status(), "--dtype");
  options.device = *device;
  options.dtype = options.kv_dtype = *dtype;
  const int64_t tokens = absl::GetFlag(FLAGS_tokens), chunk = absl::GetFlag(FLAGS_chunk);
  const int in_flight = absl::GetFlag(FLAGS_in_flight), rounds = absl::GetFlag(FLAGS_rounds);

  absl::StatusOr<std::unique_ptr<Encoder>> direct = Encoder::OpenRandom(config, 1, options);
  if (!direct.ok()) return Fail(direct.status(), "model");
  absl::StatusOr<std::unique_ptr<Encoder>> served = Encoder::OpenRandom(config, 1, options);
  if (!served.ok()) return Fail(served.status(), "model");
  server::ServerOptions so;
  so.listen_addresses = {"127.0.0.1:0"};
  so.limits.max_chunk_tokens = chunk;
  so.limits.max_chunks_in_flight = in_flight;
  so.metrics_address = "";  // the series are still kept, as in production
  absl::StatusOr<std::unique_ptr<server::ProteusServer>> srv =
      server::ProteusServer::Start(so, *std::move(served), server::ModelDescription{"random-init(seed=1)", true});
  if (!srv.ok()) return Fail(srv.status(), "server");
  if (absl::Status s = (*srv)->WarmUp(); !s.ok()) return Fail(s, "warm-up");
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  auto channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", (*srv)->ports()[0]),
                                           grpc::InsecureChannelCredentials(), args);
  auto stub = v1::Encoder::NewStub(channel);

  std::vector<int32_t> doc(tokens);
  for (int64_t i = 0; i < tokens; ++i) doc[i] = static_cast<int32_t>((i * 7919 + i / 13) % 256);
  std::printf("ingest_bench: %s %s, d_model %d, %d layers, %s; %lld tokens in chunks of %lld, "
              "%d in flight\n",
              absl::GetFlag(FLAGS_device).c_str(), absl::GetFlag(FLAGS_dtype).c_str(),
              config.d_model, config.n_layer, std::string(AttnModeName(config.attn_mode)).c_str(),
              static_cast<long long>(tokens), static_cast<long long>(chunk), in_flight);

  std::vector<double> direct_ms, grpc_ms, ratios, direct_chunk, grpc_chunk;
  for (int r = 0; r <= rounds; ++r) {  // round 0 warms both paths up
    Round a, b;
    if (absl::Status s = EncodeDirect(**direct, doc, chunk, &a); !s.ok()) return Fail(s, "direct");
    if (absl::Status s = EncodeGrpc(*stub, doc, chunk, in_flight, &b); !s.ok()) return Fail(s, "grpc");
    std::printf("round %d%s: direct %.1f ms, grpc %.1f ms (x%.3f); embeddings differ by %.2e\n", r,
                r == 0 ? " (warm-up)" : "", a.document_ms, b.document_ms,
                b.document_ms / a.document_ms, MaxAbsDiff(a.embedding, b.embedding));
    std::fflush(stdout);
    if (r == 0) continue;
    direct_ms.push_back(a.document_ms);
    grpc_ms.push_back(b.document_ms);
    ratios.push_back(b.document_ms / a.document_ms);
    direct_chunk.insert(direct_chunk.end(), a.chunk_ms.begin(), a.chunk_ms.end());
    grpc_chunk.insert(grpc_chunk.end(), b.chunk_ms.begin(), b.chunk_ms.end());
  }
  const double direct_med = Percentile(direct_ms, 0.5), grpc_med = Percentile(grpc_ms, 0.5);
  std::printf("median document: direct %.1f ms (%.0f tokens/s), grpc %.1f ms (%.0f tokens/s); "
              "median ratio grpc/direct %.3f\n",
              direct_med, tokens / direct_med * 1e3, grpc_med, tokens / grpc_med * 1e3,
              Percentile(ratios, 0.5));
  std::printf("chunk: direct EncodeChunk p50 %.1f / p99 %.1f ms; grpc acknowledgement "
              "(written -> update) p50 %.1f / p99 %.1f ms over %zu chunks\n",
              Percentile(direct_chunk, 0.5), Percentile(direct_chunk, 0.99),
              Percentile(grpc_chunk, 0.5), Percentile(grpc_chunk, 0.99), grpc_chunk.size());
  (*srv)->Shutdown(absl::Seconds(5));
  return 0;
}

}  // namespace
}  // namespace proteus

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return proteus::Run();
}
