// Checkpoint: format detection, config.json, bounds, and undoing llama.cpp's
// Q/K row permutation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/numeric.h"
#include "st_test_util.h"
#include "weights/checkpoint.h"

using namespace kaival;
using namespace kaival::weights;
using namespace kaival::testutil;
namespace fs = std::filesystem;

namespace {

// llama.cpp's converter, written the way numpy executes it:
//   w.reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2).reshape(rows, cols)
// The result is the reshaped array [n_head, half, 2, cols] read in C order,
// whose element [h][i][j] is the source's [h][j][i], i.e. source row
// h*head_dim + j*half + i.
std::vector<std::vector<float>> llama_cpp_permute(const std::vector<std::vector<float>>& w, int n_head) {
  const size_t rows = w.size(), head_dim = rows / n_head, half = head_dim / 2;
  std::vector<std::vector<float>> out;
  for (size_t h = 0; h < static_cast<size_t>(n_head); ++h)
    for (size_t i = 0; i < half; ++i)
      for (size_t j = 0; j < 2; ++j) out.push_back(w[h * head_dim + j * half + i]);
  return out;
}

// Distinct values per row and column; with row_step 16 and < 16 rows they
// stay below 256, where every integer is exact in BF16.
std::vector<std::vector<float>> numbered(size_t rows, size_t cols, size_t row_step = 100) {
  std::vector<std::vector<float>> w(rows, std::vector<float>(cols));
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) w[r][c] = static_cast<float>(r * row_step + c);
  return w;
}

std::vector<uint8_t> f32_bytes(const std::vector<std::vector<float>>& w) {
  std::vector<uint8_t> out;
  for (const auto& row : w)
    for (float v : row) {
      auto b = le_bytes<float>({v});
      out.insert(out.end(), b.begin(), b.end());
    }
  return out;
}

std::vector<uint8_t> bf16_bytes(const std::vector<std::vector<float>>& w) {
  std::vector<uint8_t> out;
  for (const auto& row : w)
    for (float v : row) {
      auto b = le_bytes<uint16_t>({f32_to_bf16(v)});
      out.insert(out.end(), b.begin(), b.end());
    }
  return out;
}

}  // namespace

TEST(Checkpoint, UndoesLlamaCppPermutation) {
  // Q with 4 heads of dim 6, K with 2 KV heads (GQA), and a permuted Q bias.
  const auto q = numbered(24, 5), k = numbered(12, 5, 16);
  std::vector<std::vector<float>> bias_col;
  for (int r = 0; r < 24; ++r) bias_col.push_back({static_cast<float>(1000 + r)});
  std::vector<uint8_t> bias_bytes;
  for (const auto& row : llama_cpp_permute(bias_col, 4)) {
    auto b = le_bytes<float>({row[0]});
    bias_bytes.insert(bias_bytes.end(), b.begin(), b.end());
  }
  TempDir dir;
  write_st(dir.file("m.safetensors"), {{"q", "F32", {24, 5}, f32_bytes(llama_cpp_permute(q, 4))},
                                       {"k", "BF16", {12, 5}, bf16_bytes(llama_cpp_permute(k, 2))},
                                       {"qb", "F32", {24}, bias_bytes}});
  Checkpoint ck = Checkpoint::open(dir.file("m.safetensors"));

  TensorInfo tq = *ck.find("q"), tk = *ck.find("k"), tb = *ck.find("qb");
  // Stored order really is permuted (so the checks below are not vacuous).
  EXPECT_NE(ck.read_f32(tq)[5], q[1][0]);
  tq.unpermute_heads = 4;
  tk.unpermute_heads = 2;
  tb.unpermute_heads = 4;

  auto expect_rows = [&](const TensorInfo& t, const std::vector<std::vector<float>>& want, int64_t r0, int64_t n) {
    std::vector<float> got(static_cast<size_t>(n) * want[0].size());
    ck.read_rows(t, r0, n, got.data());
    for (int64_t r = 0; r < n; ++r)
      for (size_t c = 0; c < want[0].size(); ++c)
        ASSERT_EQ(got[r * want[0].size() + c], want[r0 + r][c]) << t.name << " row " << r0 + r << " col " << c;
  };
  expect_rows(tq, q, 0, 24);
  expect_rows(tq, q, 7, 9);  // a range crossing a head boundary
  expect_rows(tk, k, 0, 12);
  expect_rows(tk, k, 5, 1);
  std::vector<float> b = ck.read_f32(tb);
  for (int r = 0; r < 24; ++r) EXPECT_EQ(b[r], 1000 + r);

  // Rows that cannot be split into head pairs are a clear error.
  TensorInfo odd = *ck.find("q");
  odd.unpermute_heads = 5;
  EXPECT_THROW(ck.read_f32(odd), FormatError);
}

TEST(Checkpoint, FolderWithConfig) {
  TempDir dir;
  nlohmann::json config = {{"model_type", "llama"},  {"architectures", {"LlamaForCausalLM"}},
                           {"hidden_size", 4},        {"num_hidden_layers", 1},
                           {"num_attention_heads", 2}, {"num_key_value_heads", 1},
                           {"intermediate_size", 8},  {"vocab_size", 3},
                           {"rms_norm_eps", 1e-5},    {"tie_word_embeddings", false}};
  write_file(dir.file("config.json"), config.dump());
  std::vector<float> emb(12, 0.5f);
  std::vector<uint8_t> emb_bytes;
  for (float v : emb) {
    auto b = le_bytes<float>({v});
    emb_bytes.insert(emb_bytes.end(), b.begin(), b.end());
  }
  write_st(dir.file("model.safetensors"),
           {{"model.embed_tokens.weight", "F32", {3, 4}, emb_bytes},
            {"model.norm.weight", "F16", {4}, le_bytes<uint16_t>({0x3c00, 0x3c00, 0x3c00, 0x3c00})}});
  Checkpoint ck = Checkpoint::open(dir.str());
  EXPECT_EQ(ck.format(), Format::Safetensors);
  EXPECT_EQ(ck.folder(), dir.str());
  EXPECT_EQ(ck.gguf(), nullptr);
  EXPECT_EQ(ck.parameter_count(), 16);
  EXPECT_EQ(ck.architecture().hidden_size, 4);
  EXPECT_EQ(ck.architecture().vocab_size, 3);
  EXPECT_EQ(ck.architecture().family, "llama");
  EXPECT_EQ(role_name(ck.find("model.embed_tokens.weight")->role), "embedding");
  EXPECT_EQ(role_name(ck.find("model.norm.weight")->role), "final_norm");
  EXPECT_EQ(ck.find("missing"), nullptr);

  write_file(dir.file("config.json"), std::string("{\"model_type\": "));
  try {
    Checkpoint::open(dir.str());
    FAIL() << "accepted a broken config.json";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, FolderPicksWeightsByName) {
  TempDir dir;
  write_st(dir.file("a.safetensors"), {{"x", "F32", {1}, le_bytes<float>({1})}});
  EXPECT_EQ(Checkpoint::open(dir.str()).tensors().size(), 1u);  // the only .safetensors
  write_st(dir.file("b.safetensors"), {{"y", "F32", {1}, le_bytes<float>({1})}});
  EXPECT_THROW(Checkpoint::open(dir.str()), UnsupportedError);  // ambiguous
  write_st(dir.file("model.safetensors"), {{"z", "F32", {1}, le_bytes<float>({2})}});
  Checkpoint ck = Checkpoint::open(dir.str());  // the standard name wins
  ASSERT_EQ(ck.tensors().size(), 1u);
  EXPECT_EQ(ck.tensors()[0].name, "z");
}

// Fixture models trained by tools/gen_fixtures.py, when present.
TEST(Checkpoint, FixtureModels) {
  const fs::path models = fs::path(KAIVAL_TESTDATA) / "models";
  if (!fs::is_directory(models)) GTEST_SKIP() << "no fixture models yet";
  int opened = 0;
  for (const auto& e : fs::directory_iterator(models)) {
    if (!e.is_directory()) continue;
    for (const auto& f : fs::directory_iterator(e.path())) {
      std::string name = f.path().filename().string();
      bool weights = name == "model.safetensors" || name == "model.safetensors.index.json" ||
                     f.path().extension() == ".gguf" || name == "pytorch_model.bin";
      if (!weights) continue;
      SCOPED_TRACE(f.path().string());
      Checkpoint ck = Checkpoint::open(f.path().string());
      EXPECT_GT(ck.parameter_count(), 0);
      EXPECT_GT(ck.architecture().hidden_size, 0);
      for (const auto& t : ck.tensors()) {
        if (t.dtype == DType::Unsupported) continue;
        std::vector<float> v = ck.read_f32(t);
        for (float x : v) ASSERT_TRUE(std::isfinite(x)) << t.name;
        ck.release(t);
      }
      ++opened;
    }
  }
  EXPECT_GT(opened, 0);
}

// The fixture model exported in every format (tools/gen_fixtures.py): each
// export must read back as the same weights, tensor by tensor, matched by
// canonical role. For GGUF this also checks the Q/K un-permutation against the
// generator's own llama.cpp-style permutation: a wrong row order would leave
// the permuted tensors uncorrelated with the originals.
TEST(Checkpoint, FixtureExportsAgree) {
  const fs::path models = fs::path(KAIVAL_TESTDATA) / "models";
  if (!fs::is_directory(models / "base-a")) GTEST_SKIP() << "no fixture models yet";
  Checkpoint ref = Checkpoint::open((models / "base-a").string());
  std::map<std::string, const TensorInfo*> by_role;
  for (const auto& t : ref.tensors()) {
    ASSERT_NE(t.role.kind, RoleKind::Unknown) << t.name;
    by_role[role_name(t.role)] = &t;
  }

  struct Export {
    std::string path;
    double tolerance;  // max |diff| allowed, relative to the tensor's max |value|
    double max_rel_rms;
  };
  std::vector<Export> exports = {
      {(models / "base-a-sharded").string(), 0, 0},
      {(models / "base-a-pt").string(), 0, 0},
      {(models / "base-a-gguf" / "base-a-F16.gguf").string(), 1.0 / 1024, 1e-3},  // BF16 -> F16
      {(models / "base-a-gguf" / "base-a-Q8_0.gguf").string(), 1.0 / 127, 0.01},
      {(models / "base-a-gguf" / "base-a-Q4_K.gguf").string(), 1.0, 0.2},
  };
  int checked = 0;
  for (const auto& ex : exports) {
    if (!fs::exists(ex.path)) continue;
    SCOPED_TRACE(ex.path);
    Checkpoint ck = Checkpoint::open(ex.path);
    EXPECT_EQ(ck.parameter_count(), ref.parameter_count());
    EXPECT_EQ(ck.architecture().hidden_size, ref.architecture().hidden_size);
    EXPECT_EQ(ck.architecture().num_layers, ref.architecture().num_layers);
    EXPECT_EQ(ck.architecture().num_heads, ref.architecture().num_heads);
    EXPECT_EQ(ck.architecture().num_kv_heads, ref.architecture().num_kv_heads);
    EXPECT_EQ(ck.architecture().vocab_size, ref.architecture().vocab_size);
    ASSERT_EQ(ck.tensors().size(), ref.tensors().size());
    for (const auto& t : ck.tensors()) {
      auto it = by_role.find(role_name(t.role));
      ASSERT_NE(it, by_role.end()) << t.name << " has role " << role_name(t.role) << " absent from the original";
      const TensorInfo& o = *it->second;
      ASSERT_EQ(t.shape, o.shape) << t.name;
      std::vector<float> a = ref.read_f32(o), b = ck.read_f32(t);
      double amax = 0, diff_max = 0, diff2 = 0, a2 = 0;
      for (size_t k = 0; k < a.size(); ++k) {
        amax = std::max(amax, std::fabs(double(a[k])));
        double d = double(a[k]) - double(b[k]);
        diff_max = std::max(diff_max, std::fabs(d));
        diff2 += d * d;
        a2 += double(a[k]) * a[k];
      }
      if (ck.format() == Format::GGUF && (t.role.kind == RoleKind::AttnQ || t.role.kind == RoleKind::AttnK)) {
        // The permutation is real: read in stored order, the rows disagree.
        EXPECT_GT(t.unpermute_heads, 0) << t.name;
        TensorInfo stored = t;
        stored.unpermute_heads = 0;
        std::vector<float> c = ck.read_f32(stored);
        double e2 = 0;
        for (size_t k = 0; k < a.size(); ++k) e2 += (double(a[k]) - c[k]) * (double(a[k]) - c[k]);
        EXPECT_GT(std::sqrt(e2 / a2), 0.5) << t.name;
      }
      if (ex.tolerance == 0) {
        EXPECT_EQ(a, b) << t.name;
      } else {
        EXPECT_LE(diff_max, ex.tolerance * amax) << t.name;
        EXPECT_LE(std::sqrt(diff2 / std::max(a2, 1e-30)), ex.max_rel_rms) << t.name;
      }
    }
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

// A file cut short after it was opened gives an error naming it, not SIGBUS.
TEST(Checkpoint, FileTruncatedAfterOpenIsAnError) {
  TempDir dir;
  std::vector<float> v(4096, 1.5f);
  std::vector<uint8_t> bytes(reinterpret_cast<const uint8_t*>(v.data()),
                             reinterpret_cast<const uint8_t*>(v.data()) + v.size() * 4);
  write_st(dir.file("m.safetensors"), {{"w", "F32", {64, 64}, bytes}});
  Checkpoint ck = Checkpoint::open(dir.file("m.safetensors"));
  EXPECT_EQ(ck.read_f32(*ck.find("w"))[100], 1.5f);
  fs::resize_file(dir.file("m.safetensors"), 1000);
  try {
    ck.read_f32(*ck.find("w"));
    FAIL() << "read past the end of a truncated file";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("m.safetensors"), std::string::npos) << e.what();
  }
}
