// Helpers for the server tests: an in-process server on a free loopback port, a minimal raw
// HTTP/1.1 client (so tests can also send what no library client would: broken bodies, huge
// headers, a connection dropped mid-stream), SSE parsing, and the repository's models.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "io/json_util.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "quant/quantizer.h"
#include "serve/server.h"
#include "test_util.h"

namespace quamba::testing {

inline std::string RefModelDir() { return SourcePath("models/mamba-ref-d256-l6"); }

inline std::unique_ptr<Model> LoadModel(const std::string& dir) {
  auto m = Model::Load(dir);
  QM_CHECK(m.ok(), "%s", m.status().message().c_str());
  return std::move(m).value();
}

// A W8A8 (quamba recipe) copy of the reference model, calibrated on a few samples.
inline std::unique_ptr<Model> QuantizedRefModel(const Model& fp, const std::string& out_dir) {
  QuantizeOptions o;
  o.recipe = "quamba";
  o.calib_files = {SharedData("calibration/pg1342-0.txt")};
  o.calib_samples = 8;
  o.calib_len = 128;
  o.threads = 2;
  o.progress = false;
  const Status s = QuantizeModel(fp, o, out_dir);
  QM_CHECK(s.ok(), "%s", s.message().c_str());
  return LoadModel(out_dir);
}

inline serve::ServerOptions TestServerOptions() {
  serve::ServerOptions o;
  o.host = "127.0.0.1";
  o.port = 0;  // any free port
  o.sched.threads = 1;
  o.sched.parallel = 4;
  return o;
}

// A started server; stopped (and its threads joined) at scope exit.
inline std::unique_ptr<serve::Server> StartServer(const Model& m, serve::ServerOptions o) {
  auto s = std::make_unique<serve::Server>(m, kernels::DefaultKernels(), std::move(o));
  const Status st = s->Start();
  QM_CHECK(st.ok(), "%s", st.message().c_str());
  return s;
}

struct HttpReply {
  int status = -1;  // -1: no reply (connection failed or closed early)
  std::string headers, body;  // body de-chunked
  Json json() const {
    auto j = ParseJson(body, "reply");
    return j.ok() ? *j : Json();
  }
};

inline int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{60, 0};  // no test waits longer for a byte
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

inline bool SendAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

inline std::string Dechunk(const std::string& b) {
  std::string out;
  size_t p = 0;
  while (p < b.size()) {
    const size_t eol = b.find("\r\n", p);
    if (eol == std::string::npos) break;
    const size_t n = std::stoul(b.substr(p, eol - p), nullptr, 16);
    if (n == 0) break;
    out += b.substr(eol + 2, n);
    p = eol + 2 + n + 2;
  }
  return out;
}

inline HttpReply ParseReply(const std::string& raw) {
  HttpReply r;
  const size_t head_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || head_end == std::string::npos) return r;
  r.status = std::stoi(raw.substr(9, 3));
  r.headers = raw.substr(0, head_end);
  r.body = raw.substr(head_end + 4);
  if (r.headers.find("Transfer-Encoding: chunked") != std::string::npos) r.body = Dechunk(r.body);
  return r;
}

// One request on a fresh connection ("Connection: close"); reads the whole reply.
inline HttpReply Http(int port, const std::string& method, const std::string& path,
                      const std::string& body = "", const std::string& extra_headers = "") {
  const int fd = Connect(port);
  if (fd < 0) {
    HttpReply r;
    r.body = std::string("connect: ") + std::strerror(errno);
    return r;
  }
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
                    extra_headers;
  if (method == "POST")
    req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n";
  req += "\r\n" + body;
  std::string raw, why;
  if (SendAll(fd, req)) {
    char buf[65536];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) raw.append(buf, n);
    if (n < 0) why = std::string("recv: ") + std::strerror(errno);
  } else {
    why = std::string("send: ") + std::strerror(errno);
  }
  ::close(fd);
  HttpReply r = ParseReply(raw);
  if (r.status < 0) r.body = why + "; received " + std::to_string(raw.size()) + " bytes";
  return r;
}

inline HttpReply Post(int port, const std::string& path, const Json& body,
                      const std::string& extra_headers = "") {
  return Http(port, "POST", path, body.dump(), extra_headers);
}

// The JSON payloads of an SSE body's "data: " lines, and whether it ended with [DONE].
inline std::vector<Json> SseEvents(const std::string& body, bool* done) {
  std::vector<Json> events;
  *done = false;
  size_t p = 0;
  while (p < body.size()) {
    size_t e = body.find("\n\n", p);
    if (e == std::string::npos) e = body.size();
    const std::string ev = body.substr(p, e - p);
    p = e + 2;
    if (ev.rfind("data: ", 0) != 0) continue;  // comments (keep-alives)
    const std::string data = ev.substr(6);
    if (data == "[DONE]") {
      *done = true;
      continue;
    }
    auto j = ParseJson(data, "event");
    if (j.ok()) events.push_back(*j);
  }
  return events;
}

// A value of /metrics ("name" or "name{labels}"); -1 if absent.
inline double MetricValue(int port, const std::string& name) {
  const HttpReply r = Http(port, "GET", "/metrics");
  size_t p = 0;
  while ((p = r.body.find(name + " ", p)) != std::string::npos) {
    if (p == 0 || r.body[p - 1] == '\n') return std::stod(r.body.substr(p + name.size() + 1));
    p += name.size();
  }
  return -1;
}

}  // namespace quamba::testing
