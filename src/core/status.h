// Status / StatusOr: errors caused by bad input (a file, a flag, a shape) travel up to the CLI as
// values. Bugs never do: they abort through QM_CHECK (check.h).
#pragma once

#include <string>
#include <utility>
#include <variant>

#include "core/check.h"

namespace quamba {

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  static Status Ok() { return Status(); }
  static Status Error(std::string message) {
    Status s;
    s.ok_ = false;
    s.message_ = std::move(message);
    return s;
  }
  bool ok() const { return ok_; }
  const std::string& message() const { return message_; }

 private:
  bool ok_ = true;
  std::string message_;
};

// Builds "file: field: expected X, found Y"-style messages with printf formatting.
std::string StrFormat(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  StatusOr(Status status) : v_(std::move(status)) {  // NOLINT
    QM_CHECK(!std::get<Status>(v_).ok(), "StatusOr constructed from an OK status");
  }
  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & {
    QM_CHECK(ok(), "value() on error: %s", std::get<Status>(v_).message().c_str());
    return std::get<T>(v_);
  }
  const T& value() const& {
    QM_CHECK(ok(), "value() on error: %s", std::get<Status>(v_).message().c_str());
    return std::get<T>(v_);
  }
  T&& value() && {
    QM_CHECK(ok(), "value() on error: %s", std::get<Status>(v_).message().c_str());
    return std::move(std::get<T>(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<Status, T> v_;
};

}  // namespace quamba

// Returns from the enclosing function if `expr` (a Status) is an error.
#define QM_RETURN_IF_ERROR(expr)           \
  do {                                     \
    ::quamba::Status qm_status_ = (expr);  \
    if (!qm_status_.ok()) return qm_status_; \
  } while (0)

#define QM_CONCAT_INNER(a, b) a##b
#define QM_CONCAT(a, b) QM_CONCAT_INNER(a, b)
// `QM_ASSIGN_OR_RETURN(auto x, F())`: x = F().value(), or return F()'s error.
#define QM_ASSIGN_OR_RETURN(lhs, expr) \
  QM_ASSIGN_OR_RETURN_IMPL(QM_CONCAT(qm_statusor_, __LINE__), lhs, expr)
#define QM_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()
