#include "engine/chat.h"

#include "core/error.h"
#include "core/jinja.h"
#include "tokenizer/tokenizer.h"

namespace kaival::engine {

std::string render_chat_template(const std::string& chat_template, const nlohmann::json& messages,
                                 bool add_generation_prompt, const ChatTokens& tokens, const nlohmann::json& extra) {
  if (!messages.is_array()) fail("chat template", "messages must be an array");
  // ordered_json keeps each message's key order for templates that print
  // whole objects (tojson).
  nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
  if (extra.is_object())
    for (const auto& [k, v] : extra.items()) ctx[k] = nlohmann::ordered_json::parse(v.dump());
  ctx["messages"] = nlohmann::ordered_json::parse(messages.dump());
  ctx["add_generation_prompt"] = add_generation_prompt;
  const std::pair<const char*, const std::string*> specials[] = {
      {"bos_token", &tokens.bos}, {"eos_token", &tokens.eos}, {"unk_token", &tokens.unk}, {"pad_token", &tokens.pad}};
  for (const auto& [name, value] : specials)
    if (!value->empty()) ctx[name] = *value;
  const auto tmpl = jinja::Template::parse(chat_template, "chat_template");
  return tmpl.render(ctx);
}

std::string render_chat(const tokenizer::Tokenizer& tok, const nlohmann::json& messages, bool add_generation_prompt) {
  if (tok.chat_template().empty())
    fail<UnsupportedError>("chat template", "the model has no chat template (tokenizer_config.json chat_template "
                                            "or GGUF tokenizer.chat_template)");
  const auto& sp = tok.special();
  auto text = [&](const std::optional<int32_t>& id) { return id ? std::string(tok.token(*id)) : std::string(); };
  return render_chat_template(tok.chat_template(), messages, add_generation_prompt,
                              {text(sp.bos), text(sp.eos), text(sp.unk), text(sp.pad)});
}

std::vector<int32_t> end_of_turn_tokens(const tokenizer::Tokenizer& tok) {
  static constexpr const char* kEndOfTurn[] = {"<|im_end|>",    "<|eot_id|>", "<end_of_turn>", "[|endofturn|]",
                                               "<|end|>",       "<|endoftext|>", "<|eom_id|>", "</s>"};
  std::vector<int32_t> ids;
  for (const char* t : kEndOfTurn)
    if (auto id = tok.token_id(t)) ids.push_back(*id);
  return ids;
}

}  // namespace kaival::engine
