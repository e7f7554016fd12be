// `quamba serve` as a user runs it: a child process on a free port; SIGTERM while a stream is
// running drains it (the stream completes with [DONE]) and the process exits 0. Also the load
// script bench/serve_load.py against it, and the flag errors.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <fstream>
#include <thread>

#include "core/clock.h"
#include "serve_test_util.h"

namespace quamba {
namespace {

// A `quamba serve` child; killed (SIGKILL) at scope exit if still running.
class ServeProcess {
 public:
  explicit ServeProcess(const std::string& args) {
    err_ = dir_ / "err";
    pid_ = ::fork();
    if (pid_ == 0) {
      const std::string cmd = std::string("exec ") + QM_CLI_PATH + " serve " + args + " </dev/null >" +
                              (dir_ / "out") + " 2>" + err_;
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    const double t0 = NowSeconds();
    // No std::regex: GCC 12 -O2 -Werror warns inside libstdc++'s regex under the sanitizers.
    const std::string prefix = "listening on http://127.0.0.1:";
    while (NowSeconds() - t0 < 60) {
      const std::string e = testing::ReadAll(err_);
      const size_t at = e.find(prefix);
      if (at != std::string::npos && at + prefix.size() < e.size() &&
          std::isdigit(static_cast<unsigned char>(e[at + prefix.size()]))) {
        port_ = std::stoi(e.substr(at + prefix.size()));
        break;
      }
      int st;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ~ServeProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }
  // Sends `sig` and waits for the exit status (-1 if it did not exit within 60 s).
  int Signal(int sig) {
    ::kill(pid_, sig);
    const double t0 = NowSeconds();
    while (NowSeconds() - t0 < 60) {
      int st;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  std::string err() const { return testing::ReadAll(err_); }

 private:
  testing::TempDir dir_;
  std::string err_;
  pid_t pid_ = -1;
  int port_ = -1;
};

TEST(ServeCliTest, SigtermDrainsRunningStreamsAndExitsCleanly) {
  ServeProcess p("-m " + testing::RefModelDir() + " --port 0 -t 1 --parallel 2");
  ASSERT_GT(p.port(), 0) << p.err();
  testing::HttpReply stream;
  std::thread client([&] {
    stream = testing::Post(p.port(), "/v1/completions",
                           {{"prompt", "It is a truth"}, {"max_tokens", 3000}, {"stream", true},
                            {"temperature", 0}, {"ignore_eos", true}});
  });
  // Once the stream is running, SIGTERM: it must finish, not be cut.
  const double t0 = NowSeconds();
  while (testing::MetricValue(p.port(), "quamba_decode_steps_total") < 1 && NowSeconds() - t0 < 30)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(p.Signal(SIGTERM), 0) << p.err();
  client.join();
  ASSERT_EQ(stream.status, 200);
  bool done = false;
  const std::vector<Json> events = testing::SseEvents(stream.body, &done);
  EXPECT_TRUE(done);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back()["choices"][0]["finish_reason"], "length");
  EXPECT_NE(p.err().find("draining"), std::string::npos);
  EXPECT_NE(p.err().find("stopped"), std::string::npos);
}

TEST(ServeCliTest, LoadScriptReportsFigures) {
  if (std::system("python3 -c '' >/dev/null 2>&1") != 0) GTEST_SKIP() << "no python3";
  ServeProcess p("-m " + testing::RefModelDir() + " --port 0 -t 1 --parallel 4");
  ASSERT_GT(p.port(), 0) << p.err();
  testing::TempDir d;
  const std::string cmd = "python3 " + testing::SourcePath("bench/serve_load.py") +
                          " --url http://127.0.0.1:" + std::to_string(p.port()) +
                          " --requests 8 --concurrency 4 --max-tokens 8 --json >" + (d / "out") +
                          " 2>" + (d / "err") + " </dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << testing::ReadAll(d / "err");
  auto j = ParseJson(testing::ReadAll(d / "out"), "serve_load.py output");
  ASSERT_TRUE(j.ok()) << testing::ReadAll(d / "out");
  EXPECT_EQ((*j)["requests_ok"], 8);
  EXPECT_EQ((*j)["output_tokens"], 64);
  for (const char* k : {"throughput_tok_s", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s"})
    EXPECT_GT((*j)[k].get<double>(), 0) << k;
  EXPECT_EQ(p.Signal(SIGINT), 0);
}

TEST(ServeCliTest, FlagErrors) {
  const testing::CliResult no_model = testing::RunQuamba("serve --port 0");
  EXPECT_EQ(no_model.code, 2);
  const testing::CliResult bad_port = testing::RunQuamba("serve -m x --port 70000");
  EXPECT_EQ(bad_port.code, 2);
  EXPECT_NE(bad_port.err.find("--port"), std::string::npos);
  const testing::CliResult missing = testing::RunQuamba("serve -m /nonexistent --port 0");
  EXPECT_EQ(missing.code, 1);
  EXPECT_EQ(testing::Lines(missing.err), 1) << missing.err;
  const testing::CliResult state =
      testing::RunQuamba("serve -m " + testing::RefModelDir() + " --port 0 --state-dir /nonexistent");
  EXPECT_EQ(state.code, 1);
  EXPECT_NE(state.err.find("--state-dir"), std::string::npos);
}

}  // namespace
}  // namespace quamba
