// The test mock server (tests/eval/mock_server.cpp) as a standalone process for
// benchmarks of the `kaival eval` binary: prints its URL, serves until stdin closes.
// Usage: eval_mock_serve [--keep-alive]   (build: bench/eval_stream_rss.sh)
#include <cstdio>
#include <iostream>
#include <string>

#include "../tests/eval/mock_server.cpp"  // the test double, compiled in (not part of libkaival)

int main(int argc, char** argv) {
  kaival::eval::testing::MockFaults f;
  f.keep_alive = argc > 1 && std::string(argv[1]) == "--keep-alive";
  kaival::eval::testing::MockServer mock(f);
  mock.add_answer("kind even", "yes");
  mock.start();
  std::printf("%s\n", mock.url().c_str());
  std::fflush(stdout);
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  mock.stop();
  return 0;
}
