#include "client/output_writers.h"

#include <cstdio>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "model/safetensors.h"
#include "nlohmann/json.hpp"

namespace proteus::client {
namespace {

// Everything the chunks carried for one field, in order.
std::vector<float> Concat(const EncodedDocument& doc, std::vector<float> ChunkOutputs::*field) {
  std::vector<float> out;
  for (const ChunkOutputs& c : doc.chunks) {
    out.insert(out.end(), (c.*field).begin(), (c.*field).end());
  }
  return out;
}

nlohmann::json Rows(const std::vector<float>& values, size_t width) {
  nlohmann::json rows = nlohmann::json::array();
  for (size_t i = 0; width > 0 && i + width <= values.size(); i += width) {
    rows.push_back(std::vector<float>(values.begin() + i, values.begin() + i + width));
  }
  return rows;
}

}  // namespace

absl::StatusOr<OutputFormat> OutputFormatOf(const std::string& path) {
  if (absl::EndsWith(path, ".json")) return OutputFormat::kJson;
  if (absl::EndsWith(path, ".npy")) return OutputFormat::kNpy;
  if (absl::EndsWith(path, ".safetensors")) return OutputFormat::kSafetensors;
  return absl::InvalidArgumentError(absl::StrCat(
      "--out ", path, ": the name must end in .json, .npy or .safetensors"));
}

std::string ToJson(const std::vector<NamedDocument>& docs, int d_model) {
  nlohmann::json out;
  out["documents"] = nlohmann::json::array();
  for (const NamedDocument& named : docs) {
    const EncodedDocument& d = named.document;
    nlohmann::json j;
    j["file"] = named.file;
    j["session_id"] = d.session_id;
    j["finished"] = d.finished;
    j["tokens"] = d.finished ? d.result.tokens() : (d.chunks.empty() ? 0 : d.chunks.back().end);
    j["chunks"] = d.chunks.size();
    j["missing_chunks"] = d.missing_chunks;
    if (d.finished) {
      j["bits_per_byte"] = d.result.bits_per_byte();
      j["neg_log2_likelihood"] = d.result.neg_log2_likelihood();
      j["evicted_blocks"] = d.result.evicted_blocks();
      j["document_embedding"] = std::vector<float>(d.result.document_embedding().begin(),
                                                   d.result.document_embedding().end());
    }
    j["chunk_embeddings"] = Rows(Concat(d, &ChunkOutputs::embedding), d_model);
    const std::vector<float> hidden = Concat(d, &ChunkOutputs::hidden);
    if (!hidden.empty()) j["hidden_states"] = Rows(hidden, d_model);
    const std::vector<float> ll = Concat(d, &ChunkOutputs::log_likelihoods);
    if (!ll.empty()) j["log_likelihoods"] = ll;  // NaN becomes null
    out["documents"].push_back(std::move(j));
  }
  return out.dump() + "\n";  // compact: hidden states make big files
}

absl::StatusOr<std::string> ToNpy(const std::vector<NamedDocument>& docs, int d_model) {
  std::vector<float> rows;
  for (const NamedDocument& named : docs) {
    if (!named.document.finished) {
      return absl::FailedPreconditionError(
          absl::StrCat(named.file, ": not finished, no document embedding for the .npy"));
    }
    const auto& e = named.document.result.document_embedding();
    rows.insert(rows.end(), e.begin(), e.end());
  }
  std::string header = absl::StrCat("{'descr': '<f4', 'fortran_order': False, 'shape': (",
                                    docs.size(), ", ", d_model, "), }");
  // Magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64,
  // ending in a newline (the .npy format, version 1.0).
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  out += header;
  out.append(reinterpret_cast<const char*>(rows.data()), rows.size() * sizeof(float));
  return out;
}

absl::StatusOr<std::string> ToSafetensors(const std::vector<NamedDocument>& docs, int d_model) {
  SafetensorsWriter writer;
  nlohmann::json files = nlohmann::json::array();
  for (size_t j = 0; j < docs.size(); ++j) {
    const EncodedDocument& d = docs[j].document;
    const std::string prefix = docs.size() > 1 ? absl::StrCat("doc", j, ".") : "";
    auto add = [&](const std::string& name, const std::vector<float>& values,
                   std::vector<int64_t> shape) {
      return writer.Add(prefix + name, DType::kF32, shape, values.data(),
                        values.size() * sizeof(float));
    };
    if (d.finished) {
      const std::vector<float> e(d.result.document_embedding().begin(),
                                 d.result.document_embedding().end());
      if (absl::Status s = add("document_embedding", e, {d_model}); !s.ok()) return s;
    }
    const std::vector<float> chunks = Concat(d, &ChunkOutputs::embedding);
    if (absl::Status s =
            add("chunk_embeddings", chunks, {static_cast<int64_t>(chunks.size()) / d_model, d_model});
        !s.ok()) {
      return s;
    }
    const std::vector<float> hidden = Concat(d, &ChunkOutputs::hidden);
    if (!hidden.empty()) {
      if (absl::Status s = add("hidden_states", hidden,
                               {static_cast<int64_t>(hidden.size()) / d_model, d_model});
          !s.ok()) {
        return s;
      }
    }
    const std::vector<float> ll = Concat(d, &ChunkOutputs::log_likelihoods);
    if (!ll.empty()) {
      if (absl::Status s = add("log_likelihoods", ll, {static_cast<int64_t>(ll.size())});
          !s.ok()) {
        return s;
      }
    }
    files.push_back({{"file", docs[j].file},
                     {"session_id", d.session_id},
                     {"bits_per_byte", d.finished ? d.result.bits_per_byte() : 0.0},
                     {"missing_chunks", d.missing_chunks}});
  }
  if (absl::Status s = writer.AddMetadata("producer", "proteus (client)"); !s.ok()) return s;
  if (absl::Status s = writer.AddMetadata("documents", files.dump()); !s.ok()) return s;
  return writer.Serialize();
}

absl::Status WriteOutput(const std::string& path, const std::vector<NamedDocument>& docs,
                         int d_model) {
  absl::StatusOr<OutputFormat> format = OutputFormatOf(path);
  if (!format.ok()) return format.status();
  absl::StatusOr<std::string> bytes;
  switch (*format) {
    case OutputFormat::kJson:
      bytes = ToJson(docs, d_model);
      break;
    case OutputFormat::kNpy:
      bytes = ToNpy(docs, d_model);
      break;
    case OutputFormat::kSafetensors:
      bytes = ToSafetensors(docs, d_model);
      break;
  }
  if (!bytes.ok()) return bytes.status();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes->data(), static_cast<std::streamsize>(bytes->size()));
    if (!out.flush()) return absl::InternalError(absl::StrCat("--out ", tmp, ": write failed"));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("--out ", path, ": rename failed"));
  }
  return absl::OkStatus();
}

}  // namespace proteus::client
