#pragma once
// Chat prompts: the model's own chat template (tokenizer_config.json
// `chat_template` or GGUF `tokenizer.chat_template`) rendered with the
// messages by the Jinja subset interpreter (core/jinja.h), with the context
// Hugging Face's apply_chat_template gives it (messages,
// add_generation_prompt, bos_token, eos_token, ...). The rendered text already
// holds the special tokens, so encode it without adding BOS again.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kaival::tokenizer {
class Tokenizer;
}

namespace kaival::engine {

// Special-token strings a template may print; empty ones are left undefined.
struct ChatTokens {
  std::string bos, eos, unk, pad;
};

// `messages`: array of {"role": ..., "content": ...}. Throws UnsupportedError
// when the template uses a construct outside the interpreter's subset (the
// message names it), FormatError for a malformed template, and
// jinja::TemplateRaised when the template rejects the conversation
// (raise_exception, e.g. roles that do not alternate).
std::string render_chat_template(const std::string& chat_template, const nlohmann::json& messages,
                                 bool add_generation_prompt, const ChatTokens& tokens,
                                 const nlohmann::json& extra = nlohmann::json::object());

// The tokenizer's template and special tokens. Throws UnsupportedError when
// the model has no chat template.
std::string render_chat(const tokenizer::Tokenizer& tok, const nlohmann::json& messages,
                        bool add_generation_prompt = true);

// Ids of the end-of-turn tokens of the common chat formats that this
// vocabulary has (<|im_end|>, <|eot_id|>, <end_of_turn>, [|endofturn|],
// <|end|>, ...): a chat reply ends at them as at EOS.
std::vector<int32_t> end_of_turn_tokens(const tokenizer::Tokenizer& tok);

}  // namespace kaival::engine
