// The mixing contract: what a token-mixing sublayer provides so that an EncoderLayer (and with it an
// Encoder and a Model) runs, trains, saves and loads it, and the trait that checks a type against it.
#pragma once

#include <fnet/core/compute_type.hpp>
#include <fnet/core/gradients.hpp>
#include <fnet/core/parameter.hpp>
#include <fnet/model/encoder_config.hpp>

#include <Eigen/Core>

#include <cstddef>
#include <type_traits>
#include <utility>

namespace fnet {

/// Which call a mixer's scratch is sized for (see the contract below).
enum class MixingPass {
  forward,           ///< the inference forward
  training_forward,  ///< the training forward
  backward,          ///< the backward pass
};

/// The sizes of one mixing call: `batch` items of `seq` tokens of `hidden` features, and the intra-op threads
/// the call may use.
struct MixingShape {
  std::size_t batch = 1;
  Eigen::Index seq = 1;
  Eigen::Index hidden = 1;
  int threads = 1;

  std::size_t tokens() const { return batch * static_cast<std::size_t>(seq); }
  std::size_t elements() const { return tokens() * static_cast<std::size_t>(hidden); }
};

/// One forward (or training forward) call: mix the tokens of each of shape.batch items of x, row-major
/// (batch, seq, hidden), into out, of the same dims.
template <class Scalar>
struct MixingCall {
  const Scalar* x = nullptr;  ///< the input; never overlaps out
  Scalar* out = nullptr;      ///< out = mix(x), or x + mix(x) with add_input
  MixingShape shape;
  bool add_input = false;     ///< add the input to the output (an encoder layer's residual, fused)
  Scalar* scratch = nullptr;  ///< scratch_size(pass, shape) Scalars, 64-byte aligned, contents undefined
};

/// One backward call: for the upstream gradient dy of the forward's out, the gradient dx of its x.
template <class Scalar>
struct MixingGradientCall {
  const Scalar* dy = nullptr;  ///< (batch, seq, hidden); never overlaps dx
  Scalar* dx = nullptr;        ///< dx = J^T dy, or dy + J^T dy with add_upstream
  MixingShape shape;
  bool add_upstream = false;  ///< add dy to dx (the residual's share of an encoder layer's gradient)
  Scalar* scratch = nullptr;  ///< scratch_size(MixingPass::backward, shape) Scalars, as above
};

// clang-format off
/// # The mixing contract
///
/// A token-mixing sublayer (a *mixer*) is what an FNet or BERT encoder layer puts between its input and its
/// first LayerNorm: `h = LayerNorm(x + mix(x))`. fnet::FourierMixing and fnet::MultiHeadAttention are
/// mixers; so is any class of yours, in any namespace, with these members (M a mixer, m an M):
///
/// | member | what it does |
/// |---|---|
/// | `using Scalar = float;` (or double) | the type it computes in: the layer's |
/// | `explicit M(const fnet::EncoderConfig&, args...)` | built from the layer's configuration; `args` are the extra arguments given to the layer's (encoder's, model's) constructor, none required |
/// | `static const char* name()` | its module in checkpoints and its `mixing` in config.json (a lowercase name: letters, digits, `_`): the mixing LayerNorm is `<name>.output.LayerNorm`, its parameters `<name>.<parameter>` |
/// | `void check_sequence(const char* owner, Eigen::Index seq) const` | throws std::invalid_argument (message starting with `owner`) when it cannot mix sequences of `seq` tokens; else nothing |
/// | `std::size_t scratch_size(fnet::MixingPass, const fnet::MixingShape&) const` | Scalars of scratch each call needs |
/// | `template <class RowDone> void forward(const fnet::MixingCall<Scalar>&, RowDone&& row_done) const` | the inference forward; calls row_done(item, n) once for each output row, as soon as it is final |
/// | `void forward_train(const fnet::MixingCall<Scalar>&, Cache&) const` | the same output, keeping in a Cache what backward needs |
/// | `void backward(const fnet::MixingGradientCall<Scalar>&, const Cache&, fnet::Gradients<Scalar>&) const` | dx from dy; adds (+=) the gradient of each parameter p into gradients.of(p.data) |
/// | `class Cache` | default-constructible, movable, with `std::size_t bytes() const` (an empty class when nothing is kept) |
/// | `template <class Self, class Visitor> static void visit_parameters(Self& self, Visitor&& visit)` | the parameter walk: visit(fnet::parameter("name", storage, init)) for each parameter, Self being M or const M (see fnet::visit_parameters); nothing for a mixer without parameters |
/// | `void prepack(fnet::ComputeType)`, `void unpack()` | prepare for inference in a compute type, and back to float (a mixer that always runs in float does nothing) |
///
/// Optional: `void check_parameters(const char* owner, const fnet::ParameterPath& path) const`, which throws
/// std::invalid_argument naming `path` + the parameter whose shape no longer matches the configuration; the
/// layer calls it before each call when the mixer has it.
///
/// What the layer guarantees and expects:
/// - **Memory.** x and out (dy and dx) are distinct arrays of shape.elements() Scalars. `scratch` holds
///   scratch_size() Scalars for that pass and shape, 64-byte aligned, uninitialised, and belongs to the call.
///   forward and forward_train write every element of out; backward writes every element of dx.
/// - **Fusing.** row_done(item, n) lets the layer normalise each finished row while it is hot in cache. Call
///   it once per row, after the row's last write, from any thread; a mixer that finishes all rows at once
///   calls it for every row at the end.
/// - **Threads.** The calls are const. The layer may run calls on one mixer from many threads at once, each
///   with its own scratch and cache: mutable state (a cache of twiddles, plans) must be thread-safe. Inside a
///   call, use up to shape.threads threads through fnet::parallel_for, with chunks fixed by the shape, so
///   that results are the same bits for every thread count (the library promises that of every layer).
/// - **Gradients.** forward_train and backward see the same shape and the cache that forward_train filled;
///   backward accumulates, it never overwrites a parameter gradient.
/// - **Parameters.** The walk's names are Hugging Face's relative to the mixer; the layer prefixes them with
///   name() + ".". initialize() fills them as their ParameterInit says, in walk order; the gradients, the
///   optimiser and checkpoints all follow the walk.
///
/// fnet::is_mixer_v<M> is true when M has every required member; EncoderLayer<Scalar, M> names the first
/// missing one in a static_assert. examples/custom_mixer.cpp is a whole mixer, trained, saved and loaded.
///
///     struct TokenMean { ... };                           // the members above
///     static_assert(fnet::is_mixer_v<TokenMean>);
///     fnet::Model<float, TokenMean> model(config, {false, fnet::Classifier::sequence});
// clang-format on

namespace detail::mixer {

// What a required member is tested with: a row callback and a parameter visitor of unnamed types.
struct RowDone {
  void operator()(std::size_t, Eigen::Index) const {}
};
struct Visitor {
  template <class T>
  void operator()(const NamedParameter<T>&) const {}
};

// detect<M, Op>: whether Op<M> is a valid type (the expression it names compiles).
template <class M, template <class> class Op, class = void>
struct detect : std::false_type {};
template <class M, template <class> class Op>
struct detect<M, Op, std::void_t<Op<M>>> : std::true_type {};

template <class M, class = void>
struct scalar_of {
  using type = void;
};
template <class M>
struct scalar_of<M, std::void_t<typename M::Scalar>> {
  using type = typename M::Scalar;
};
template <class M, class = void>
struct cache_of {
  using type = void;
};
template <class M>
struct cache_of<M, std::void_t<typename M::Cache>> {
  using type = typename M::Cache;
};
template <class M>
using S = typename scalar_of<M>::type;
template <class M>
using C = typename cache_of<M>::type;

// The members, one expression each.
template <class M>
using name_member = decltype(static_cast<const char*>(M::name()));
template <class M>
using check_sequence_member = decltype(std::declval<const M&>().check_sequence("", Eigen::Index{1}));
template <class M>
using scratch_size_member = decltype(static_cast<std::size_t>(
    std::declval<const M&>().scratch_size(MixingPass::forward, std::declval<const MixingShape&>())));
template <class M>
using cache_bytes_member = decltype(static_cast<std::size_t>(std::declval<const C<M>&>().bytes()));
template <class M>
using forward_member = decltype(std::declval<const M&>().forward(std::declval<const MixingCall<S<M>>&>(),
                                                                 std::declval<RowDone&>()));
template <class M>
using forward_train_member = decltype(std::declval<const M&>().forward_train(
    std::declval<const MixingCall<S<M>>&>(), std::declval<C<M>&>()));
template <class M>
using backward_member = decltype(std::declval<const M&>().backward(
    std::declval<const MixingGradientCall<S<M>>&>(), std::declval<const C<M>&>(),
    std::declval<Gradients<S<M>>&>()));
template <class M>
using walk_member = decltype(M::visit_parameters(std::declval<M&>(), std::declval<Visitor&>()),
                             M::visit_parameters(std::declval<const M&>(), std::declval<Visitor&>()));
template <class M>
using prepack_member =
    decltype(std::declval<M&>().prepack(ComputeType::float32), std::declval<M&>().unpack());
template <class M>
using check_parameters_member =
    decltype(std::declval<const M&>().check_parameters("", std::declval<const ParameterPath&>()));

template <class M>
inline constexpr bool has_scalar = std::is_same_v<S<M>, float> || std::is_same_v<S<M>, double>;
template <class M>
inline constexpr bool has_cache = !std::is_void_v<C<M>> && detect<M, cache_bytes_member>::value &&
                                  std::is_default_constructible_v<C<M>> && std::is_move_constructible_v<C<M>>;
template <class M>
inline constexpr bool has_check_parameters = detect<M, check_parameters_member>::value;

// Each requirement with the message that names it, in the order the contract lists them: instantiating
// Check<M> (an EncoderLayer over M does) reports every member M lacks.
template <class M>
struct Check {
  static_assert(has_scalar<M>,
                "fnet mixing contract: the mixer has no `using Scalar = float;` (or double) "
                "(see <fnet/mixing/mixer.hpp>)");
  static_assert(std::is_constructible_v<M, const EncoderConfig&>,
                "fnet mixing contract: the mixer has no constructor M(const fnet::EncoderConfig&)");
  static_assert(detect<M, name_member>::value,
                "fnet mixing contract: the mixer has no `static const char* name()`");
  static_assert(detect<M, check_sequence_member>::value,
                "fnet mixing contract: the mixer has no "
                "`void check_sequence(const char* owner, Eigen::Index seq) const`");
  static_assert(detect<M, scratch_size_member>::value,
                "fnet mixing contract: the mixer has no "
                "`std::size_t scratch_size(fnet::MixingPass, const fnet::MixingShape&) const`");
  static_assert(has_cache<M>,
                "fnet mixing contract: the mixer has no `class Cache` (default-constructible, movable, with "
                "`std::size_t bytes() const`)");
  static_assert(detect<M, forward_member>::value,
                "fnet mixing contract: the mixer has no "
                "`template <class RowDone> void forward(const fnet::MixingCall<Scalar>&, RowDone&&) const`");
  static_assert(detect<M, forward_train_member>::value,
                "fnet mixing contract: the mixer has no "
                "`void forward_train(const fnet::MixingCall<Scalar>&, Cache&) const`");
  static_assert(
      detect<M, backward_member>::value,
      "fnet mixing contract: the mixer has no `void backward(const fnet::MixingGradientCall<Scalar>&, "
      "const Cache&, fnet::Gradients<Scalar>&) const`");
  static_assert(detect<M, walk_member>::value,
                "fnet mixing contract: the mixer has no "
                "`template <class Self, class Visitor> static void visit_parameters(Self&, Visitor&&)`");
  static_assert(
      detect<M, prepack_member>::value,
      "fnet mixing contract: the mixer has no `void prepack(fnet::ComputeType)` and `void unpack()`");
  static constexpr bool value = true;
};

}  // namespace detail::mixer

/// True when M meets the mixing contract above (every required member, with its signature).
template <class M>
inline constexpr bool is_mixer_v = detail::mixer::has_scalar<M>&& std::is_constructible_v<
    M, const EncoderConfig&>&& detail::mixer::detect<M, detail::mixer::name_member>::value&&
    detail::mixer::detect<M, detail::mixer::check_sequence_member>::value&&
        detail::mixer::detect<M, detail::mixer::scratch_size_member>::value&& detail::mixer::has_cache<M>&&
            detail::mixer::detect<M, detail::mixer::forward_member>::value&&
                detail::mixer::detect<M, detail::mixer::forward_train_member>::value&&
                    detail::mixer::detect<M, detail::mixer::backward_member>::value&&
                        detail::mixer::detect<M, detail::mixer::walk_member>::value&&
                            detail::mixer::detect<M, detail::mixer::prepack_member>::value;

}  // namespace fnet
