#include "core/dtype.h"

namespace quamba {
namespace {
struct Name {
  DType t;
  const char* s;
};
constexpr Name kNames[] = {{DType::kF32, "F32"}, {DType::kF16, "F16"}, {DType::kBF16, "BF16"},
                           {DType::kI8, "I8"},   {DType::kI32, "I32"}, {DType::kF64, "F64"},
                           {DType::kU8, "U8"},   {DType::kI64, "I64"}};
}  // namespace

const char* DTypeName(DType t) {
  for (const Name& n : kNames)
    if (n.t == t) return n.s;
  return "?";
}

bool ParseDTypeName(std::string_view name, DType* out) {
  for (const Name& n : kNames) {
    if (name == n.s) {
      *out = n.t;
      return true;
    }
  }
  return false;
}

}  // namespace quamba
