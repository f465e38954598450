// Fuzz target: template bytes -> parse -> render against a fixed chat context.
// Every failure must be a kaival::Error; bounds keep hostile inputs fast.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/jinja.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kaival;
  static const nlohmann::ordered_json context = nlohmann::ordered_json::parse(R"({
    "bos_token": "<s>", "eos_token": "</s>", "add_generation_prompt": true,
    "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "안녕 ③"},
                 {"role": "assistant", "content": "<think>x</think>y", "tool_calls": [
                   {"function": {"name": "f", "arguments": {"a": 1}}}]},
                 {"role": "tool", "content": "{}"}],
    "tools": [{"type": "function", "function": {"name": "f"}}]})");
  std::string_view text(reinterpret_cast<const char*>(data), size);
  jinja::Options opt;
  opt.max_output_bytes = 1 << 16;
  opt.max_steps = 20000;
  opt.max_call_depth = 16;
  try {
    auto t = jinja::Template::parse(text, "fuzz", opt);
    (void)t.render(context);
  } catch (const Error&) {
  }
  return 0;
}
