// load_pretrained: an FNetModel (or a model of another mixing) from a Hugging Face checkpoint directory
// (config.json + safetensors).
#pragma once

#include <fnet/core/compute_type.hpp>
#include <fnet/io/checkpoint.hpp>
#include <fnet/io/config.hpp>
#include <fnet/io/error.hpp>
#include <fnet/model/model.hpp>

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace fnet::io {

/// Which heads a checkpoint carries: "cls.predictions.*" means the masked-LM head (FNetForMaskedLM),
/// "cls.seq_relationship.*" the next-sentence head (FNetForNextSentencePrediction), both the two of
/// FNetForPreTraining; "qa_outputs.*" a question-answering head, "classifier.*" a classifier (token
/// classification when config.json's architectures says FNetForTokenClassification, multiple choice when it
/// says FNetForMultipleChoice, else sequence). A checkpoint with either pre-training head whose config.json
/// says FNetForPreTraining is expected to hold both (loading then names the missing tensor). The result is
/// resolved (FNetHeads::resolved).
inline FNetHeads detect_heads(const Checkpoint& checkpoint, const FNetConfig& config) {
  FNetHeads heads;
  for (const auto& name : checkpoint.names()) {
    if (name.rfind("cls.predictions.", 0) == 0) heads.masked_lm = true;
    if (name.rfind("cls.seq_relationship.", 0) == 0) heads.next_sentence = true;
    if (name.rfind("classifier.", 0) == 0)
      heads.classifier = config.is_token_classifier()                         ? Classifier::token
                         : config.lists_architecture("FNetForMultipleChoice") ? Classifier::multiple_choice
                                                                              : Classifier::sequence;
    if (name.rfind("qa_outputs.", 0) == 0) heads.classifier = Classifier::question_answering;
  }
  if ((heads.masked_lm || heads.next_sentence) && config.lists_architecture("FNetForPreTraining"))
    heads.masked_lm = heads.next_sentence = true;
  return heads.resolved();
}

namespace detail {

// Reads every parameter of `model` from `checkpoint`. A missing tensor throws, unless it belongs to a head
// and `missing_heads` is not null: then the parameter keeps its value and its name is appended there. Checks
// the tied decoder's shapes and that no base-model tensor is left without a place in the model.
template <class Model>
void read_parameters(Model& model, const Checkpoint& checkpoint, const std::string& directory,
                     std::vector<std::string>* missing_heads) {
  const FNetConfig& config = model.config();
  std::set<std::string> expected;
  fnet::visit_parameters(model, [&](const auto& parameter) {
    if (!checkpoint.contains(parameter.name)) {
      if (is_head_parameter(parameter.name) && missing_heads != nullptr) {
        missing_heads->push_back(parameter.name);
        return;
      }
      throw FormatError("checkpoint in '" + directory + "' lacks tensor '" + parameter.name + "' (shape " +
                        shape_string(parameter.shape) + " for this config.json)");
    }
    checkpoint.read_into(parameter.name, parameter.shape, parameter.data);
    expected.insert(parameter.name);
  });

  // The tied decoder, when saved, must at least agree with the shapes it is tied to.
  const auto check_tied = [&](const std::string& name, const std::vector<std::size_t>& shape) {
    if (checkpoint.contains(name) && checkpoint.at(name).shape != shape)
      throw FormatError("tensor '" + name + "' in '" + checkpoint.file_of(name) + "' has shape " +
                        shape_string(checkpoint.at(name).shape) + " but config.json implies " +
                        shape_string(shape));
  };
  check_tied("cls.predictions.decoder.weight", {config.vocab_size, config.hidden_size});
  check_tied("cls.predictions.decoder.bias", {config.vocab_size});

  // A base-model tensor with no place in the model means config.json and the weights disagree (for instance
  // more layers than num_hidden_layers); heads the model was not made with are simply not used.
  for (const auto& name : checkpoint.names()) {
    const bool base =
        name.rfind("embeddings.", 0) == 0 || name.rfind("encoder.", 0) == 0 || name.rfind("pooler.", 0) == 0;
    if (base && expected.count(name) == 0)
      throw FormatError("tensor '" + name + "' in '" + checkpoint.file_of(name) +
                        "' has no place in an FNet with this config.json (num_hidden_layers " +
                        std::to_string(config.num_hidden_layers) + ")");
  }
}

inline bool has_weights(const std::string& directory) {
  return file_exists(join_path(directory, "model.safetensors")) ||
         file_exists(join_path(directory, "model.safetensors.index.json"));
}

}  // namespace detail

/// load_pretrained for a model of any mixing: `ModelType` is an fnet::Model such as
/// fnet::TransformerModel<float> (config.json's "mixing" must name its mixing), made with
/// `mixing_args`. Throws as load_pretrained does.
///
///     auto bert = fnet::io::load_pretrained_as<fnet::TransformerModel<float>>("bert-sized");
template <class ModelType, class... MixingArgs>
ModelType load_pretrained_as(const std::string& directory, const MixingArgs&... mixing_args) {
  const FNetConfig config =
      read_config(detail::join_path(directory, "config.json"), ModelType::Mixer::name());
  const Checkpoint checkpoint = Checkpoint::open(directory);
  ModelType model(config, detect_heads(checkpoint, config), mixing_args...);
  detail::read_parameters(model, checkpoint, directory, nullptr);
  return model;
}

/// Reads `directory`/config.json and the weights (model.safetensors, or shards via
/// model.safetensors.index.json), and returns the model with every parameter converted straight from the
/// memory-mapped file into its storage. Tensor names may carry the "fnet." prefix or not. The heads are
/// those the checkpoint has (detect_heads): a masked-LM checkpoint (FNetForMaskedLM) gives a model with the
/// masked-LM head alone, a next-sentence one (FNetForNextSentencePrediction) the next-sentence head alone.
/// The tied MLM decoder may be absent. Buffers are ignored. Throws FileError (a missing or unreadable file)
/// or FormatError naming the file and the tensor: malformed files, a missing tensor, a shape that disagrees
/// with config.json, a non-float weight, or a tensor of the base model (embeddings / encoder / pooler) the
/// configuration has no place for.
///
///     auto model = fnet::io::load_pretrained<float>("fnet-base");          // fnet::fft::Default backend
///     auto out = model.forward(ids);
template <class Scalar, class Backend = fft::Default>
FNetModel<Scalar, Backend> load_pretrained(const std::string& directory, Backend backend = Backend()) {
  return load_pretrained_as<FNetModel<Scalar, Backend>>(directory, std::move(backend));
}

/// load_pretrained_as, then the model prepacked for inference in `type` (see fnet::ComputeType and
/// Model::prepack). Throws std::invalid_argument, before reading any weight, when this build cannot run
/// `type`.
///
///     auto model = fnet::io::load_for_inference_as<fnet::FNetModel<float>>("fnet-base",
///                                                                         fnet::ComputeType::bfloat16);
template <class ModelType, class... MixingArgs>
ModelType load_for_inference_as(const std::string& directory, ComputeType type,
                                const MixingArgs&... mixing_args) {
  fnet::detail::check_compute_type<typename ModelType::Scalar>("fnet::io::load_for_inference", type);
  ModelType model = load_pretrained_as<ModelType>(directory, mixing_args...);
  model.prepack(type);
  return model;
}

/// load_pretrained, then the model prepacked for inference in `type`: its dense layers hold only the packed
/// weights (bfloat16 halves their memory, int8 quarters it). Throws as load_pretrained does, and
/// std::invalid_argument when this build cannot run `type` (the reduced types need FNET_WITH_DNNL).
///
///     auto model = fnet::io::load_for_inference<float>("fnet-base", fnet::ComputeType::int8);
///     auto out = model.forward(ids);
template <class Scalar, class Backend = fft::Default>
FNetModel<Scalar, Backend> load_for_inference(const std::string& directory, ComputeType type,
                                              Backend backend = Backend()) {
  return load_for_inference_as<FNetModel<Scalar, Backend>>(directory, type, std::move(backend));
}

/// load_for_training for a model of any mixing (see load_pretrained_as), made with `mixing_args`.
///
///     auto bert = fnet::io::load_for_training_as<fnet::TransformerModel<float>>(
///         "from-scratch", config, {false, fnet::Classifier::sequence}, 42);
template <class ModelType, class... MixingArgs>
ModelType load_for_training_as(const std::string& directory, const FNetConfig& config, FNetHeads heads,
                               std::uint64_t seed, std::vector<std::string>* initialized = nullptr,
                               const MixingArgs&... mixing_args) {
  ModelType model(config, heads, mixing_args...);
  model.initialize(seed);
  std::vector<std::string> missing;
  if (detail::has_weights(directory)) {
    const Checkpoint checkpoint = Checkpoint::open(directory);
    detail::read_parameters(model, checkpoint, directory, &missing);
  } else {
    fnet::visit_parameters(model, [&](const auto& parameter) { missing.push_back(parameter.name); });
  }
  if (initialized != nullptr) initialized->insert(initialized->end(), missing.begin(), missing.end());
  return model;
}

/// For training: a model with `heads` and configuration `config` (config.json as read, possibly changed, e.g.
/// num_labels for a new classifier), its parameters from the checkpoint in `directory` where it has them.
/// First every parameter is initialised as Hugging Face initialises a fresh model (FNetModel::initialize with
/// `seed`: N(0, initializer_range) weights, zero biases, LayerNorm ones/zeros); then every tensor the
/// checkpoint has is read over it. So a head the checkpoint lacks (a classifier on a pre-trained encoder)
/// starts as a new head does, and heads the checkpoint has but `heads` does not ask for are ignored;
/// base-model tensors must all be present. A directory without weights (config.json alone) gives the freshly
/// initialised model: training from scratch. The names of parameters that were initialised rather than read
/// are appended to `initialized` when it is not null. Throws as load_pretrained does, naming a tensor whose
/// shape differs from `config` (a classifier saved with other num_labels, say).
///
///     auto config = fnet::io::read_config("fnet-base/config.json");
///     config.num_labels = 3;
///     auto model = fnet::io::load_for_training<float>("fnet-base", config, {false,
///     fnet::Classifier::sequence}, 42);
template <class Scalar, class Backend = fft::Default>
FNetModel<Scalar, Backend> load_for_training(const std::string& directory, const FNetConfig& config,
                                             FNetHeads heads, std::uint64_t seed,
                                             std::vector<std::string>* initialized = nullptr,
                                             Backend backend = Backend()) {
  return load_for_training_as<FNetModel<Scalar, Backend>>(directory, config, heads, seed, initialized,
                                                          std::move(backend));
}

}  // namespace fnet::io
