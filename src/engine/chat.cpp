#include "engine/chat.h"

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace kaival::engine {

std::string render_chat(const tokenizer::Tokenizer& tok, const nlohmann::json& messages, bool add_generation_prompt) {
  if (tok.chat_template().empty())
    fail<UnsupportedError>("chat template", "the model has no chat template (tokenizer_config.json chat_template "
                                            "or GGUF tokenizer.chat_template)");
  fail<UnsupportedError>("chat template", "rendering chat templates needs the Jinja interpreter, which is not built yet");
}

}  // namespace kaival::engine
