// PyTorch checkpoints: real torch.save outputs (tools/gen_pytorch_fixtures.py)
// compared with the values torch itself wrote to state_dict.json, and the
// restricted unpickler refusing anything but a state dict.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "weights/checkpoint.h"
#include "weights/pytorch.h"

using namespace kaival;
using namespace kaival::weights;
using namespace std::string_literals;

namespace {

const std::string kDir = std::string(KAIVAL_TESTDATA) + "/pytorch";

nlohmann::json expected_state_dict() {
  std::ifstream f(kDir + "/state_dict.json");
  return nlohmann::json::parse(f);
}

void expect_matches_torch(const Checkpoint& ck) {
  nlohmann::json want = expected_state_dict();
  ASSERT_EQ(ck.tensors().size(), want.size());
  int64_t params = 0;
  for (const auto& [name, w] : want.items()) {
    const TensorInfo* t = ck.find(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->type_name, w["dtype"].get<std::string>()) << name;
    EXPECT_EQ(t->shape, w["shape"].get<std::vector<int64_t>>()) << name;
    std::vector<float> got = ck.read_f32(*t);
    auto vals = w["values"].get<std::vector<double>>();
    ASSERT_EQ(got.size(), vals.size()) << name;
    for (size_t k = 0; k < got.size(); ++k)
      EXPECT_EQ(got[k], static_cast<float>(vals[k])) << name << "[" << k << "]";
    params += static_cast<int64_t>(vals.size());
  }
  EXPECT_EQ(ck.parameter_count(), params);
}

std::vector<uint8_t> raw(std::initializer_list<int> v) {
  std::vector<uint8_t> out;
  for (int b : v) out.push_back(static_cast<uint8_t>(b));
  return out;
}
// Pickles are written as std::string literals ("..."s) so that NUL bytes survive.
std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

template <typename E>
std::string refused(const std::vector<uint8_t>& pickle) {
  try {
    unpickle_state_dict(pickle, "test.pkl");
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find("test.pkl"), std::string::npos) << e.what();
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
    return "";
  }
  ADD_FAILURE() << "accepted a bad pickle";
  return "";
}

template <typename E>
std::string open_refused(const std::string& path) {
  try {
    Checkpoint::open(path);
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
    return "";
  }
  ADD_FAILURE() << "opened " << path;
  return "";
}

}  // namespace

TEST(PyTorch, StateDictMatchesTorch) {
  Checkpoint ck = Checkpoint::open(kDir + "/state_dict.bin");
  EXPECT_EQ(ck.format(), Format::PyTorch);
  EXPECT_EQ(format_name(ck.format()), "pytorch");
  expect_matches_torch(ck);
  // Views share their base's storage: same bytes, offset by 4 floats.
  const TensorInfo* base = ck.find("shared.base");
  const TensorInfo* view = ck.find("shared.view");
  EXPECT_EQ(view->offset, base->offset + 16);
  EXPECT_EQ(view->nbytes, 16u);
}

TEST(PyTorch, Protocol4PickleMatchesTorch) {
  // FRAME, SHORT_BINUNICODE, STACK_GLOBAL and MEMOIZE instead of protocol 2's opcodes.
  expect_matches_torch(Checkpoint::open(kDir + "/state_dict_p4.bin"));
}

TEST(PyTorch, ShardedMatchesTorch) {
  Checkpoint ck = Checkpoint::open(kDir + "/sharded");
  EXPECT_EQ(ck.files().size(), 2u);
  expect_matches_torch(ck);
  expect_matches_torch(Checkpoint::open(kDir + "/sharded/pytorch_model.bin.index.json"));
}

TEST(PyTorch, NestedDictsJoinKeysAndSkipNonTensors) {
  Checkpoint ck = Checkpoint::open(kDir + "/nested.bin");
  ASSERT_EQ(ck.tensors().size(), 1u);
  EXPECT_EQ(ck.tensors()[0].name, "model.w");
  EXPECT_EQ(ck.read_f32(ck.tensors()[0]), (std::vector<float>{1, 1}));
}

TEST(PyTorch, MaliciousGlobalsAreRefusedWithoutRunning) {
  auto msg = open_refused<UnsupportedError>(kDir + "/malicious_system.bin");
  EXPECT_NE(msg.find("posix.system"), std::string::npos) << msg;  // os.system pickles as posix.system
  msg = open_refused<UnsupportedError>(kDir + "/malicious_eval.bin");
  EXPECT_NE(msg.find("__builtin__.eval"), std::string::npos) << msg;  // protocol 2 spells builtins so
}

TEST(PyTorch, NonContiguousCompressedAndLegacyAreClearErrors) {
  auto msg = open_refused<UnsupportedError>(kDir + "/noncontiguous.bin");
  EXPECT_NE(msg.find("not contiguous"), std::string::npos) << msg;
  msg = open_refused<UnsupportedError>(kDir + "/compressed.bin");
  EXPECT_NE(msg.find("compressed"), std::string::npos) << msg;
  msg = open_refused<UnsupportedError>(kDir + "/legacy.bin");
  EXPECT_NE(msg.find("legacy"), std::string::npos) << msg;
}

// ---- the unpickler on hand-written pickles ----------------------------------

TEST(Unpickler, MinimalStateDict) {
  // {'w': _rebuild_tensor_v2(('storage', torch.HalfStorage, '0', 'cpu', 6), 2, (2, 2), (2, 1), False, OrderedDict())}
  std::vector<uint8_t> p = raw({0x80, 2, '}', '(', 'X', 1, 0, 0, 0, 'w'});
  auto global = [&](std::string_view mod, std::string_view name) {
    p.push_back('c');
    p.insert(p.end(), mod.begin(), mod.end());
    p.push_back('\n');
    p.insert(p.end(), name.begin(), name.end());
    p.push_back('\n');
  };
  auto str = [&](std::string_view s) {
    p.push_back('X');
    for (int k = 0; k < 4; ++k) p.push_back(static_cast<uint8_t>(s.size() >> (8 * k)));
    p.insert(p.end(), s.begin(), s.end());
  };
  global("torch._utils", "_rebuild_tensor_v2");
  p.push_back('(');
  p.push_back('(');
  str("storage");
  global("torch", "HalfStorage");
  str("0");
  str("cpu");
  p.insert(p.end(), {'K', 6, 't', 'Q'});                      // numel 6, TUPLE, BINPERSID
  p.insert(p.end(), {'K', 2, 'K', 2, 'K', 2, 0x86, 'K', 2, 'K', 1, 0x86, 0x89});
  global("collections", "OrderedDict");
  p.insert(p.end(), {')', 'R', 't', 'R', 'u', '.'});
  auto ts = unpickle_state_dict(p, "test.pkl");
  ASSERT_EQ(ts.size(), 1u);
  EXPECT_EQ(ts[0].name, "w");
  EXPECT_EQ(ts[0].dtype, DType::F16);
  EXPECT_EQ(ts[0].storage_type, "HalfStorage");
  EXPECT_EQ(ts[0].storage_key, "0");
  EXPECT_EQ(ts[0].storage_numel, 6);
  EXPECT_EQ(ts[0].storage_offset, 2);
  EXPECT_EQ(ts[0].shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(ts[0].stride, (std::vector<int64_t>{2, 1}));
}

TEST(Unpickler, RefusesGlobalsAndOpcodesOutsideStateDicts) {
  auto msg = refused<UnsupportedError>(bytes("\x80\x02" "cos\nsystem\n" "X\x02\x00\x00\x00id\x85R."s));
  EXPECT_NE(msg.find("os.system"), std::string::npos) << msg;
  msg = refused<UnsupportedError>(bytes("\x80\x04\x8c\x08" "builtins" "\x8c\x04" "eval\x93."));
  EXPECT_NE(msg.find("builtins.eval"), std::string::npos) << msg;
  refused<UnsupportedError>(bytes("ctorch\nload\n."));               // torch itself is not allowed
  refused<UnsupportedError>(bytes("ctorch._utils\n_rebuild_qtensor\n."));
  refused<UnsupportedError>(bytes("ctorch\nComplexFloatStorage\n."));
  refused<UnsupportedError>(bytes("\x80\x02}I1\n."));                 // INT (text) opcode
  refused<UnsupportedError>(bytes("\x80\x02}\x81."));                 // NEWOBJ
}

TEST(Unpickler, MalformedPicklesAreFormatErrors) {
  refused<FormatError>(bytes(""));                          // empty
  refused<FormatError>(bytes("\x80\x02}"));                  // no STOP
  refused<FormatError>(bytes("\x80\x02X\xff\xff\xff\x7f"));  // string longer than the input
  refused<FormatError>(bytes("\x80\x02h\x05."));             // memo miss
  refused<FormatError>(bytes("\x80\x02s."));                 // stack underflow
  refused<FormatError>(bytes("\x80\x02]K\x01K\x02s."));      // SETITEM on a list
  refused<FormatError>(bytes("\x80\x02K\x01."));             // not a dict
  refused<FormatError>(bytes("\x80\x02(K\x01K\x02u."));      // SETITEMS without a target
  refused<FormatError>(bytes("\x80\x02}(K\x01u."));          // odd SETITEMS
  refused<FormatError>(bytes("\x80\x02}K\x01)R."));          // REDUCE on an int
  refused<FormatError>(bytes("\x80\x02}K\x01Q."));           // persistent id that is not a tuple
  refused<FormatError>(bytes("\x80\x02}\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09."));  // LONG1 > 64 bits
  refused<FormatError>(bytes("\x80\x09}."));                 // unknown protocol
  refused<FormatError>(bytes("\x80\x02" "c" + std::string(1000, 'a')));  // unterminated GLOBAL
}

TEST(Unpickler, CyclesAndSharingAreBounded) {
  // d = {}; d['a'] = d  -> a cycle must be an error, not a hang or a leak.
  refused<FormatError>(bytes("\x80\x02}q\x00X\x01\x00\x00\x00" "ah\x00s."s));
  // A chain of dicts each holding the next twice explodes combinatorially if
  // walked naively; the walk is bounded.
  std::string p = "\x80\x02}q\x00"s;  // memo[0] = innermost dict
  for (int k = 0; k < 40; ++k)
    p += "}(X\x01\x00\x00\x00" "ah\x00X\x01\x00\x00\x00" "bh\x00uq\x00"s;  // {a: prev, b: prev}
  p += ".";
  UnpickleLimits limits;
  limits.max_depth = 64;
  limits.max_objects = 10000;
  try {
    unpickle_state_dict(bytes(p), "test.pkl", limits);
    FAIL() << "walked 2^40 dicts";
  } catch (const FormatError&) {
  }
  // Deep empty nesting within the depth limit is fine and yields no tensors.
  EXPECT_TRUE(unpickle_state_dict(bytes("\x80\x02}X\x01\x00\x00\x00" "a}s."s), "test.pkl").empty());
}

TEST(Unpickler, LimitsBoundStackAndMemo) {
  UnpickleLimits limits;
  limits.max_stack = 100;
  limits.max_memo = 10;
  std::string many_ints = "\x80\x02}";
  for (int k = 0; k < 200; ++k) many_ints += "K\x01";
  EXPECT_THROW(unpickle_state_dict(bytes(many_ints + "."), "test.pkl", limits), FormatError);
  std::string many_memo = "\x80\x02}";
  for (int k = 0; k < 20; ++k) many_memo += std::string("q") + static_cast<char>(k);
  EXPECT_THROW(unpickle_state_dict(bytes(many_memo + "."), "test.pkl", limits), FormatError);
}
