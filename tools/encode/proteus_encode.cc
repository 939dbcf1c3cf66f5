// proteus_encode: offline encoding of documents with any checkpoint, whole or
// in chunks, to safetensors (issue 3). Also writes random checkpoints for
// tests and benchmarks. Run with --help for the full usage.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/config.h"
#include "model/encoder.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"

namespace proteus {
namespace {

constexpr char kUsage[] = R"(usage:
  proteus_encode --model DIR --input FILE [--input FILE ...] --out OUT.safetensors
                 [--ids] [--chunk N] [--dna-adapt session|off] [--device cpu|cuda]
                 [--dtype float32|bfloat16] [--kv-dtype float32|bfloat16|float16]
                 [--max-resident-tokens N] [--threads N] [--quiet]
  proteus_encode --init-checkpoint DIR --config CONFIG.json --seed S

Encodes each input document with the checkpoint in DIR (config.json +
model.safetensors) and writes, per document, to OUT.safetensors:
  tokens              I64 [T]           the token ids
  positions           I64 [T]           global positions 0..T-1
  hidden              F32 [T, d_model]  final-normed hidden states
  logits              F32 [T, vocab]    next-token logits
  logprobs            F32 [T]           log p(token t | tokens < t); NaN at 0
  chunk_embeddings    F32 [chunks, d]   mean hidden state of each chunk
  document_embedding  F32 [d]           L2-normalised mean hidden state
  layers.{i}.heads    I64 [T, n_head]   kept virtual heads per token, best first
  layers.{i}.blocks   I64 [query_blocks, kv_heads, k_max]
                                        selected key blocks, best first, -1 padded
With several inputs every name is prefixed doc{j}. (j from 0, in input order).
A one-line summary per document goes to stdout; progress goes to stderr.

options:
  --model DIR             checkpoint directory
  --input FILE            a document: raw bytes (byte tokenizer), or with --ids a
                          JSON array of token ids; repeat for several documents
  --ids                   inputs are JSON arrays of token ids (< vocab_size)
  --chunk N               feed the document in chunks of N tokens (default: the
                          whole document at once); outputs do not depend on N
  --dna-adapt MODE        session (default): the document adapts its own copy of
                          the DNA prototypes; off: the checkpoint's are used as is
  --device cpu|cuda       where to run (default cpu)
  --dtype T               compute dtype: float32 (default) or bfloat16
  --kv-dtype T            KV cache dtype (default: the compute dtype)
  --max-resident-tokens N KV cache budget per layer in tokens (default 0: none);
                          evictions are reported in the summary
  --threads N             CPU threads (default: one per hardware thread)
  --quiet                 no progress line
  --out FILE              output safetensors file (written atomically)

  --init-checkpoint DIR   write a random checkpoint of CONFIG.json to DIR,
                          deterministic per --seed (an unsigned integer)
  --help                  this text
)";

struct Args {
  std::string model, out, init_checkpoint, config;
  std::vector<std::string> inputs;
  bool ids = false, quiet = false;
  int64_t chunk = 0, max_resident_tokens = 0;
  int threads = 0;
  std::optional<uint64_t> seed;
  std::string dna_adapt = "session", device = "cpu", dtype = "float32", kv_dtype;
  bool help = false;
};

absl::StatusOr<int64_t> PositiveInt(const std::string& flag, const std::string& text,
                                    bool allow_zero) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(text, &v) || v < (allow_zero ? 0 : 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": expected ", allow_zero ? "a non-negative" : "a positive", " integer, got \"",
        text, "\""));
  }
  return v;
}

absl::StatusOr<Args> ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i], value;
    const size_t eq = flag.find('=');
    bool has_value = false;
    if (flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      has_value = true;
    }
    auto take = [&]() -> absl::StatusOr<std::string> {
      if (has_value) return value;
      if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat(flag, ": missing value"));
      return std::string(argv[++i]);
    };
    auto boolean = [&](bool* out) -> absl::Status {
      if (has_value) return absl::InvalidArgumentError(absl::StrCat(flag, ": takes no value"));
      *out = true;
      return absl::OkStatus();
    };
    absl::Status s;
    absl::StatusOr<std::string> v;
    if (flag == "--help" || flag == "-h") {
      a.help = true;
      continue;
    } else if (flag == "--ids") {
      s = boolean(&a.ids);
    } else if (flag == "--quiet") {
      s = boolean(&a.quiet);
    } else if (flag == "--model" || flag == "--out" || flag == "--input" ||
               flag == "--init-checkpoint" || flag == "--config" || flag == "--dna-adapt" ||
               flag == "--device" || flag == "--dtype" || flag == "--kv-dtype" ||
               flag == "--chunk" || flag == "--seed" || flag == "--max-resident-tokens" ||
               flag == "--threads") {
      v = take();
      if (!v.ok()) return v.status();
      if (v->empty()) return absl::InvalidArgumentError(absl::StrCat(flag, ": empty value"));
      if (flag == "--model") a.model = *v;
      if (flag == "--out") a.out = *v;
      if (flag == "--input") a.inputs.push_back(*v);
      if (flag == "--init-checkpoint") a.init_checkpoint = *v;
      if (flag == "--config") a.config = *v;
      if (flag == "--dna-adapt") a.dna_adapt = *v;
      if (flag == "--device") a.device = *v;
      if (flag == "--dtype") a.dtype = *v;
      if (flag == "--kv-dtype") a.kv_dtype = *v;
      if (flag == "--chunk") {
        absl::StatusOr<int64_t> n = PositiveInt(flag, *v, false);
        if (!n.ok()) return n.status();
        a.chunk = *n;
      }
      if (flag == "--max-resident-tokens") {
        absl::StatusOr<int64_t> n = PositiveInt(flag, *v, true);
        if (!n.ok()) return n.status();
        a.max_resident_tokens = *n;
      }
      if (flag == "--threads") {
        absl::StatusOr<int64_t> n = PositiveInt(flag, *v, false);
        if (!n.ok()) return n.status();
        if (*n > 4096) return absl::InvalidArgumentError("--threads: at most 4096");
        a.threads = static_cast<int>(*n);
      }
      if (flag == "--seed") {
        uint64_t seed = 0;
        if (!absl::SimpleAtoi(*v, &seed)) {
          return absl::InvalidArgumentError(
              absl::StrCat("--seed: expected an unsigned integer, got \"", *v, "\""));
        }
        a.seed = seed;
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": unknown argument (see --help)"));
    }
    if (!s.ok()) return s;
  }
  if (a.help) return a;
  if (!a.init_checkpoint.empty()) {
    if (a.config.empty()) return absl::InvalidArgumentError("--config: required with --init-checkpoint");
    if (!a.seed) return absl::InvalidArgumentError("--seed: required with --init-checkpoint");
    if (!a.model.empty() || !a.inputs.empty() || !a.out.empty()) {
      return absl::InvalidArgumentError(
          "--init-checkpoint: cannot be combined with --model, --input or --out");
    }
    return a;
  }
  if (!a.config.empty()) return absl::InvalidArgumentError("--config: only with --init-checkpoint");
  if (a.seed) return absl::InvalidArgumentError("--seed: only with --init-checkpoint");
  if (a.model.empty()) return absl::InvalidArgumentError("--model: required (see --help)");
  if (a.inputs.empty()) return absl::InvalidArgumentError("--input: at least one is required");
  if (a.out.empty()) return absl::InvalidArgumentError("--out: required");
  return a;
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("--input ", path, ": cannot open"));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::DataLossError(absl::StrCat("--input ", path, ": read failed"));
  return bytes;
}

// Prints "tokens/s, ETA" at most once a second for documents that take long.
class Progress {
 public:
  Progress(bool enabled, std::string label, int64_t total)
      : enabled_(enabled), label_(std::move(label)), total_(total),
        start_(Clock::now()), last_(start_) {}
  void Update(int64_t done) {
    const auto now = Clock::now();
    if (!enabled_ || now - last_ < std::chrono::seconds(1)) return;
    last_ = now;
    printed_ = true;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = done / std::max(secs, 1e-9);
    const double eta = rate > 0 ? (total_ - done) / rate : 0;
    std::fprintf(stderr, "\r%s: %lld/%lld tokens (%.1f%%), %.0f tokens/s, ETA %.0fs   ",
                 label_.c_str(), static_cast<long long>(done), static_cast<long long>(total_),
                 100.0 * done / std::max<int64_t>(total_, 1), rate, eta);
  }
  void Finish() {
    if (printed_) std::fprintf(stderr, "\n");
  }

 private:
  using Clock = std::chrono::steady_clock;
  bool enabled_;
  std::string label_;
  int64_t total_;
  Clock::time_point start_, last_;
  bool printed_ = false;
};

// Collects one document's outputs and adds them to the writer.
absl::Status EncodeDocument(const Encoder& encoder, const Args& args, const std::string& path,
                            const std::string& prefix, SafetensorsWriter& writer) {
  absl::StatusOr<std::string> bytes = ReadWholeFile(path);
  if (!bytes.ok()) return bytes.status();
  std::vector<int32_t> tokens;
  if (args.ids) {
    absl::StatusOr<std::vector<int32_t>> ids =
        ParseTokenIdsJson(*bytes, encoder.config().vocab_size);
    if (!ids.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--input ", path, ": ", ids.status().message()));
    }
    tokens = *std::move(ids);
  } else {
    tokens = TokenizeBytes(*bytes);
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--input ", path, ": the document is empty"));
  }
  const ModelConfig& c = encoder.config();
  const int64_t T = static_cast<int64_t>(tokens.size());
  const int64_t chunk = args.chunk > 0 ? args.chunk : T;

  absl::StatusOr<DnaAdapt> adapt = ParseDnaAdapt(args.dna_adapt, "--dna-adapt");
  if (!adapt.ok()) return adapt.status();
  SessionOptions session_options;
  session_options.dna_adapt = *adapt;
  session_options.max_resident_tokens = args.max_resident_tokens;
  absl::StatusOr<std::unique_ptr<Session>> session = encoder.NewSession(session_options);
  if (!session.ok()) {
    return absl::Status(session.status().code(),
                        absl::StrCat("--max-resident-tokens: ", session.status().message()));
  }

  std::vector<float> hidden, logits, logprobs, chunk_embeddings;
  std::vector<std::vector<int64_t>> heads(c.n_layer);
  std::vector<std::vector<BlockSelection>> blocks(c.n_layer);
  int64_t evicted = 0, chunks = 0;
  ChunkRequest request;
  request.hidden = request.logits = request.logprobs = request.routing = true;
  Progress progress(!args.quiet && T >= 8192, absl::StrCat("proteus_encode ", path), T);
  for (int64_t start = 0; start < T; start += chunk) {
    const int64_t n = std::min(chunk, T - start);
    ChunkResult r;
    absl::Status s = encoder.EncodeChunk(
        **session, absl::MakeConstSpan(tokens).subspan(start, n), request, &r);
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat("--input ", path, ": ", s.message()));
    hidden.insert(hidden.end(), r.hidden.begin(), r.hidden.end());
    logits.insert(logits.end(), r.logits.begin(), r.logits.end());
    logprobs.insert(logprobs.end(), r.logprobs.begin(), r.logprobs.end());
    chunk_embeddings.insert(chunk_embeddings.end(), r.chunk_embedding.begin(),
                            r.chunk_embedding.end());
    for (int l = 0; l < c.n_layer; ++l) {
      heads[l].insert(heads[l].end(), r.layers[l].heads.begin(), r.layers[l].heads.end());
      blocks[l].insert(blocks[l].end(), r.layers[l].blocks.begin(), r.layers[l].blocks.end());
    }
    evicted += r.evicted_blocks;
    ++chunks;
    progress.Update(start + n);
  }
  progress.Finish();
  absl::StatusOr<std::vector<float>> embedding = (*session)->DocumentEmbedding();
  if (!embedding.ok()) return embedding.status();

  // The writer copies what it is given.
  auto add = [&](const std::string& name, DType dtype, std::vector<int64_t> shape,
                 const void* data, size_t nbytes) {
    return writer.Add(prefix + name, dtype, shape, data, nbytes);
  };
  auto add_f32 = [&](const std::string& name, std::vector<int64_t> shape,
                     const std::vector<float>& v) {
    return add(name, DType::kF32, std::move(shape), v.data(), v.size() * sizeof(float));
  };
  auto add_i64 = [&](const std::string& name, std::vector<int64_t> shape,
                     const std::vector<int64_t>& v) {
    return add(name, DType::kI64, std::move(shape), v.data(), v.size() * sizeof(int64_t));
  };
  std::vector<int64_t> tokens64(tokens.begin(), tokens.end()), positions(T);
  for (int64_t t = 0; t < T; ++t) positions[t] = t;
  std::vector<absl::Status> statuses = {
      add_i64("tokens", {T}, tokens64),
      add_i64("positions", {T}, positions),
      add_f32("hidden", {T, c.d_model}, hidden),
      add_f32("logits", {T, c.vocab_size}, logits),
      add_f32("logprobs", {T}, logprobs),
      add_f32("chunk_embeddings", {chunks, c.d_model}, chunk_embeddings),
      add_f32("document_embedding", {c.d_model}, *embedding)};
  for (int l = 0; l < c.n_layer; ++l) {
    statuses.push_back(add_i64(absl::StrCat("layers.", l, ".heads"), {T, c.n_head}, heads[l]));
    size_t k_max = 0;
    for (const BlockSelection& b : blocks[l]) {
      for (const auto& list : b.per_kv_head) k_max = std::max(k_max, list.size());
    }
    const int64_t nqb = static_cast<int64_t>(blocks[l].size()), kv = c.attn_kv_heads;
    std::vector<int64_t> padded(nqb * kv * k_max, -1);
    for (int64_t q = 0; q < nqb; ++q) {
      for (int64_t h = 0; h < kv; ++h) {
        const auto& list = blocks[l][q].per_kv_head[h];
        std::copy(list.begin(), list.end(), padded.begin() + (q * kv + h) * k_max);
      }
    }
    statuses.push_back(add_i64(absl::StrCat("layers.", l, ".blocks"),
                               {nqb, kv, static_cast<int64_t>(k_max)}, padded));
  }
  for (const absl::Status& s : statuses) {
    if (!s.ok()) return s;
  }
  const double nll_bits = (*session)->neg_log2_likelihood();
  std::cout << absl::StrFormat(
                   "%s%s: %d tokens in %d chunks, %.4f bits per token over %d predicted, "
                   "embedding[0:4] = [%.5f, %.5f, %.5f, %.5f], %d KV blocks evicted",
                   prefix.empty() ? "" : prefix, path, T, chunks,
                   T > 1 ? nll_bits / (T - 1) : 0.0, T - 1, (*embedding)[0], (*embedding)[1],
                   (*embedding)[2], (*embedding)[3], evicted)
            << std::endl;
  return absl::OkStatus();
}

absl::Status Run(const Args& args) {
  if (!args.init_checkpoint.empty()) {
    absl::StatusOr<ModelConfig> config = LoadModelConfig(args.config);
    if (!config.ok()) {
      return absl::Status(config.status().code(),
                          absl::StrCat("--config ", args.config, ": ", config.status().message()));
    }
    absl::Status s = WriteRandomCheckpoint(*config, *args.seed, args.init_checkpoint);
    if (s.ok()) std::cout << "wrote a random checkpoint (seed " << *args.seed << ") to "
                          << args.init_checkpoint << std::endl;
    return s;
  }
  EncoderOptions options;
  absl::StatusOr<DeviceKind> device = ParseDeviceKind(args.device, "--device");
  if (!device.ok()) return device.status();
  options.device = *device;
  absl::StatusOr<DType> dtype = ParseFloatDType(args.dtype, "--dtype");
  if (!dtype.ok()) return dtype.status();
  options.dtype = *dtype;
  options.kv_dtype = options.dtype;
  if (!args.kv_dtype.empty()) {
    absl::StatusOr<DType> kv = ParseFloatDType(args.kv_dtype, "--kv-dtype");
    if (!kv.ok()) return kv.status();
    options.kv_dtype = *kv;
  }
  options.num_threads = args.threads;
  absl::StatusOr<DnaAdapt> adapt = ParseDnaAdapt(args.dna_adapt, "--dna-adapt");
  if (!adapt.ok()) return adapt.status();
  absl::StatusOr<std::unique_ptr<Encoder>> encoder = Encoder::Open(args.model, options);
  if (!encoder.ok()) {
    return absl::Status(encoder.status().code(),
                        absl::StrCat("--model ", args.model, ": ", encoder.status().message()));
  }
  SafetensorsWriter writer;
  for (size_t j = 0; j < args.inputs.size(); ++j) {
    const std::string prefix = args.inputs.size() > 1 ? absl::StrCat("doc", j, ".") : "";
    absl::Status s = EncodeDocument(**encoder, args, args.inputs[j], prefix, writer);
    if (!s.ok()) return s;
  }
  writer.AddMetadata("producer", "proteus_encode").IgnoreError();
  absl::Status s = writer.WriteFile(args.out);
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat("--out ", args.out, ": ", s.message()));
  return absl::OkStatus();
}

}  // namespace
}  // namespace proteus

int main(int argc, char** argv) {
  absl::StatusOr<proteus::Args> args = proteus::ParseArgs(argc, argv);
  if (!args.ok()) {
    std::cerr << "proteus_encode: " << args.status().message() << "\n"
              << "run proteus_encode --help for usage" << std::endl;
    return 2;
  }
  if (args->help) {
    std::cout << proteus::kUsage;
    return 0;
  }
  absl::Status s = proteus::Run(*args);
  if (!s.ok()) {
    std::cerr << "proteus_encode: " << s.message() << std::endl;
    return 1;
  }
  return 0;
}
