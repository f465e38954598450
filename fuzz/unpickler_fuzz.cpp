// Fuzz target: the restricted unpickler on untrusted bytes (a torch.save
// data.pkl). It must refuse cleanly, never execute, crash, hang or leak.
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

#include "core/error.h"
#include "weights/pytorch.h"

using namespace kaival::weights;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  UnpickleLimits limits;  // smaller than the defaults so mutations stay fast
  limits.max_stack = 1u << 14;
  limits.max_memo = 1u << 14;
  limits.max_objects = 1u << 16;
  try {
    std::set<std::string> names;
    for (const PickledTensor& t : unpickle_state_dict({data, size}, "fuzz.pkl", limits)) {
      if (!names.insert(t.name).second) std::abort();  // tensor names are unique by contract
      if (t.storage_numel < 0) std::abort();           // negative sizes are refused
    }
  } catch (const kaival::Error&) {
  }
  return 0;
}
