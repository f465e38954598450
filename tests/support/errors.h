#pragma once
// The message of the exception of type E that `f` throws, or "no error"; other exceptions
// propagate. For tests that check an error names its file and problem.
#include <string>

namespace kaival::testing_support {

template <class E, class F>
std::string error_text(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace kaival::testing_support
