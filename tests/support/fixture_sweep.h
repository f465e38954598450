#pragma once
// One `kaival perf` sweep of the fixture model base-a on kaival's own server (127.0.0.1):
// closed loops at concurrency 1 and 2, four prompts of 8 words, 6 tokens out. Shared by the
// perf tests and the stage tests that read a real measurement.
#include <string>

#include "eval/perf.h"
#include "server/openai_server.h"

namespace kaival::testing_support {

inline eval::PerfReport sweep_fixture_model(const eval::PerfPrice& price = {}) {
  auto served = server::ServedModel::open(std::string(KAIVAL_TESTDATA) + "/models/base-a");
  server::OpenAIServer srv(served);
  const int port = srv.start();
  eval::PerfOptions o;
  o.model_url = "http://127.0.0.1:" + std::to_string(port);
  o.num_prompts = 4;
  o.input_len = 8;
  o.output_len = 6;
  o.sweep = {1, 2};
  o.timeout_s = 30;
  o.price = price;
  auto rep = eval::run_perf(o);
  srv.stop();
  return rep;
}

}  // namespace kaival::testing_support
