#pragma once
// Chat prompts: the model's own chat template (tokenizer_config.json
// `chat_template` or GGUF `tokenizer.chat_template`) rendered with the
// messages, as Hugging Face's apply_chat_template does.
#include <string>

#include <nlohmann/json.hpp>

namespace kaival::tokenizer {
class Tokenizer;
}

namespace kaival::engine {

// `messages`: array of {"role": ..., "content": ...}. Throws UnsupportedError
// when the model has no chat template or the template uses a construct the
// interpreter does not support (the message names it).
std::string render_chat(const tokenizer::Tokenizer& tok, const nlohmann::json& messages,
                        bool add_generation_prompt = true);

}  // namespace kaival::engine
