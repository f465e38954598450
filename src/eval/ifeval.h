#pragma once
// IFEval verifiable instructions: all 25 instruction ids of google/IFEval,
// scored as the reference (google-research instruction_following_eval) scores
// them. Where kaival only approximates it (language detection, NLTK sentence
// and word tokenizers) docs/eval.md says how.
#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace kaival::eval {

// Strict: whether the response follows one instruction. A blank response
// follows none (as the reference's evaluation_lib). Throws UnsupportedError for
// an unknown instruction id or relation, FormatError for a missing or invalid
// keyword argument.
bool ifeval_check(const std::string& instruction_id, const nlohmann::ordered_json& kwargs, std::string_view response);

// Loose: strict on any of eight variants of the response: as is, without its
// first line, its last line or both, each also with every '*' removed.
bool ifeval_check_loose(const std::string& instruction_id, const nlohmann::ordered_json& kwargs,
                        std::string_view response);

// ISO 639-1 code of the text's language as kaival detects it ("en", "ko", "hi",
// ...; "zh-cn" for Han without kana), from the dominant Unicode script and, within
// a script, small stop-word and letter profiles. "" when the text has no letters.
std::string detect_language(std::string_view text);

// Sentences in the text, approximating NLTK's English punkt splitter (which
// IFEval's number_sentences uses): breaks after ? and ! and after a period that
// does not end a known abbreviation, an initial, or an ellipsis or number
// followed by a lower-case word.
size_t ifeval_count_sentences(std::string_view text);

// Words that are all upper case (Python's str.isupper) among the tokens of an
// approximation of NLTK's word_tokenize (punctuation and contractions split off).
size_t ifeval_count_capital_words(std::string_view text);

}  // namespace kaival::eval
