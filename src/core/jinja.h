#pragma once
// A Jinja2 subset interpreter for chat templates and task prompt templates.
//
// Supported: {{ }}, {% %}, {# #}, whitespace control ({%- -%}, trim_blocks,
// lstrip_blocks), if/elif/else, for (loop.*, else, filter clause, tuple
// unpacking, break/continue), set (incl. namespace() attributes and block set),
// macros with default arguments, filters, tests, slicing, the Python string /
// dict methods chat templates use, range(), namespace(), raise_exception().
// Anything else throws kaival::UnsupportedError naming the construct and the
// position (template:line:col). Rendering is bounded (output size, recursion,
// evaluation steps) so a hostile template fails with an error, never a hang.
//
// Values are JSON (nlohmann::ordered_json internally, so tojson keeps the
// caller's key order when given an ordered_json context).
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace kaival::jinja {

struct Options {
  // Hugging Face renders chat templates with trim_blocks and lstrip_blocks on;
  // plain Jinja2 has both off.
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;  // Jinja2's default drops one final newline
  size_t max_output_bytes = 8u << 20;  // also bounds every intermediate string
  int max_call_depth = 64;             // macro recursion
  size_t max_steps = 5'000'000;        // evaluated nodes per render
};

// raise_exception(msg) inside a template.
class TemplateRaised : public Error {
 public:
  using Error::Error;
};

struct Node;

class Template {
 public:
  // Throws FormatError (syntax) or UnsupportedError (construct outside the subset).
  static Template parse(std::string_view text, std::string name = "template", Options options = {});
  // Throws FormatError / UnsupportedError / TemplateRaised on render errors.
  std::string render(const nlohmann::json& context) const;
  std::string render(const nlohmann::ordered_json& context) const;
  const std::string& name() const;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

// Python's json.dumps(value, ensure_ascii=False, indent=indent) (indent < 0: none),
// which is what Hugging Face's tojson produces.
std::string to_python_json(const nlohmann::ordered_json& v, int indent = -1);

}  // namespace kaival::jinja
