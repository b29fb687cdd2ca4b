// EnumNames: an enumeration's names as one table, from which its to_string, parse and is_valid all come.
#pragma once

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace fnet::detail {

template <class Enum>
struct EnumName {
  Enum value;
  const char* name;
};

// The names of an enumeration, each value's first name its canonical one and later entries aliases
// ("gelu_pytorch_tanh" for gelu_new).
template <class Enum, std::size_t N>
class EnumNames {
 public:
  constexpr explicit EnumNames(const EnumName<Enum> (&names)[N]) {
    for (std::size_t i = 0; i < N; ++i) names_[i] = names[i];
  }

  // The canonical name of `value`; `unknown` for a value outside the enumeration.
  constexpr const char* name(Enum value, const char* unknown = "unknown") const {
    for (const auto& entry : names_)
      if (entry.value == value) return entry.name;
    return unknown;
  }

  constexpr bool contains(Enum value) const {
    for (const auto& entry : names_)
      if (entry.value == value) return true;
    return false;
  }

  std::optional<Enum> find(std::string_view text) const {
    for (const auto& entry : names_)
      if (text == entry.name) return entry.value;
    return std::nullopt;
  }

  // The value named `text`; otherwise std::invalid_argument "<function>: unknown <what> "<text>" (expected
  // a, b or c)".
  Enum parse(std::string_view text, const char* function, const char* what) const {
    if (const auto value = find(text)) return *value;
    std::string expected;
    for (std::size_t i = 0; i < N; ++i)
      expected += std::string(i == 0 ? "" : i + 1 == N ? " or " : ", ") + names_[i].name;
    throw std::invalid_argument(std::string(function) + ": unknown " + what + " \"" + std::string(text) +
                                "\" (expected " + expected + ")");
  }

 private:
  EnumName<Enum> names_[N] = {};
};

}  // namespace fnet::detail
