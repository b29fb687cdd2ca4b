// FNetConfig and a Hugging Face config.json (nlohmann_json): reading, with every field type-checked, and
// writing, as transformers' FNetConfig.save_pretrained does.
#pragma once

#include <fnet/io/atomic_file.hpp>
#include <fnet/io/dtype.hpp>
#include <fnet/io/error.hpp>
#include <fnet/layers/activation.hpp>
#include <fnet/model/model_config.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>

namespace fnet::io {

namespace detail {

[[noreturn]] inline void bad_config(const std::string& source, const std::string& what) {
  throw FormatError("config '" + source + "': " + what);
}

inline void read_size(const nlohmann::json& json, const char* key, std::size_t& field,
                      const std::string& source) {
  if (!json.contains(key)) return;
  const auto& value = json[key];
  if (!value.is_number_unsigned())
    bad_config(source, std::string(key) + " must be a non-negative integer, got " + value.dump());
  const auto number = value.get<std::uint64_t>();
  if (number >
      std::numeric_limits<std::size_t>::max() / 16)  // far beyond any real model; keeps products finite
    bad_config(source, std::string(key) + " " + value.dump() + " is too large");
  field = static_cast<std::size_t>(number);
}

// A field stored by name (hidden_act, mixing): a string that `parse` turns into the field's value.
template <class Field, class Parse>
void read_named(const nlohmann::json& json, const char* key, Field& field, Parse&& parse,
                const std::string& source) {
  if (!json.contains(key)) return;
  const auto& value = json[key];
  if (!value.is_string()) bad_config(source, std::string(key) + " must be a string, got " + value.dump());
  try {
    field = parse(value.get<std::string>());
  } catch (const std::invalid_argument& error) {
    bad_config(source, std::string(key) + ": " + error.what());
  }
}

inline void read_integer(const nlohmann::json& json, const char* key, long long& field,
                         const std::string& source) {
  if (!json.contains(key) || json[key].is_null()) return;
  const auto& value = json[key];
  if (!value.is_number_integer())
    bad_config(source, std::string(key) + " must be an integer, got " + value.dump());
  field = value.get<long long>();
}

inline void read_number(const nlohmann::json& json, const char* key, double& field,
                        const std::string& source) {
  if (!json.contains(key)) return;
  const auto& value = json[key];
  if (!value.is_number()) bad_config(source, std::string(key) + " must be a number, got " + value.dump());
  field = value.get<double>();
}

}  // namespace detail

/// Parses config.json text. Keys the model does not use are ignored; known keys of the wrong type or with
/// impossible values throw FormatError naming `source`, the key and the value. Missing keys keep FNetConfig's
/// defaults (those of Hugging Face's FNetConfig). "mixing" must name a built-in mixer (fnet::builtin_mixers)
/// or `mixer`, the name of a mixer of your own that the caller is about to build (nullptr: none).
///
///     fnet::FNetConfig config = fnet::io::parse_config(text, "config.json");
inline FNetConfig parse_config(const std::string& text, const std::string& source,
                               const char* mixer = nullptr) {
  using detail::bad_config;
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& error) {
    bad_config(source, std::string("not valid JSON: ") + error.what());
  }
  if (!json.is_object()) bad_config(source, "must be a JSON object, got " + std::string(json.type_name()));

  FNetConfig config;
  detail::read_size(json, "vocab_size", config.vocab_size, source);
  detail::read_size(json, "hidden_size", config.hidden_size, source);
  detail::read_size(json, "intermediate_size", config.intermediate_size, source);
  detail::read_size(json, "num_hidden_layers", config.num_hidden_layers, source);
  detail::read_size(json, "max_position_embeddings", config.max_position_embeddings, source);
  detail::read_size(json, "type_vocab_size", config.type_vocab_size, source);
  detail::read_size(json, "tpu_short_seq_length", config.tpu_short_seq_length, source);
  detail::read_size(json, "num_attention_heads", config.num_attention_heads, source);
  detail::read_integer(json, "pad_token_id", config.pad_token_id, source);
  detail::read_integer(json, "bos_token_id", config.bos_token_id, source);
  detail::read_integer(json, "eos_token_id", config.eos_token_id, source);

  detail::read_named(json, "hidden_act", config.hidden_act, parse_activation, source);
  detail::read_named(
      json, "mixing", config.mixing,
      [&](const std::string& name) {
        std::string known;
        for (const char* builtin : builtin_mixers) {
          if (name == builtin) return name;
          known += known.empty() ? builtin : std::string(mixer ? ", " : " or ") + builtin;
        }
        if (mixer != nullptr && name == mixer) return name;
        if (mixer != nullptr) known += std::string(" or ") + mixer;
        throw std::invalid_argument("unknown mixing \"" + name + "\" (expected " + known + ")");
      },
      source);
  detail::read_number(json, "layer_norm_eps", config.layer_norm_eps, source);
  detail::read_number(json, "initializer_range", config.initializer_range, source);
  detail::read_number(json, "hidden_dropout_prob", config.hidden_dropout_prob, source);
  if (json.contains("use_tpu_fourier_optimizations")) {
    if (!json["use_tpu_fourier_optimizations"].is_boolean())
      bad_config(source, "use_tpu_fourier_optimizations must be true or false, got " +
                             json["use_tpu_fourier_optimizations"].dump());
    config.use_tpu_fourier_optimizations = json["use_tpu_fourier_optimizations"].get<bool>();
  }
  if (json.contains("architectures") && !json["architectures"].is_null()) {
    const auto& list = json["architectures"];
    if (!list.is_array()) bad_config(source, "architectures must be a list of strings, got " + list.dump());
    for (const auto& name : list) {
      if (!name.is_string())
        bad_config(source, "architectures must be a list of strings, got " + list.dump());
      config.architectures.push_back(name.get<std::string>());
    }
  }

  detail::read_size(json, "num_labels", config.num_labels, source);
  if (json.contains("id2label") && !json["id2label"].is_null()) {
    const auto& labels = json["id2label"];
    if (!labels.is_object())
      bad_config(source, "id2label must be an object {\"0\": name, ...}, got " + labels.dump());
    std::map<std::size_t, std::string> by_index;
    for (const auto& [key, name] : labels.items()) {
      std::size_t index = 0;
      std::size_t used = 0;
      try {
        index = static_cast<std::size_t>(std::stoull(key, &used));
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != key.size() || key[0] == '-' || key[0] == '+' || index >= labels.size())
        bad_config(source, "id2label key \"" + key + "\" is not a label index in 0.." +
                               std::to_string(labels.size() - 1));
      if (!name.is_string())
        bad_config(source, "id2label[\"" + key + "\"] must be a string, got " + name.dump());
      if (!by_index.emplace(index, name.get<std::string>()).second)
        bad_config(source, "id2label lists index " + std::to_string(index) + " twice");
    }
    for (const auto& entry : by_index) config.id2label.push_back(entry.second);
    if (!config.id2label.empty()) config.num_labels = config.id2label.size();
  }

  try {
    config.validate();
  } catch (const std::invalid_argument& error) {
    bad_config(source, error.what());
  }
  return config;
}

/// Reads and parses a config.json file (see parse_config). FileError when it cannot be read, FormatError when
/// it is malformed.
inline FNetConfig read_config(const std::string& path, const char* mixer = nullptr) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FileError("cannot open '" + path + "' for reading");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw FileError("cannot read '" + path + "'");
  return parse_config(text.str(), path, mixer);
}

namespace detail {
inline constexpr fnet::detail::EnumNames<DType, 4> torch_dtype_names(
    {{DType::F32, "float32"}, {DType::BF16, "bfloat16"}, {DType::F16, "float16"}, {DType::F64, "float64"}});
}  // namespace detail

/// The name config.json's "torch_dtype" gives a weight dtype: "float32", "bfloat16", "float16" or "float64".
/// Throws std::invalid_argument for the other dtypes.
inline std::string torch_dtype_name(DType dtype) {
  if (!detail::torch_dtype_names.contains(dtype))
    throw std::invalid_argument("fnet::io::torch_dtype_name: dtype " + std::string(dtype_name(dtype)) +
                                " is not a weight dtype (F32, BF16, F16 or F64)");
  return detail::torch_dtype_names.name(dtype);
}

/// config.json text for `config` as transformers' FNetConfig.save_pretrained writes it: a JSON object with
/// sorted keys, two-space indentation and a final newline, holding "model_type": "fnet", every FNetConfig
/// field under its Hugging Face name (hidden_act as its name, e.g. "gelu_new"), "torch_dtype" for
/// `weights_dtype` (the dtype the weights are stored in), "architectures" when the config lists any, and the
/// labels: "id2label" (string keys "0", "1", ...) with "label2id" when the config names its labels, else
/// "num_labels" when it is not Hugging Face's default of 2; for a mixing other than Fourier (not an FNet
/// field) "mixing", and "num_attention_heads" when not 0. parse_config reads back exactly `config`.
/// Throws std::invalid_argument when `config` is invalid (see FNetConfig::validate) or `weights_dtype` is not
/// a weight dtype.
///
///     std::string text = fnet::io::config_json(model.config(), fnet::io::DType::BF16);
inline std::string config_json(const FNetConfig& config, DType weights_dtype = DType::F32) {
  config.validate();
  nlohmann::json json = {
      {"model_type", "fnet"},
      {"vocab_size", config.vocab_size},
      {"hidden_size", config.hidden_size},
      {"num_hidden_layers", config.num_hidden_layers},
      {"intermediate_size", config.intermediate_size},
      {"hidden_act", fnet::to_string(config.hidden_act)},
      {"hidden_dropout_prob", config.hidden_dropout_prob},
      {"max_position_embeddings", config.max_position_embeddings},
      {"type_vocab_size", config.type_vocab_size},
      {"initializer_range", config.initializer_range},
      {"layer_norm_eps", config.layer_norm_eps},
      {"use_tpu_fourier_optimizations", config.use_tpu_fourier_optimizations},
      {"tpu_short_seq_length", config.tpu_short_seq_length},
      {"pad_token_id", config.pad_token_id},
      {"bos_token_id", config.bos_token_id},
      {"eos_token_id", config.eos_token_id},
      {"torch_dtype", torch_dtype_name(weights_dtype)},
  };
  if (!config.architectures.empty()) json["architectures"] = config.architectures;
  if (config.mixing != "fourier") json["mixing"] = config.mixing;
  if (config.num_attention_heads != 0) json["num_attention_heads"] = config.num_attention_heads;
  if (!config.id2label.empty()) {
    nlohmann::json id2label = nlohmann::json::object(), label2id = nlohmann::json::object();
    for (std::size_t i = 0; i < config.id2label.size(); ++i) {
      id2label[std::to_string(i)] = config.id2label[i];
      label2id[config.id2label[i]] = i;
    }
    json["id2label"] = std::move(id2label);
    json["label2id"] = std::move(label2id);
  } else if (config.num_labels != 2) {
    json["num_labels"] = config.num_labels;
  }
  try {
    return json.dump(2) + "\n";
  } catch (const nlohmann::json::exception& error) {  // a label or architecture that is not valid UTF-8
    throw std::invalid_argument(std::string("fnet::io::config_json: ") + error.what());
  }
}

/// Writes config_json(config, weights_dtype) to `path`, whole or not at all (see AtomicFile). Throws
/// FileError naming the path and the reason, std::invalid_argument as config_json.
inline void write_config(const std::string& path, const FNetConfig& config,
                         DType weights_dtype = DType::F32) {
  write_file_atomically(path, config_json(config, weights_dtype));
}

}  // namespace fnet::io
