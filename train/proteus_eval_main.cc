// proteus_eval: bits per byte on a corpus split at several contexts, and the passkey-retrieval
// probe, for any model or checkpoint directory (config.json + model.safetensors), on the serving
// Encoder. Markdown tables on stdout, progress on stderr, everything also as JSON (--json_out).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "model/encoder.h"
#include "nlohmann/json.hpp"
#include "train/corpus.h"
#include "train/evaluation.h"

ABSL_FLAG(std::string, model, "", "model or checkpoint directory (required)");
ABSL_FLAG(std::string, corpus, "", "corpus directory (train/make_corpus.py); empty: no bits per byte");
ABSL_FLAG(std::string, split, "test", "split of --corpus to score: S.bin");
ABSL_FLAG(std::string, contexts, "1024,8192,65536,1048576", "bytes per window, comma separated");
ABSL_FLAG(int64_t, max_bytes, 1 << 20, "bytes scored per context (windows = max_bytes / context, ≥ 1)");
ABSL_FLAG(std::string, passkey_lengths, "", "prompt lengths in bytes, comma separated; empty: no probe");
ABSL_FLAG(std::string, passkey_depths, "0,0.25,0.5,0.75,1", "where the key sits, share of the filler");
ABSL_FLAG(int, passkey_trials, 5, "keys per (length, depth)");
ABSL_FLAG(uint64_t, seed, 1, "seed of the passkeys");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda");
ABSL_FLAG(std::string, dtype, "float32", "compute dtype: float32, bfloat16 (float16 on cuda)");
ABSL_FLAG(std::string, kv_dtype, "", "KV cache dtype; empty: the compute dtype");
ABSL_FLAG(std::string, dna_adapt, "session", "session or off");
ABSL_FLAG(int64_t, chunk_tokens, 65536, "tokens per encoder chunk");
ABSL_FLAG(std::string, json_out, "", "also write the results here as JSON");

namespace {

template <typename T>
absl::StatusOr<std::vector<T>> ParseList(const std::string& text, const char* flag) {
  std::vector<T> out;
  for (absl::string_view piece : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    T v;
    bool ok;
    if constexpr (std::is_same_v<T, double>) {
      ok = absl::SimpleAtod(piece, &v);
    } else {
      ok = absl::SimpleAtoi(piece, &v);
    }
    if (!ok) return absl::InvalidArgumentError(absl::StrCat(flag, ": '", piece, "' is not a number"));
    out.push_back(v);
  }
  return out;
}

// "label: done/total, elapsed, ETA" on stderr, at most once a second and at the end.
class Progress {
 public:
  explicit Progress(std::string label)
      : label_(std::move(label)), start_(std::chrono::steady_clock::now()), last_(start_) {}
  void operator()(int64_t done, int64_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_ < std::chrono::seconds(1)) return;
    last_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double eta = done > 0 ? elapsed * static_cast<double>(total - done) / done : 0.0;
    std::fprintf(stderr, "proteus_eval: %s: %lld/%lld, %.1f s, ETA %.1f s\n", label_.c_str(),
                 static_cast<long long>(done), static_cast<long long>(total), elapsed, eta);
  }

 private:
  std::string label_;
  std::chrono::steady_clock::time_point start_, last_;
};

absl::Status Main() {
  const std::string model = absl::GetFlag(FLAGS_model);
  if (model.empty()) return absl::InvalidArgumentError("--model is required");
  proteus::EncoderOptions eo;
  absl::StatusOr<proteus::DeviceKind> device =
      proteus::ParseDeviceKind(absl::GetFlag(FLAGS_device), "--device");
  if (!device.ok()) return device.status();
  eo.device = *device;
  absl::StatusOr<proteus::DType> dtype =
      proteus::ParseFloatDType(absl::GetFlag(FLAGS_dtype), "--dtype");
  if (!dtype.ok()) return dtype.status();
  eo.dtype = *dtype;
  const std::string kv = absl::GetFlag(FLAGS_kv_dtype);
  absl::StatusOr<proteus::DType> kv_dtype =
      kv.empty() ? *dtype : proteus::ParseFloatDType(kv, "--kv_dtype");
  if (!kv_dtype.ok()) return kv_dtype.status();
  eo.kv_dtype = *kv_dtype;
  proteus::SessionOptions so;
  absl::StatusOr<proteus::DnaAdapt> adapt =
      proteus::ParseDnaAdapt(absl::GetFlag(FLAGS_dna_adapt), "--dna_adapt");
  if (!adapt.ok()) return adapt.status();
  so.dna_adapt = *adapt;
  const int64_t chunk = absl::GetFlag(FLAGS_chunk_tokens);

  absl::StatusOr<std::vector<int64_t>> contexts =
      ParseList<int64_t>(absl::GetFlag(FLAGS_contexts), "--contexts");
  if (!contexts.ok()) return contexts.status();
  absl::StatusOr<std::vector<int64_t>> lengths =
      ParseList<int64_t>(absl::GetFlag(FLAGS_passkey_lengths), "--passkey_lengths");
  if (!lengths.ok()) return lengths.status();
  absl::StatusOr<std::vector<double>> depths =
      ParseList<double>(absl::GetFlag(FLAGS_passkey_depths), "--passkey_depths");
  if (!depths.ok()) return depths.status();
  const std::string corpus_dir = absl::GetFlag(FLAGS_corpus);
  if (corpus_dir.empty() && lengths->empty()) {
    return absl::InvalidArgumentError("nothing to do: give --corpus and/or --passkey_lengths");
  }

  absl::StatusOr<std::unique_ptr<proteus::Encoder>> encoder = proteus::Encoder::Open(model, eo);
  if (!encoder.ok()) {
    return absl::Status(encoder.status().code(),
                        absl::StrCat("--model ", model, ": ", encoder.status().message()));
  }
  nlohmann::json report = {{"model", model}, {"device", absl::GetFlag(FLAGS_device)},
                           {"dtype", proteus::FloatDTypeName(*dtype)}};

  if (!corpus_dir.empty()) {
    const std::string path = absl::StrCat(corpus_dir, "/", absl::GetFlag(FLAGS_split), ".bin");
    absl::StatusOr<proteus::train::Corpus> split = proteus::train::Corpus::Open(path);
    if (!split.ok()) return split.status();
    std::printf("bits per byte, %s (%lld bytes)\n\n| context | windows | scored bytes | bpb |\n"
                "|---|---|---|---|\n",
                path.c_str(), static_cast<long long>(split->size()));
    report["bits_per_byte"] = nlohmann::json::array();
    for (int64_t context : *contexts) {
      proteus::train::BitsPerByteOptions o;
      o.context = context;
      o.max_bytes = absl::GetFlag(FLAGS_max_bytes);
      o.chunk_tokens = chunk;
      o.session = so;
      Progress progress(absl::StrCat("bpb at ", context));
      absl::StatusOr<proteus::train::BitsPerByteResult> r =
          proteus::train::EvaluateBitsPerByte(**encoder, *split, o, std::ref(progress));
      if (!r.ok()) return r.status();
      std::printf("| %lld | %lld | %lld | %.4f |\n", static_cast<long long>(r->context),
                  static_cast<long long>(r->windows), static_cast<long long>(r->scored_bytes),
                  r->bits_per_byte);
      std::fflush(stdout);
      report["bits_per_byte"].push_back({{"context", r->context},
                                         {"windows", r->windows},
                                         {"scored_bytes", r->scored_bytes},
                                         {"bits_per_byte", r->bits_per_byte}});
    }
    std::printf("\n");
  }

  if (!lengths->empty()) {
    const int trials = absl::GetFlag(FLAGS_passkey_trials);
    std::printf("passkey retrieval, %d trials per cell: keys right (digits right of %d)\n\n"
                "| length \\ depth |",
                trials, 5 * trials);
    for (double d : *depths) std::printf(" %g |", d);
    std::printf("\n|---|");
    for (size_t i = 0; i < depths->size(); ++i) std::printf("---|");
    std::printf("\n");
    report["passkey"] = nlohmann::json::array();
    for (int64_t length : *lengths) {
      std::printf("| %lld |", static_cast<long long>(length));
      for (double depth : *depths) {
        proteus::train::PasskeyOptions o;
        o.length = length;
        o.depth = depth;
        o.trials = trials;
        o.seed = absl::GetFlag(FLAGS_seed);
        o.chunk_tokens = chunk;
        o.session = so;
        Progress progress(absl::StrCat("passkey at ", length, " depth ", depth, ", trials"));
        absl::StatusOr<proteus::train::PasskeyResult> r =
            proteus::train::EvaluatePasskey(**encoder, o, std::ref(progress));
        if (!r.ok()) return r.status();
        std::printf(" %d/%d (%d) |", r->correct, r->trials, r->digits_correct);
        std::fflush(stdout);
        report["passkey"].push_back({{"length", length},
                                     {"depth", depth},
                                     {"trials", r->trials},
                                     {"correct", r->correct},
                                     {"digits_correct", r->digits_correct},
                                     {"mean_digit_rank", static_cast<double>(r->digit_rank_sum) /
                                                             (5.0 * r->trials)}});
      }
      std::printf("\n");
    }
  }

  const std::string json_out = absl::GetFlag(FLAGS_json_out);
  if (!json_out.empty()) {
    std::ofstream f(json_out);
    f << report.dump(2) << "\n";
    if (!f) return absl::UnavailableError(absl::StrCat("--json_out ", json_out, ": cannot write"));
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "proteus_eval --model DIR [--corpus DIR] [--passkey_lengths L,...] [flags]: bits per byte "
      "at several contexts and passkey retrieval");
  absl::ParseCommandLine(argc, argv);
  absl::Status s = Main();
  if (!s.ok()) {
    std::fprintf(stderr, "proteus_eval: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
