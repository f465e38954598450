#pragma once
// Internal: constructors of the tokenizer algorithm families. tokenizer.cpp
// dispatches on the GGUF `tokenizer.ggml.model` or the tokenizer.json model.
//   bpe_*        byte-level BPE (GPT-2 style: gpt2, llama3, qwen, deepseek, falcon, starcoder, ...)
//   spm_*        SentencePiece-style: BPE/score-merging with byte fallback and
//                "▁" spaces (llama 2, mistral, phi-3, gemma), Unigram
//   wordpiece_*  BERT WordPiece
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace kaival::tokenizer {

std::unique_ptr<Tokenizer> bpe_from_gguf(const weights::GgufFile& gguf, const std::string& where);
std::unique_ptr<Tokenizer> spm_from_gguf(const weights::GgufFile& gguf, const std::string& where);
std::unique_ptr<Tokenizer> wordpiece_from_gguf(const weights::GgufFile& gguf, const std::string& where);

// `config` is tokenizer_config.json (null json if absent).
std::unique_ptr<Tokenizer> bpe_from_json(const nlohmann::json& tj, const nlohmann::json& config,
                                         const std::string& where);
std::unique_ptr<Tokenizer> spm_from_json(const nlohmann::json& tj, const nlohmann::json& config,
                                         const std::string& where);
std::unique_ptr<Tokenizer> unigram_from_json(const nlohmann::json& tj, const nlohmann::json& config,
                                             const std::string& where);
std::unique_ptr<Tokenizer> wordpiece_from_json(const nlohmann::json& tj, const nlohmann::json& config,
                                               const std::string& where);

// Dispatches a parsed tokenizer.json on its model type; json type errors
// inside become FormatError naming `where`.
std::unique_ptr<Tokenizer> tokenizer_from_json(const nlohmann::json& tj, const nlohmann::json& config,
                                               const std::string& where);

// True when a tokenizer.json BPE model is SentencePiece-style (Metaspace
// pre-tokenizer or normalizer "▁" replacement, byte_fallback) rather than
// byte-level.
bool is_spm_style_bpe(const nlohmann::json& tj);

}  // namespace kaival::tokenizer
