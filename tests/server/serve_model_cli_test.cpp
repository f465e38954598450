// `kaival serve-model` as a process: prints its address, answers, stops on SIGTERM.
#include <gtest/gtest.h>

#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <regex>
#include <string>
#include <thread>

namespace {

TEST(ServeModelCliTest, ServesUntilSigterm) {
  int err[2];
  ASSERT_EQ(pipe(err), 0);
  const std::string model = std::string(KAIVAL_TESTDATA) + "/models/base-a";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(err[1], 2);
    close(err[0]);
    execl(KAIVAL_BINARY, KAIVAL_BINARY, "serve-model", model.c_str(), "--port", "0", "--name", "fixture",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(err[1]);
  // The first stderr line names the bound address.
  std::string line;
  char c;
  while (line.find('\n') == std::string::npos && read(err[0], &c, 1) == 1) line += c;
  std::smatch m;
  const bool found = std::regex_search(line, m, std::regex(R"(http://127\.0\.0\.1:(\d+)/v1)"));
  if (found) {
    httplib::Client cli("127.0.0.1", std::stoi(m[1]));
    auto r = cli.Get("/v1/models");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_NE(r->body.find("\"fixture\""), std::string::npos);
  }
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  close(err[0]);
  ASSERT_TRUE(found) << line;
  EXPECT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
