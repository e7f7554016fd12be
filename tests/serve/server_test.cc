// Server behaviour over HTTP on the float reference model: streaming equals the non-streamed
// text, batched decoding equals sequential, prefix snapshots are faster and exact, slot files
// stay in --state-dir, and limits, bad input and abuse are answered with a status while the
// server stays up.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <thread>

#include "core/clock.h"
#include "serve_test_util.h"

namespace quamba {
namespace {

using testing::Http;
using testing::HttpReply;
using testing::Post;

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_ = testing::LoadModel(testing::RefModelDir()).release(); }
  static void TearDownTestSuite() { delete model_; }
  static std::string Text(const HttpReply& r) { return r.json()["choices"][0]["text"]; }
  // A prompt of n tokens from the book.
  static std::vector<int32_t> BookTokens(size_t from, size_t n) {
    const std::string text = testing::ReadAll(testing::SharedData("calibration/pg1342-0.txt"));
    std::vector<int32_t> ids = model_->tokenizer()->Encode(text.substr(30000, 60000));
    QM_CHECK(from + n <= ids.size());
    return std::vector<int32_t>(ids.begin() + from, ids.begin() + from + n);
  }
  static Model* model_;
};

Model* ServerTest::model_ = nullptr;

// The concatenated SSE deltas equal the non-streamed text for the same seed (sampled, with a
// stop string that ends generation), and the stream ends with data: [DONE].
TEST_F(ServerTest, StreamEqualsNonStreamed) {
  auto server = testing::StartServer(*model_, testing::TestServerOptions());
  for (const Json& extra : {Json{{"temperature", 0.9}, {"seed", 7}},
                            Json{{"temperature", 0.9}, {"seed", 8}, {"stop", {"I h", "\n\n"}}},
                            Json{{"temperature", 0}}}) {
    SCOPED_TRACE(extra.dump());
    Json body = {{"prompt", "Elizabeth was"}, {"max_tokens", 40}};
    body.update(extra);
    const HttpReply plain = Post(server->port(), "/v1/completions", body);
    ASSERT_EQ(plain.status, 200) << plain.body;
    body["stream"] = true;
    const HttpReply streamed = Post(server->port(), "/v1/completions", body);
    ASSERT_EQ(streamed.status, 200);
    EXPECT_NE(streamed.headers.find("text/event-stream"), std::string::npos);
    bool done = false;
    const std::vector<Json> events = testing::SseEvents(streamed.body, &done);
    EXPECT_TRUE(done);
    std::string text;
    std::string finish;
    for (const Json& e : events) {
      text += e["choices"][0]["text"].get<std::string>();
      if (!e["choices"][0]["finish_reason"].is_null()) finish = e["choices"][0]["finish_reason"];
    }
    EXPECT_EQ(text, Text(plain));
    EXPECT_EQ(finish, plain.json()["choices"][0]["finish_reason"]);
    EXPECT_GT(text.size(), 0u);
    if (extra.contains("stop")) {
      // Same seed without stop strings: the same draws, so the stopped text is this text cut
      // before the first stop string (no part of it shown).
      Json free = body;
      free.erase("stop");
      free["stream"] = false;
      const std::string all = Text(Post(server->port(), "/v1/completions", free));
      const size_t cut = std::min(all.find("I h"), all.find("\n\n"));
      ASSERT_NE(cut, std::string::npos) << "no stop string in: " << all;
      EXPECT_EQ(finish, "stop");
      EXPECT_EQ(text, all.substr(0, cut));
    }
  }
}

// N concurrent greedy requests give the tokens of N sequential ones, and they were decoded
// together (mean decode batch > 1).
TEST_F(ServerTest, BatchedEqualsSequential) {
  constexpr int kN = 4;
  const char* prompts[kN] = {"Mr. Bennet", "It was a", "Lady Catherine de Bourgh",
                             "The ball at Netherfield"};
  auto body = [&](int i) {
    return Json{{"prompt", prompts[i]}, {"max_tokens", 24 + 4 * i}, {"temperature", 0},
                {"logprobs", 0}};
  };
  std::vector<Json> sequential(kN), concurrent(kN);
  {
    auto server = testing::StartServer(*model_, testing::TestServerOptions());
    for (int i = 0; i < kN; ++i) sequential[i] = Post(server->port(), "/v1/completions", body(i)).json();
  }
  auto server = testing::StartServer(*model_, testing::TestServerOptions());
  std::vector<std::thread> th;
  for (int i = 0; i < kN; ++i)
    th.emplace_back([&, i] { concurrent[i] = Post(server->port(), "/v1/completions", body(i)).json(); });
  for (auto& t : th) t.join();
  for (int i = 0; i < kN; ++i) {
    SCOPED_TRACE(prompts[i]);
    const Json& a = sequential[i]["choices"][0];
    const Json& b = concurrent[i]["choices"][0];
    ASSERT_TRUE(a.contains("text") && b.contains("text"));
    EXPECT_EQ(a["text"], b["text"]);
    EXPECT_EQ(a["logprobs"]["tokens"], b["logprobs"]["tokens"]);
  }
  const double steps = testing::MetricValue(server->port(), "quamba_decode_steps_total");
  const double rows = testing::MetricValue(server->port(), "quamba_decode_rows_total");
  ASSERT_GT(steps, 0);
  EXPECT_GT(rows / steps, 1.2) << "the requests were not decoded together";
}

// A request sharing a long prefix with an earlier one resumes from a snapshot: it runs far
// fewer tokens, is faster, and its log-probs are bit for bit those of a server without cache.
TEST_F(ServerTest, SnapshotsSkipSharedPrefixExactly) {
  const std::vector<int32_t> prefix = BookTokens(0, 1536), a = BookTokens(2000, 9),
                             b = BookTokens(3000, 7);
  auto cat = [](std::vector<int32_t> x, const std::vector<int32_t>& y) {
    x.insert(x.end(), y.begin(), y.end());
    return x;
  };
  auto body = [](const std::vector<int32_t>& p) {
    return Json{{"prompt", p}, {"max_tokens", 1}, {"echo", true}, {"logprobs", 2},
                {"temperature", 0}};
  };
  serve::ServerOptions no_cache = testing::TestServerOptions();
  no_cache.sched.cache_bytes = 0;
  auto cold = testing::StartServer(*model_, no_cache);
  auto warm = testing::StartServer(*model_, testing::TestServerOptions());
  const int64_t C = warm->scheduler().chunk();
  ASSERT_EQ(Post(warm->port(), "/v1/completions", body(cat(prefix, a))).status, 200);
  const double run_before = testing::MetricValue(warm->port(), "quamba_prefill_tokens_total");
  double t_warm = 1e9, t_cold = 1e9;
  HttpReply hot, ref;
  for (int rep = 0; rep < 3; ++rep) {  // best of 3: a shared machine's noise
    double t0 = NowSeconds();
    hot = Post(warm->port(), "/v1/completions", body(cat(prefix, b)));
    t_warm = std::min(t_warm, NowSeconds() - t0);
    t0 = NowSeconds();
    ref = Post(cold->port(), "/v1/completions", body(cat(prefix, b)));
    t_cold = std::min(t_cold, NowSeconds() - t0);
  }
  ASSERT_EQ(hot.status, 200) << hot.body;
  ASSERT_EQ(ref.status, 200) << ref.body;
  const int64_t n = static_cast<int64_t>(prefix.size() + b.size());
  EXPECT_EQ(hot.json()["usage"]["prompt_tokens_details"]["cached_tokens"], prefix.size() / C * C);
  EXPECT_EQ(ref.json()["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  const double run = testing::MetricValue(warm->port(), "quamba_prefill_tokens_total") - run_before;
  EXPECT_LE(run, 3 * (n - static_cast<int64_t>(prefix.size()) / C * C));  // 3 reps, the rest only
  EXPECT_EQ(hot.json()["choices"][0]["logprobs"], ref.json()["choices"][0]["logprobs"]);
  EXPECT_LT(t_warm, 0.5 * t_cold) << "warm " << t_warm << " s, cold " << t_cold << " s";
}

// Slot files: saved under --state-dir only (names that could leave it are refused), restored
// into another server, where a prompt starting with the saved tokens resumes from it and
// generates what a fresh run generates.
TEST_F(ServerTest, SlotSaveRestoreStaysInStateDir) {
  testing::TempDir dir;
  std::filesystem::create_directory(dir / "states");
  serve::ServerOptions o = testing::TestServerOptions();
  o.sched.parallel = 1;
  o.state_dir = dir / "states";
  const std::vector<int32_t> prompt = BookTokens(100, 150), more = BookTokens(900, 5);
  auto s1 = testing::StartServer(*model_, o);
  // max_tokens 1: the slot's state then holds exactly the prompt (the sampled token is not fed).
  const HttpReply first =
      Post(s1->port(), "/v1/completions", {{"prompt", prompt}, {"max_tokens", 1}, {"temperature", 0}});
  ASSERT_EQ(first.status, 200);
  for (const char* bad : {"../escape", "/tmp/abs", ".hidden", "a/b", "", "x\u00e9"}) {
    const HttpReply r = Post(s1->port(), "/slots/0?action=save", {{"filename", bad}});
    EXPECT_EQ(r.status, 400) << bad;
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "escape"));
  EXPECT_EQ(Post(s1->port(), "/slots/0?action=save", {{"filename", 5}}).status, 400);
  EXPECT_EQ(Post(s1->port(), "/slots/7?action=save", {{"filename", "x"}}).status, 400);
  EXPECT_EQ(Post(s1->port(), "/slots/0?action=erase", {{"filename", "x"}}).status, 400);
  const HttpReply saved = Post(s1->port(), "/slots/0?action=save", {{"filename", "s0.bin"}});
  ASSERT_EQ(saved.status, 200) << saved.body;
  ASSERT_TRUE(std::filesystem::exists(dir / "states/s0.bin"));
  const std::vector<int32_t>& consumed = prompt;
  std::vector<int32_t> next = consumed;
  next.insert(next.end(), more.begin(), more.end());
  const Json req = {{"prompt", next}, {"max_tokens", 8}, {"temperature", 0}};
  auto s2 = testing::StartServer(*model_, o);
  EXPECT_EQ(Post(s2->port(), "/slots/0?action=restore", {{"filename", "missing.bin"}}).status, 400);
  {  // a truncated file is refused, not loaded
    const std::string bytes = testing::ReadAll(dir / "states/s0.bin");
    std::ofstream(dir / "states/cut.bin", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
    EXPECT_EQ(Post(s2->port(), "/slots/0?action=restore", {{"filename", "cut.bin"}}).status, 400);
  }
  const HttpReply restored = Post(s2->port(), "/slots/0?action=restore", {{"filename", "s0.bin"}});
  ASSERT_EQ(restored.status, 200) << restored.body;
  const HttpReply resumed = Post(s2->port(), "/v1/completions", req);
  ASSERT_EQ(resumed.status, 200);
  EXPECT_EQ(resumed.json()["usage"]["prompt_tokens_details"]["cached_tokens"], consumed.size());
  serve::ServerOptions fresh = o;
  fresh.state_dir.clear();
  auto s3 = testing::StartServer(*model_, fresh);
  EXPECT_EQ(Post(s3->port(), "/slots/0?action=save", {{"filename", "x"}}).status, 400);
  EXPECT_EQ(Text(resumed), Text(Post(s3->port(), "/v1/completions", req)));
}

// Bad requests of every kind get a JSON error with the right status; none takes the server down.
TEST_F(ServerTest, BadInputIsAnsweredNotFatal) {
  serve::ServerOptions o = testing::TestServerOptions();
  o.max_body_bytes = 64 << 10;
  o.limits.max_prompt_tokens = 300;
  o.limits.max_tokens = 100;
  auto server = testing::StartServer(*model_, o);
  const int port = server->port();
  auto post = [&](const std::string& body) { return Http(port, "POST", "/v1/completions", body); };
  struct Case {
    const char* what;
    std::string body;
    int status;
  };
  const std::string deep = std::string(20000, '[') + std::string(20000, ']');
  std::string long_prompt = "[1";
  for (int i = 0; i < 300; ++i) long_prompt += ", 1";
  long_prompt += "]";
  const std::vector<Case> cases = {
      {"oversize body", "{\"prompt\": \"" + std::string(70 << 10, 'a') + "\"}", 413},
      {"deep JSON", "{\"prompt\": " + deep + "}", 400},
      {"invalid UTF-8", "{\"prompt\": \"caf\xc3\x28\"}", 400},
      {"truncated JSON", "{\"prompt\": \"x\"", 400},
      {"not an object", "[1, 2]", 400},
      {"empty body", "", 400},
      {"no prompt", "{\"max_tokens\": 3}", 400},
      {"prompt of wrong type", "{\"prompt\": 5}", 400},
      {"mixed prompt list", "{\"prompt\": [\"a\", [1, 2]]}", 400},
      {"empty prompt list", "{\"prompt\": []}", 400},
      {"token id too large", "{\"prompt\": [1, 4096]}", 400},
      {"negative token id", "{\"prompt\": [[1, -3]]}", 400},
      {"huge token id", "{\"prompt\": [1e300]}", 400},
      {"negative max_tokens", "{\"prompt\": \"a\", \"max_tokens\": -1}", 400},
      {"huge max_tokens", "{\"prompt\": \"a\", \"max_tokens\": 1e30}", 400},
      {"max_tokens over the limit", "{\"prompt\": \"a\", \"max_tokens\": 101}", 400},
      {"fractional max_tokens", "{\"prompt\": \"a\", \"max_tokens\": 2.5}", 400},
      {"string max_tokens", "{\"prompt\": \"a\", \"max_tokens\": \"5\"}", 400},
      {"negative temperature", "{\"prompt\": \"a\", \"temperature\": -1}", 400},
      {"top_p 0", "{\"prompt\": \"a\", \"top_p\": 0}", 400},
      {"logprobs 21", "{\"prompt\": \"a\", \"logprobs\": 21}", 400},
      {"n 2", "{\"prompt\": \"a\", \"n\": 2}", 400},
      {"echo as string", "{\"prompt\": \"a\", \"echo\": \"yes\"}", 400},
      {"stop of wrong type", "{\"prompt\": \"a\", \"stop\": [1]}", 400},
      {"seed beyond int64", "{\"prompt\": \"a\", \"seed\": 18446744073709551615}", 400},
      {"presence penalty", "{\"prompt\": \"a\", \"presence_penalty\": 1}", 400},
      {"prompt over the token limit", "{\"prompt\": " + long_prompt + "}", 400},
      {"duplicate keys", "{\"prompt\": \"a\", \"prompt\": \"b\"}", 400},
  };
  for (const Case& c : cases) {
    const HttpReply r = post(c.body);
    EXPECT_EQ(r.status, c.status) << c.what << ": " << r.body.substr(0, 200);
    if (r.status != 413) {
      EXPECT_TRUE(r.json().contains("error")) << c.what;
    }
  }
  // Unknown fields are answered (ignored, with a warning), not fatal.
  const HttpReply unknown = post("{\"prompt\": \"a\", \"max_tokens\": 2, \"frobnicate\": {\"x\": 1}}");
  ASSERT_EQ(unknown.status, 200);
  EXPECT_EQ(unknown.json()["warnings"].size(), 1u);
  EXPECT_EQ(Http(port, "GET", "/v2/nothing").status, 404);
  EXPECT_EQ(Http(port, "POST", "/v1/models", "{}").status, 404);
  EXPECT_EQ(Http(port, "POST", "/tokenize", "{\"prompt\": 3}").status, 400);
  EXPECT_EQ(Http(port, "POST", "/detokenize", "{\"tokens\": [99999999]}").status, 400);
  EXPECT_EQ(Http(port, "POST", "/v1/chat/completions",
                 "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}").status,
            400);  // the reference model has no chat template
  EXPECT_EQ(Http(port, "GET", "/health").status, 200);
}

// --api-key: every endpoint but /health needs "Authorization: Bearer KEY".
TEST_F(ServerTest, ApiKeyIsRequired) {
  serve::ServerOptions o = testing::TestServerOptions();
  o.api_key = "s3cret";
  auto server = testing::StartServer(*model_, o);
  const int port = server->port();
  const std::string body = "{\"prompt\": \"a\", \"max_tokens\": 1}";
  EXPECT_EQ(Http(port, "POST", "/v1/completions", body).status, 401);
  EXPECT_EQ(Http(port, "POST", "/v1/completions", body, "Authorization: Bearer wrong\r\n").status, 401);
  EXPECT_EQ(Http(port, "GET", "/metrics").status, 401);
  EXPECT_EQ(Http(port, "POST", "/v1/completions", body, "Authorization: Bearer s3cret\r\n").status,
            200);
  EXPECT_EQ(Http(port, "GET", "/health").status, 200);
}

// 200 concurrent connections against 4 slots and a short queue: each gets a status (200, or
// 429 when the queue is full), and the server answers /health afterwards.
TEST_F(ServerTest, TwoHundredConnectionsAgainstFourSlots) {
  serve::ServerOptions o = testing::TestServerOptions();
  o.sched.parallel = 4;
  o.sched.max_queue = 16;
  auto server = testing::StartServer(*model_, o);
  constexpr int kClients = 200;
  std::vector<int> status(kClients, 0);
  std::vector<std::string> bodies(kClients);
  std::vector<std::thread> th;
  for (int i = 0; i < kClients; ++i) {
    th.emplace_back([&, i] {
      const std::string body =
          i % 5 == 4 ? std::string("{\"prompt\": [1, 2, 3") :  // broken JSON
              "{\"prompt\": \"Chapter " + std::to_string(i) + "\", \"max_tokens\": 4, \"stream\": " +
                  (i % 2 ? "true" : "false") + "}";
      const HttpReply r = Http(server->port(), "POST", "/v1/completions", body);
      status[i] = r.status;
      bodies[i] = r.body;
    });
  }
  for (auto& t : th) t.join();
  int ok = 0, busy = 0, bad = 0;
  for (int i = 0; i < kClients; ++i) {
    if (status[i] == 200) ++ok;
    else if (status[i] == 429) ++busy;
    else if (status[i] == 400 && i % 5 == 4) ++bad;
    else ADD_FAILURE() << "client " << i << ": status " << status[i] << " " << bodies[i].substr(0, 200);
  }
  EXPECT_EQ(bad, kClients / 5);
  EXPECT_GT(ok, 0);
  EXPECT_EQ(ok + busy + bad, kClients);
  EXPECT_EQ(Http(server->port(), "GET", "/health").status, 200);
  // A slot is freed just after its last reply is sent: allow it a moment.
  const double t0 = NowSeconds();
  while (testing::MetricValue(server->port(), "quamba_active_slots") != 0 && NowSeconds() - t0 < 10)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(testing::MetricValue(server->port(), "quamba_active_slots"), 0);
}

// A client that disconnects mid-stream frees its slot: with one slot, a long stream is dropped
// after its first event and the next request is served at once.
TEST_F(ServerTest, DisconnectMidStreamFreesTheSlot) {
  serve::ServerOptions o = testing::TestServerOptions();
  o.sched.parallel = 1;
  o.limits.max_tokens = 1 << 20;
  auto server = testing::StartServer(*model_, o);
  const int fd = testing::Connect(server->port());
  ASSERT_GE(fd, 0);
  const std::string body =
      "{\"prompt\": \"Once\", \"max_tokens\": 1000000, \"stream\": true, \"ignore_eos\": true}";
  ASSERT_TRUE(testing::SendAll(fd, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                                       std::to_string(body.size()) + "\r\n\r\n" + body));
  // The stream has begun once its first event arrives (the headers alone may come before the
  // scheduler has given the request its slot: then the slot count below would read 0 too early).
  char buf[4096];
  std::string got;
  while (got.find("data: ") == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    ASSERT_GT(n, 0) << got;
    got.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  const double t0 = NowSeconds();
  while (testing::MetricValue(server->port(), "quamba_active_slots") != 0 && NowSeconds() - t0 < 30)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(testing::MetricValue(server->port(), "quamba_active_slots"), 0);
  const HttpReply next = Post(server->port(), "/v1/completions", {{"prompt", "a"}, {"max_tokens", 2}});
  EXPECT_EQ(next.status, 200);
  EXPECT_LT(testing::MetricValue(server->port(), "quamba_generated_tokens_total"), 100000);
}

// /metrics is Prometheus text with the request counters, token counters, queue depth and
// latency histograms.
TEST_F(ServerTest, MetricsArePrometheusText) {
  auto server = testing::StartServer(*model_, testing::TestServerOptions());
  // ignore_eos: a sampled end-of-text token would end the request before its 3 tokens.
  ASSERT_EQ(Post(server->port(), "/v1/completions",
                 {{"prompt", "a"}, {"max_tokens", 3}, {"ignore_eos", true}})
                .status,
            200);
  const HttpReply m = Http(server->port(), "GET", "/metrics");
  ASSERT_EQ(m.status, 200);
  for (const char* s : {"quamba_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 1",
                        "# TYPE quamba_time_to_first_token_seconds histogram",
                        "quamba_time_per_output_token_seconds_bucket{le=\"+Inf\"} 1",
                        "quamba_generated_tokens_total 3", "quamba_queue_depth 0"})
    EXPECT_NE(m.body.find(s), std::string::npos) << s;
}

}  // namespace
}  // namespace quamba
