// Always-on invariant checks for bugs (never for bad input: see status.h). A failed check prints
// "Bug: file:line: message" and aborts.
#pragma once

namespace quamba {
[[noreturn]] void CheckFailed(const char* file, int line, const char* cond, const char* fmt, ...)
    __attribute__((format(printf, 4, 5)));
}  // namespace quamba

#define QM_CHECK(cond, ...)                                                 \
  do {                                                                      \
    if (__builtin_expect(!(cond), 0))                                       \
      ::quamba::CheckFailed(__FILE__, __LINE__, #cond, "" __VA_ARGS__);     \
  } while (0)

// Debug-only check for hot paths (enabled in Debug and sanitizer builds).
#if defined(NDEBUG) && !defined(QM_ENABLE_DCHECK)
#define QM_DCHECK(cond, ...) \
  do {                       \
  } while (0)
#else
#define QM_DCHECK(cond, ...) QM_CHECK(cond, __VA_ARGS__)
#endif
