// Fuzz target: tokenizer.json loading (every model family through the same
// dispatch as Tokenizer::from_tokenizer_json), then encoding and decoding a
// few short strings. Any kaival::Error is an expected outcome; anything else
// (crash, sanitizer report, other exception, hang) is a bug.
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/factories.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using nlohmann::json;
  if (size > (1u << 20)) return 0;
  const char* text = reinterpret_cast<const char*>(data);
  const json tj = json::parse(text, text + size, nullptr, /*allow_exceptions=*/false);
  if (tj.is_discarded()) return 0;
  std::unique_ptr<kaival::tokenizer::Tokenizer> tok;
  try {
    tok = kaival::tokenizer::tokenizer_from_json(tj, json(), "fuzz/tokenizer.json");
  } catch (const kaival::Error&) {
    return 0;
  }
  const std::string_view tail(text + size / 2, size - size / 2);
  for (std::string_view s : {std::string_view("Hello  world! 안녕하세요 123 🦙\n\t<s></s>"),
                             std::string_view("\xff\xfe\xc3 a\0" "b", 7), tail.substr(0, 64)}) {
    for (bool special : {false, true}) {
      const auto ids = tok->encode(s, special, special);
      (void)tok->decode(ids, false);
      (void)tok->decode(ids, true);
      for (int32_t id : ids) (void)tok->token(id);
    }
  }
  (void)tok->vocab_size();
  return 0;
}
