#include "eval/yaml_json.h"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "core/error.h"

namespace kaival::eval {

namespace {

using OJson = nlohmann::ordered_json;

OJson scalar(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted: always a string
  if (n.Tag() == "!function") return OJson{{"!function", s}};
  if (s == "true" || s == "True") return true;
  if (s == "false" || s == "False") return false;
  if (s == "null" || s == "~" || s.empty()) return nullptr;
  if (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-' || s[0] == '+' || s[0] == '.') {
    char* end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (*end == '\0') return static_cast<int64_t>(v);
    double d = std::strtod(s.c_str(), &end);
    if (*end == '\0') return d;
  }
  return s;
}

OJson convert(const YAML::Node& n, const std::string& where, int depth) {
  if (depth > 64) fail(where, "YAML nested too deeply");
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Scalar: return scalar(n);
    case YAML::NodeType::Sequence: {
      OJson a = OJson::array();
      for (const auto& x : n) a.push_back(convert(x, where, depth + 1));
      return a;
    }
    case YAML::NodeType::Map: {
      OJson o = OJson::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = convert(kv.second, where, depth + 1);
      return o;
    }
  }
  return nullptr;
}

}  // namespace

nlohmann::ordered_json read_yaml_file(const std::string& path, std::string* text_out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail<IoError>(path, "cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  std::string text = ss.str();
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail(path, "YAML: {}", e.what());
  }
  OJson j = convert(root, path, 0);
  if (text_out) *text_out = std::move(text);
  return j;
}

}  // namespace kaival::eval
