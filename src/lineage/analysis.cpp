#include "lineage/analysis.h"

#include <algorithm>
#include <cmath>
#include <future>
#include <map>
#include <numeric>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "lineage/activations.h"
#include "lineage/extract.h"
#include "lineage/stats.h"

namespace kaival::lineage {
namespace {

using nlohmann::json;

constexpr const char* kCombination =
    "Holm over the deciding components (valid under any dependence); pair p = smallest Holm-adjusted p "
    "(Bonferroni on the minimum)";

double log10_count(size_t n) { return std::log10(static_cast<double>(std::max<size_t>(n, 1))); }

json config_evidence(const weights::Architecture& a, const weights::Architecture& b) {
  json fields = json::object();
  bool same = true;
  auto cmp = [&](const char* name, auto x, auto y) {
    fields[name] = {x, y};
    if (!(x == y)) same = false;
  };
  cmp("family", a.family, b.family);
  cmp("hidden_size", a.hidden_size, b.hidden_size);
  cmp("num_layers", a.num_layers, b.num_layers);
  cmp("num_heads", a.num_heads, b.num_heads);
  cmp("num_kv_heads", a.num_kv_heads, b.num_kv_heads);
  cmp("head_dim", a.head_dim, b.head_dim);
  cmp("intermediate_size", a.intermediate_size, b.intermediate_size);
  cmp("vocab_size", a.vocab_size, b.vocab_size);
  cmp("num_experts", a.num_experts, b.num_experts);
  cmp("rope_theta", a.rope.theta, b.rope.theta);
  cmp("norm_type", a.norm_type, b.norm_type);
  cmp("tied_embeddings", a.tied_embeddings, b.tied_embeddings);
  cmp("vision_tower", a.vision.has_value(), b.vision.has_value());
  cmp("audio_tower", a.audio.has_value(), b.audio.has_value());
  return {{"same_dims", same}, {"fields", fields},
          {"note", "configuration is evidence only: the same architecture does not imply the same weights"}};
}

// Combine a component's tests: Bonferroni over the tests (valid whatever
// their dependence), plus a selection factor (log10) when a layer was chosen
// among several candidates.
void finish_component(ComponentResult& c, double selection_log10 = 0.0) {
  if (c.tests.empty()) {
    c.verdict = "not_comparable";
    if (c.reason.empty()) c.reason = "no test applies";
    return;
  }
  std::vector<double> ps;
  std::vector<std::string> names;
  size_t best = c.tests.size();
  for (size_t i = 0; i < c.tests.size(); ++i) {
    if (!c.tests[i].decides) continue;
    ps.push_back(c.tests[i].log10p);
    names.push_back(c.tests[i].method + (c.tests[i].basis.empty() ? "" : "/" + c.tests[i].basis));
    if (best == c.tests.size() || c.tests[i].log10p < c.tests[best].log10p) best = i;
  }
  if (ps.empty()) {
    c.verdict = "not_comparable";
    c.reason = "only evidence-only tests apply";
    return;
  }
  c.log10p = std::min(0.0, bonferroni_min(ps) + selection_log10);
  c.method = ps.size() == 1 ? names[0] : fmt::format("min over [{}] x{} (Bonferroni)", fmt::join(names, ", "), ps.size());
  if (selection_log10 > 0) c.method += fmt::format(", x{:.0f} for choosing the layer", std::pow(10.0, selection_log10));
  c.statistic = c.tests[best].statistic;
  c.statistic_name = c.tests[best].statistic_name;
  c.verdict = "independent";  // until corrected
}

double cosine(const std::vector<float>& x, const std::vector<float>& y, bool centre) {
  size_t n = std::min(x.size(), y.size());
  if (n == 0) return 0.0;
  double mx = 0, my = 0;
  if (centre) {
    for (size_t i = 0; i < n; ++i) mx += x[i], my += y[i];
    mx /= n;
    my /= n;
  }
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    double a = x[i] - mx, b = y[i] - my;
    sxy += a * b;
    sxx += a * a;
    syy += b * b;
  }
  return (sxx > 0 && syy > 0) ? sxy / std::sqrt(sxx * syy) : 0.0;
}

// Unit-row views of one component, optionally mapped into A's basis by R and
// restricted to residual columns `cols`. Views already in the wanted form are
// referenced, not copied.
struct Projected {
  std::vector<MatF> owned;
  std::vector<const MatF*> ptr;
  const MatF& operator[](size_t i) const {
    static const MatF kEmpty;
    return ptr[i] ? *ptr[i] : kEmpty;
  }
};

Projected project(const std::vector<const MatF*>& views, const MatD* r, const std::vector<int64_t>& cols) {
  Projected out;
  out.owned.reserve(views.size());
  MatF rst;  // R restricted to the columns, transposed: [cols, d_B]
  if (r) {
    rst.resize(static_cast<int64_t>(cols.size()), r->rows());
    for (size_t c = 0; c < cols.size(); ++c)
      for (int64_t k = 0; k < r->rows(); ++k) rst(static_cast<int64_t>(c), k) = static_cast<float>((*r)(k, cols[c]));
  }
  for (const MatF* v : views) {
    if (!v || v->size() == 0) {
      out.ptr.push_back(nullptr);
      continue;
    }
    if (r) {
      if (v->cols() != rst.cols()) {
        out.ptr.push_back(nullptr);
        continue;
      }
      out.owned.push_back(mul_abt(*v, rst));
      out.ptr.push_back(&out.owned.back());
      continue;
    }
    bool identity = static_cast<int64_t>(cols.size()) == v->cols();
    for (size_t c = 0; identity && c < cols.size(); ++c) identity = cols[c] == static_cast<int64_t>(c);
    if (identity) {
      out.ptr.push_back(v);
      continue;
    }
    bool ok = true;
    for (auto c : cols) ok = ok && c < v->cols();
    if (!ok) {
      out.ptr.push_back(nullptr);
      continue;
    }
    MatF m(v->rows(), static_cast<int64_t>(cols.size()));
    for (int64_t row = 0; row < v->rows(); ++row) {
      const float* src = v->row(row).data();
      float* dst = m.row(row).data();
      for (size_t c = 0; c < cols.size(); ++c) dst[c] = src[cols[c]];
    }
    out.owned.push_back(std::move(m));
    out.ptr.push_back(&out.owned.back());
  }
  return out;
}

MatD gram_of(const Projected& views) {
  MatD k;
  for (size_t i = 0; i < views.ptr.size(); ++i) {
    const MatF& v = views[i];
    if (v.size() == 0) continue;
    MatF vt = v.transpose();
    MatD g = mul_abt(vt, vt).cast<double>();
    if (k.size() == 0)
      k = g;
    else if (k.rows() == g.rows())
      k += g;
  }
  return k;
}

// Sum of the O columns (rows of O^T) that read each v row: [kv * hd, d].
MatF o_by_v(const UnitViews& v) {
  if (v.o_t.size() == 0 || v.head_dim <= 0 || v.n_kv_heads <= 0) return {};
  int64_t group = std::max<int64_t>(1, v.n_heads / v.n_kv_heads);
  MatF out = MatF::Zero(v.n_kv_heads * v.head_dim, v.o_t.cols());
  for (int64_t r = 0; r < v.o_t.rows(); ++r) {
    int64_t h = r / v.head_dim, i = r % v.head_dim;
    int64_t g = h / group;
    if (g < v.n_kv_heads) out.row(g * v.head_dim + i) += v.o_t.row(r);
  }
  return out;
}

struct Basis {
  std::optional<MatD> r;  // B -> A map for the aligned basis (d_B x d_A)
  bool native_same_width = false;
};

// `restricted`: the views already hold only the sampled residual columns
// (native basis only).
void add_matrix_tests(ComponentResult& c, const std::string& kind, const UnitViews& va, const UnitViews& vb,
                      const Basis& basis, int64_t d_a, bool restricted, const Options& opt) {
  std::vector<int64_t> cols = spaced_subset(d_a, opt.max_coords);
  if (restricted) std::iota(cols.begin(), cols.end(), 0);
  auto run = [&](const std::string& basis_name, const MatD* r) {
    std::vector<const MatF*> la, lb;
    if (kind == "attn")
      la = {&va.q, &va.k, &va.v, &va.o_t}, lb = {&vb.q, &vb.k, &vb.v, &vb.o_t};
    else
      la = {&va.gate, &va.up, &va.down_t}, lb = {&vb.gate, &vb.up, &vb.down_t};
    Projected pa = project(la, nullptr, cols), pb = project(lb, r, cols);
    std::vector<Validation> vals;
    const MatF *xa = nullptr, *xb = nullptr;
    MatF oa, ob;
    Projected po, pob;
    std::optional<TestOutcome> um;
    if (kind == "attn") {
      // V rows matched, validated on the O columns that read them (summed
      // over the query heads of a KV group). Q/K rows are not used: RoPE gives
      // their positions within a head a frequency identity shared by all
      // models, so their ranks are not exchangeable under independence.
      bool unpacked = !va.packed_attn && !vb.packed_attn && va.head_dim > 0 && vb.head_dim > 0;
      if (unpacked && pa[2].size() && pb[2].size()) {
        oa = o_by_v(va);
        ob = o_by_v(vb);
        if (oa.size() && ob.size()) {
          po = project({&oa}, nullptr, cols);
          pob = project({&ob}, r, cols);
          um = unit_match(pa[2], pb[2], {Validation{&po[0], &pob[0], {}, {}}}, opt.max_units);
          if (um) um->statistic_name = "mean-rank z of V-row matches validated on O columns";
        }
      }
    } else {
      xa = &pa[0];
      xb = &pb[0];
      if (xa->size() && xb->size()) {
        if (pa[1].size() && pb[1].size()) vals.push_back({&pa[1], &pb[1], {}, {}});
        if (pa[2].size() && pb[2].size()) vals.push_back({&pa[2], &pb[2], {}, {}});
        um = unit_match(*xa, *xb, vals, opt.max_units);
      }
    }
    if (um) {
      um->basis = basis_name;
      if (r) use_confirmed_fraction(*um, opt.convergence_allowance);
      c.tests.push_back(*um);
    }
    if (r) {
      MatD ka = gram_of(pa), kb = gram_of(pb);
      if (ka.size() && kb.size() && ka.rows() == kb.rows()) {
        TestOutcome g = gram_cka(ka, kb);
        g.basis = basis_name;
        // Evidence only: after alignment through the embeddings, unrelated
        // models trained on similar data share Gram structure (convergent
        // learning), so this p-value is not calibrated for a decision.
        g.decides = false;
        c.tests.push_back(g);
      }
    }
  };
  if (basis.native_same_width) run("native", nullptr);
  if (basis.r) run("aligned", &*basis.r);
}

std::vector<int64_t> sampled(const std::vector<int64_t>& v, const std::vector<int64_t>& idx) {
  std::vector<int64_t> out;
  for (auto i : idx) out.push_back(v[static_cast<size_t>(i)]);
  return out;
}

MatF centered(const MatF& m) {
  MatF c = m;
  c.rowwise() -= c.colwise().mean();
  return c;
}

}  // namespace

Prepared prepare(const std::string& path, const Options& opt) {
  Prepared p;
  p.label = path;
  if (opt.progress) opt.progress(fmt::format("opening {}", path));
  p.model = Model::open(path);
  p.features = compute_global_features(*p.model, opt.progress);
  return p;
}

PairResult analyze_pair(const Prepared& pa, const Prepared& pb, const Options& opt) {
  const Model& a = *pa.model;
  const Model& b = *pb.model;
  PairResult res;
  res.a = pa.label;
  res.b = pb.label;
  res.config = config_evidence(a.arch(), b.arch());
  for (auto& n : a.notes()) res.notes.push_back(pa.label + ": " + n);
  for (auto& n : b.notes()) res.notes.push_back(pb.label + ": " + n);
  const int64_t da = a.hidden(), db = b.hidden();
  auto progress = [&](const std::string& s) {
    if (opt.progress) opt.progress(s);
  };

  // ---- vocabulary alignment -------------------------------------------------
  TokenPairs tp;
  bool have_pairs = false;
  if (a.vocab() && b.vocab()) {
    tp = align_vocabularies(*a.vocab(), *b.vocab());
    have_pairs = tp.shared > 0;
  }
  res.tokenizer = tokenizer_evidence(a.vocab(), b.vocab(), (a.vocab() && b.vocab()) ? &tp : nullptr);
  if (!(a.vocab() && b.vocab()) && a.embedding() && b.embedding() &&
      a.embedding()->rows() == b.embedding()->rows()) {
    // No tokenizer to align by: rows are compared by id (stated in the report).
    tp.a.resize(static_cast<size_t>(a.embedding()->rows()));
    std::iota(tp.a.begin(), tp.a.end(), 0);
    tp.b = tp.a;
    tp.shared = static_cast<int64_t>(tp.a.size());
    have_pairs = true;
    res.notes.push_back("a tokenizer is missing: embedding rows compared by token id");
  }

  // Keep pairs whose rows exist in both matrices.
  auto rows_ok = [](const TensorInfo* t, int64_t r) { return t && r >= 0 && r < t->rows(); };
  std::vector<int64_t> ta, tb;
  if (have_pairs && a.embedding() && b.embedding()) {
    for (size_t i = 0; i < tp.a.size(); ++i)
      if (rows_ok(a.embedding(), tp.a[i]) && rows_ok(b.embedding(), tp.b[i])) ta.push_back(tp.a[i]), tb.push_back(tp.b[i]);
    auto idx = spaced_subset(static_cast<int64_t>(ta.size()), opt.max_tokens);
    ta = sampled(ta, idx);
    tb = sampled(tb, idx);
  }

  std::vector<ComponentResult> comps;
  // ---- embedding --------------------------------------------------------------
  ComponentResult emb;
  emb.name = emb.kind = "embedding";
  MatF ea, eb;
  const int64_t min_tokens = 16;
  if (!a.embedding() || !b.embedding()) {
    emb.reason = "embedding missing in one model";
  } else if (static_cast<int64_t>(ta.size()) < min_tokens) {
    emb.reason = fmt::format("only {} shared tokens", ta.size());
  } else {
    progress("comparing embeddings");
    ea = a.read_rows(*a.embedding(), ta);
    eb = b.read_rows(*b.embedding(), tb);
    if (ea.cols() != da || eb.cols() != db) {
      emb.reason = "embedding width differs from the hidden size";
    } else {
      emb.tests.push_back(coord_match_columns(ea, eb, opt.max_coords));
      emb.tests.back().detail["shared_tokens_used"] = static_cast<int64_t>(ta.size());
    }
  }
  finish_component(emb);
  comps.push_back(emb);

  // ---- head ---------------------------------------------------------------------
  ComponentResult head;
  head.name = head.kind = "head";
  if (!a.head() || !b.head()) {
    head.reason = (a.arch().tied_embeddings || b.arch().tied_embeddings) ? "tied to the embedding in at least one model"
                                                                         : "head missing in one model";
  } else if (static_cast<int64_t>(ta.size()) < min_tokens) {
    head.reason = fmt::format("only {} shared tokens", ta.size());
  } else if (a.head()->rows() <= *std::max_element(ta.begin(), ta.end()) ||
             b.head()->rows() <= *std::max_element(tb.begin(), tb.end())) {
    head.reason = "head has fewer rows than the embedding";
  } else {
    progress("comparing heads");
    MatF ha = a.read_rows(*a.head(), ta), hb = b.read_rows(*b.head(), tb);
    if (a.final_norm() && b.final_norm()) {
      auto ga = a.read_gain(*a.final_norm()), gb = b.read_gain(*b.final_norm());
      if (static_cast<int64_t>(ga.size()) == ha.cols())
        for (int64_t j = 0; j < ha.cols(); ++j) ha.col(j) *= ga[static_cast<size_t>(j)];
      if (static_cast<int64_t>(gb.size()) == hb.cols())
        for (int64_t j = 0; j < hb.cols(); ++j) hb.col(j) *= gb[static_cast<size_t>(j)];
    }
    head.tests.push_back(coord_match_columns(ha, hb, opt.max_coords));
  }
  finish_component(head);
  comps.push_back(head);

  // ---- basis ----------------------------------------------------------------------
  Basis basis;
  basis.native_same_width = da == db;
  bool native_match = emb.verdict != "not_comparable" && emb.log10p <= std::log10(opt.alpha);
  res.alignment = {{"native_embedding_match", native_match}};
  if (opt.aligned_tests && !native_match && ea.size() && ea.rows() >= std::max(da, db) + 8) {
    progress("aligning residual bases through the embeddings");
    MatF ca = centered(ea), cb = centered(eb);
    MatD r = whitened_procrustes(ca.cast<double>(), cb.cast<double>());
    MatD fit = cb.cast<double>() * r;
    double resid = (ca.cast<double>() - fit).norm() / std::max(1e-30, ca.cast<double>().norm());
    basis.r = r;
    res.alignment["aligned"] = {
        {"method", "whitened orthogonal Procrustes (CCA-style) on centred embeddings of shared tokens"},
        {"tokens", ea.rows()},
        {"relative_residual", resid},
        {"note", "tests in the aligned basis use a normal approximation; independently trained models "
                 "with similar embeddings can align partly"}};
  } else if (!native_match) {
    res.alignment["aligned"] = nullptr;
    res.alignment["note"] = "no aligned tests (embeddings not comparable or too few shared tokens)";
  }

  // ---- layers ---------------------------------------------------------------------------------
  const auto& la = a.layers();
  const auto& lb = b.layers();
  struct LayerPair {
    size_t ia, ib;
    double selection_log10;
  };
  std::vector<LayerPair> lmap;
  // Views are needed for the unit / Gram tests; restricted to the sampled
  // residual columns when only the native basis is used.
  const bool need_views = basis.native_same_width || basis.r.has_value();
  const bool restricted = !basis.r.has_value();
  const std::vector<int64_t> view_cols = restricted ? spaced_subset(da, opt.max_coords) : std::vector<int64_t>{};
  // Two buffers per model, reused layer after layer: while the tests run on
  // one layer pair, the next pair is read (each model on its own thread).
  LayerData bufs_a[2], bufs_b[2];
  struct Pending {
    std::future<void> a, b;
    void wait() {
      if (a.valid()) a.get();
      if (b.valid()) b.get();
    }
  };
  auto start = [&](size_t ia, size_t ib, int slot) {
    Pending p;
    p.a = std::async(std::launch::async,
                     [&, ia, slot] { extract_layer_into(a, la[ia], need_views, view_cols, bufs_a[slot]); });
    p.b = std::async(std::launch::async,
                     [&, ib, slot] { extract_layer_into(b, lb[ib], need_views, view_cols, bufs_b[slot]); });
    return p;
  };

  if (la.size() == lb.size()) {
    for (size_t i = 0; i < la.size(); ++i) lmap.push_back({i, i, 0.0});
  } else if (!la.empty() && !lb.empty()) {
    // Depths differ (a depth-pruned or grown model): every layer of the
    // shallower model is assigned a distinct layer of the deeper one by a
    // linear assignment on the coordinate-match p-values; each chosen p is
    // then multiplied by the number of candidates it was chosen from.
    progress("mapping layers across depths");
    auto all_features = [&](const Model& m) {
      std::vector<LayerFeatures> out;
      for (const auto& L : m.layers()) out.push_back(extract_layer(m, L, false, {}).features);
      return out;
    };
    auto fut = std::async(std::launch::async, [&] { return all_features(a); });
    std::vector<LayerFeatures> fbl = all_features(b);
    std::vector<LayerFeatures> fa = fut.get();
    MatD score(static_cast<int64_t>(la.size()), static_cast<int64_t>(lb.size()));
    for (size_t i = 0; i < la.size(); ++i)
      for (size_t j = 0; j < lb.size(); ++j) {
        double lp = 0;
        for (int k = 0; k < 2; ++k) {
          const CoordFeatures& x = k == 0 ? fa[i].mlp : fa[i].attn;
          const CoordFeatures& y = k == 0 ? fbl[j].mlp : fbl[j].attn;
          if (x.empty() || y.empty() || x.columns.size() != y.columns.size()) continue;
          lp = std::min(lp, coord_match_features(x.matrix(), y.matrix()).log10p);
        }
        score(static_cast<int64_t>(i), static_cast<int64_t>(j)) = lp;
      }
    const bool a_short = la.size() <= lb.size();
    MatD cost = a_short ? MatD(score) : MatD(score.transpose());
    std::vector<int64_t> assign = linear_assignment(cost);
    const double sel = log10_count(a_short ? lb.size() : la.size());
    json map = json::array();
    for (size_t s_ = 0; s_ < assign.size(); ++s_) {
      size_t ia = a_short ? s_ : static_cast<size_t>(assign[s_]);
      size_t ib = a_short ? static_cast<size_t>(assign[s_]) : s_;
      lmap.push_back({ia, ib, sel});
      map.push_back({{"a", la[ia].index}, {"b", lb[ib].index},
                     {"log10_p_coord", score(static_cast<int64_t>(ia), static_cast<int64_t>(ib))}});
    }
    std::sort(lmap.begin(), lmap.end(), [](const LayerPair& x, const LayerPair& y) { return x.ia < y.ia; });
    res.layer_map = {{"method", "each layer of the shallower model assigned a distinct layer of the deeper one "
                                "(linear assignment on coordinate-match p-values); p-values multiplied by the "
                                "number of candidate layers"},
                     {"pairs", map}};
  }

  // A layer of the deeper model A with no counterpart in B is listed as not
  // comparable (never silently dropped); B's unmatched layers are named in
  // layer_map.
  auto unmatched_a = [&](size_t ia) {
    for (const char* kind : {"attn", "mlp", "norm"}) {
      ComponentResult c;
      c.name = fmt::format("layer.{}.{}", la[ia].index, kind);
      c.kind = kind;
      c.layer = la[ia].index;
      c.decides = std::string(kind) != "norm";
      c.reason = fmt::format("no counterpart: {} layers against {}, this one is not in the layer map", la.size(),
                             lb.size());
      finish_component(c);
      comps.push_back(std::move(c));
    }
  };
  if (!lmap.empty() && la.size() != lb.size()) {
    std::vector<bool> used_b(lb.size(), false);
    for (const auto& p : lmap) used_b[p.ib] = true;
    json rest = json::array();
    for (size_t j = 0; j < lb.size(); ++j)
      if (!used_b[j]) rest.push_back(lb[j].index);
    res.layer_map["unmatched_b"] = rest;
  }
  size_t next_a = 0;  // layers of A below this index are listed
  Pending next;
  if (!lmap.empty()) next = start(lmap[0].ia, lmap[0].ib, 0);
  for (size_t k = 0; k < lmap.size(); ++k) {
    const LayerPair& lp = lmap[k];
    for (; next_a < lp.ia; ++next_a) unmatched_a(next_a);
    next_a = lp.ia + 1;
    const LayerRefs& A = la[lp.ia];
    const LayerRefs& B = lb[lp.ib];
    progress(fmt::format("layer {} vs {}", A.index, B.index));
    const int slot = static_cast<int>(k % 2);
    next.wait();
    if (k + 1 < lmap.size()) next = start(lmap[k + 1].ia, lmap[k + 1].ib, 1 - slot);
    const LayerData& xa_ = bufs_a[slot];
    const LayerData& xb_ = bufs_b[slot];
    const LayerFeatures& fa = xa_.features;
    const LayerFeatures& fb = xb_.features;
    const std::string prefix = fmt::format("layer.{}", A.index);
    for (const std::string kind : {"attn", "mlp"}) {
      ComponentResult c;
      c.name = prefix + "." + kind;
      c.kind = kind;
      c.layer = A.index;
      c.layer_b = B.index;
      const CoordFeatures& x = kind == "attn" ? fa.attn : fa.mlp;
      const CoordFeatures& y = kind == "attn" ? fb.attn : fb.mlp;
      bool has_a = kind == "attn" ? A.has_attn() : A.has_mlp();
      bool has_b = kind == "attn" ? B.has_attn() : B.has_mlp();
      if (!has_a || !has_b) {
        c.reason = fmt::format("{} missing in one model", kind);
      } else if (x.empty() || y.empty()) {
        c.reason = "weights could not be decoded";
      } else if (x.columns.size() != y.columns.size()) {
        c.reason = "different sets of matrices (packed vs separate, MLA vs MHA)";
      } else {
        c.tests.push_back(coord_match_features(x.matrix(), y.matrix()));
        if (need_views) {
          const UnitViews& va = kind == "attn" ? xa_.attn : xa_.mlp;
          const UnitViews& vb = kind == "attn" ? xb_.attn : xb_.mlp;
          add_matrix_tests(c, kind, va, vb, basis, da, restricted, opt);
        }
      }
      finish_component(c, lp.selection_log10);
      comps.push_back(std::move(c));
    }
    // Norm gains: exact coordinate test on the gains, never deciding.
    ComponentResult n;
    n.name = prefix + ".norm";
    n.kind = "norm";
    n.layer = A.index;
    n.layer_b = B.index;
    n.decides = false;
    if (fa.norm.empty() || fb.norm.empty() || fa.norm.columns.size() != fb.norm.columns.size()) {
      n.reason = "norm gains missing or folded away in one model";
    } else {
      n.tests.push_back(coord_match_features(fa.norm.matrix(), fb.norm.matrix()));
      std::vector<float> ga = fa.attn_gain, gb = fb.attn_gain;
      ga.insert(ga.end(), fa.mlp_gain.begin(), fa.mlp_gain.end());
      gb.insert(gb.end(), fb.mlp_gain.begin(), fb.mlp_gain.end());
      if (ga.size() == gb.size()) {
        n.caveats["raw_cosine"] = cosine(ga, gb, false);
        n.caveats["centred_cosine"] = cosine(ga, gb, true);
        n.caveats["note"] = "raw cosine of norm gains is near 1 for unrelated models (gains sit near 1); not evidence";
      }
    }
    finish_component(n, lp.selection_log10);
    comps.push_back(std::move(n));
  }
  if (!lmap.empty())
    for (; next_a < la.size(); ++next_a) unmatched_a(next_a);

  // ---- activation evidence (never decides) -------------------------------------------------------
  if (opt.activations && !tp.a.empty()) {
    progress("activation evidence");
    std::vector<std::pair<int, int>> lp;
    for (const auto& p : lmap) lp.push_back({static_cast<int>(p.ia), static_cast<int>(p.ib)});
    res.activations = activation_evidence(a, b, tp, lp);
  }

  // ---- final norm --------------------------------------------------------------------------
  {
    ComponentResult n;
    n.name = n.kind = "final_norm";
    n.decides = false;
    const auto& ga = pa.features.final_norm;
    const auto& gb = pb.features.final_norm;
    if (ga.empty() || gb.empty()) {
      n.reason = "final norm missing in one model";
    } else {
      CoordFeatures x, y;
      x.add_values(ga);
      y.add_values(gb);
      n.tests.push_back(coord_match_features(x.matrix(), y.matrix()));
      if (ga.size() == gb.size()) {
        n.caveats["raw_cosine"] = cosine(ga, gb, false);
        n.caveats["centred_cosine"] = cosine(ga, gb, true);
      }
    }
    finish_component(n);
    comps.push_back(std::move(n));
  }

  // ---- encoder towers ---------------------------------------------------------------------------
  auto tower = [&](const char* name, const TowerRefs& ra, const TowerRefs& rb, const TowerFeatures& ta_,
                   const TowerFeatures& tb_) {
    if (ra.empty() && rb.empty()) return;
    ComponentResult c;
    c.name = c.kind = name;
    if (ra.empty() || rb.empty()) {
      c.reason = fmt::format("{} present in one model only", name);
      finish_component(c);
      comps.push_back(std::move(c));
      return;
    }
    progress(fmt::format("comparing {}", name));
    json blocks = json::array();
    std::vector<double> ps;
    for (auto& [idx, fx] : ta_.blocks) {
      auto it = tb_.blocks.find(idx);
      if (it == tb_.blocks.end() || it->second.columns.size() != fx.columns.size()) continue;
      TestOutcome t = coord_match_features(fx.matrix(), it->second.matrix());
      ps.push_back(t.log10p);
      blocks.push_back({{"block", idx}, {"log10_p", t.log10p}, {"statistic", t.statistic}});
    }
    if (ps.empty()) {
      c.reason = "no encoder blocks with the same structure";
    } else {
      TestOutcome t;
      t.method = "coord-match";
      t.basis = "native";
      t.exact = true;
      t.log10p = bonferroni_min(ps);
      double best = 0;
      for (auto& bj : blocks) best = std::max(best, bj["statistic"].get<double>());
      t.statistic = best;
      t.statistic_name = "largest fraction of coordinates matched to themselves in a block";
      t.detail = {{"blocks", blocks}, {"combination", "Bonferroni over blocks"}};
      c.tests.push_back(t);
    }
    finish_component(c);
    comps.push_back(std::move(c));
  };
  tower("vision_encoder", a.vision(), b.vision(), pa.features.vision, pb.features.vision);
  tower("audio_encoder", a.audio(), b.audio(), pa.features.audio, pb.features.audio);

  // ---- correction and verdicts --------------------------------------------------------------------
  std::vector<size_t> deciding;
  std::vector<double> ps;
  for (size_t i = 0; i < comps.size(); ++i) {
    if (comps[i].verdict == "not_comparable") continue;
    if (comps[i].decides) {
      deciding.push_back(i);
      ps.push_back(comps[i].log10p);
    }
  }
  std::vector<double> adj = holm_adjust(ps);
  const double la_ = std::log10(opt.alpha);
  for (size_t k = 0; k < deciding.size(); ++k) {
    ComponentResult& c = comps[deciding[k]];
    c.log10p_adj = adj[k];
    c.verdict = adj[k] <= la_ ? "derived" : "independent";
    if (c.verdict == "derived") res.matched.push_back(c.name);
  }
  // Non-deciding components (norms) are corrected within their own family.
  {
    std::vector<size_t> idx;
    std::vector<double> p2;
    for (size_t i = 0; i < comps.size(); ++i)
      if (!comps[i].decides && comps[i].verdict != "not_comparable") idx.push_back(i), p2.push_back(comps[i].log10p);
    auto adj2 = holm_adjust(p2);
    for (size_t k = 0; k < idx.size(); ++k) {
      comps[idx[k]].log10p_adj = adj2[k];
      comps[idx[k]].verdict = adj2[k] <= la_ ? "derived" : "independent";
    }
  }
  res.log10p = ps.empty() ? 0.0 : *std::min_element(adj.begin(), adj.end());
  res.combination = kCombination;

  // A layer matches when its attention or its MLP does.
  std::map<int, std::pair<bool, bool>> layer_state;  // comparable, matched
  for (auto& c : comps) {
    if ((c.kind == "attn" || c.kind == "mlp") && c.verdict != "not_comparable") {
      auto& st = layer_state[c.layer];
      st.first = true;
      st.second = st.second || c.verdict == "derived";
    }
  }
  int64_t layer_total = 0, layer_match = 0;
  for (auto& [l, st] : layer_state) {
    layer_total += st.first;
    layer_match += st.second;
  }
  if (layer_total > 0 && static_cast<double>(layer_match) >= opt.layer_fraction * static_cast<double>(layer_total))
    res.verdict = "derived";
  else if (!res.matched.empty())
    res.verdict = "partial";
  else
    res.verdict = "independent";
  if (ps.empty()) res.notes.push_back("no component could be compared");
  res.components = std::move(comps);
  return res;
}

MultiResult analyze_all(const std::vector<Prepared>& models, const std::vector<Prepared>& controls,
                        const Options& opt) {
  MultiResult out;
  for (size_t i = 0; i < models.size(); ++i)
    for (size_t j = i + 1; j < models.size(); ++j) out.pairs.push_back(analyze_pair(models[i], models[j], opt));
  for (const auto& m : models)
    for (const auto& c : controls) out.control_pairs.push_back(analyze_pair(m, c, opt));

  // Families: connected components over "derived" pairs.
  std::vector<size_t> parent(models.size());
  std::iota(parent.begin(), parent.end(), 0);
  std::function<size_t(size_t)> root = [&](size_t x) { return parent[x] == x ? x : parent[x] = root(parent[x]); };
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < models.size(); ++i) index[models[i].label] = i;
  for (const auto& p : out.pairs)
    if (p.verdict == "derived") parent[root(index[p.a])] = root(index[p.b]);
  std::map<size_t, std::vector<std::string>> groups;
  for (size_t i = 0; i < models.size(); ++i) groups[root(i)].push_back(models[i].label);
  for (auto& [r, g] : groups) out.families.push_back(g);

  // Control reference: per component kind and method, the smallest p seen
  // between a model and an unrelated control.
  json ref = json::object();
  for (const auto& p : out.control_pairs)
    for (const auto& c : p.components)
      for (const auto& t : c.tests) {
        std::string key = c.kind + "/" + t.method + "/" + t.basis;
        double v = -t.log10p;
        if (!ref.contains(key) || ref[key]["max_neg_log10_p"].get<double>() < v)
          ref[key] = {{"max_neg_log10_p", v}, {"statistic", t.statistic}};
      }
  out.control_reference = ref;
  return out;
}

}  // namespace kaival::lineage
