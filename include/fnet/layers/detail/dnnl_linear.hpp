// DnnlLinear: a dense layer's weight prepacked for oneDNN's matmul in one compute type (float32, bfloat16,
// int8), and the product y = x W^T (+ b) (then an activation) on the calling thread. Only with FNET_HAS_DNNL.
// oneDNN 2.x's C API: its C++ header is several times heavier to compile and this file is in every build.
#pragma once

#include <fnet/core/compute_type.hpp>
#include <fnet/core/detail/aligned_buffer.hpp>
#include <fnet/layers/activation.hpp>
#include <fnet/layers/detail/row_kernels.hpp>

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include <Eigen/Core>

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fnet::detail {

inline void dnnl_check(dnnl_status_t status, const char* what) {
  if (status != dnnl_success)
    throw std::runtime_error(std::string("fnet: oneDNN ") + what + " failed: " + dnnl_status2str(status));
}

// The CPU engine, made once and never destroyed (primitives made on it may outlive any static order).
inline dnnl_engine_t dnnl_engine() {
  static dnnl_engine_t engine = [] {
    dnnl_engine_t made = nullptr;
    dnnl_check(dnnl_engine_create(&made, dnnl_cpu, 0), "engine creation");
    return made;
  }();
  return engine;
}

// One stream per thread: calls run on the thread that makes them.
inline dnnl_stream_t dnnl_thread_stream() {
  struct Stream {
    dnnl_stream_t handle = nullptr;
    Stream() { dnnl_check(dnnl_stream_create(&handle, dnnl_engine(), dnnl_stream_default_flags), "stream"); }
    ~Stream() { dnnl_stream_destroy(handle); }
  };
  thread_local Stream stream;
  return stream.handle;
}

// While alive, oneDNN runs on the calling thread alone. fnet parallelises over blocks fixed by the shapes
// (the same bits for every thread count) and calls oneDNN once per block; a oneDNN built on OpenMP would
// otherwise start its own team inside each of fnet's threads. The OpenMP functions are looked up at run time
// (they are in the process when oneDNN uses OpenMP, absent otherwise) and the caller's setting is restored.
class DnnlSingleThread {
 public:
  DnnlSingleThread() {
    const Functions& f = functions();
    if (f.get == nullptr || f.set == nullptr) return;
    previous_ = f.get();
    if (previous_ != 1) f.set(1);
  }
  ~DnnlSingleThread() {
    if (previous_ > 1) functions().set(previous_);
  }
  DnnlSingleThread(const DnnlSingleThread&) = delete;
  DnnlSingleThread& operator=(const DnnlSingleThread&) = delete;

 private:
  struct Functions {
    int (*get)() = nullptr;
    void (*set)(int) = nullptr;
  };
  static const Functions& functions() {
    static const Functions found = [] {
      Functions f;
      void* get = dlsym(RTLD_DEFAULT, "omp_get_max_threads");
      void* set = dlsym(RTLD_DEFAULT, "omp_set_num_threads");
      if (get != nullptr && set != nullptr) {
        std::memcpy(&f.get, &get, sizeof get);
        std::memcpy(&f.set, &set, sizeof set);
      }
      return f;
    }();
    return found;
  }
  int previous_ = 1;
};

// Owning handles of the C API.
struct DnnlPrimitiveDescDeleter {
  void operator()(dnnl_primitive_desc_t pd) const { dnnl_primitive_desc_destroy(pd); }
};
struct DnnlPrimitiveDeleter {
  void operator()(dnnl_primitive_t p) const { dnnl_primitive_destroy(p); }
};
struct DnnlMemoryDeleter {
  void operator()(dnnl_memory_t m) const { dnnl_memory_destroy(m); }
};
struct DnnlAttrDeleter {
  void operator()(dnnl_primitive_attr_t a) const { dnnl_primitive_attr_destroy(a); }
};
using DnnlPrimitiveDesc =
    std::unique_ptr<std::remove_pointer_t<dnnl_primitive_desc_t>, DnnlPrimitiveDescDeleter>;
using DnnlPrimitive = std::unique_ptr<std::remove_pointer_t<dnnl_primitive_t>, DnnlPrimitiveDeleter>;
using DnnlMemory = std::unique_ptr<std::remove_pointer_t<dnnl_memory_t>, DnnlMemoryDeleter>;
using DnnlAttr = std::unique_ptr<std::remove_pointer_t<dnnl_primitive_attr_t>, DnnlAttrDeleter>;

inline dnnl_memory_desc_t dnnl_plain_desc(dnnl_dim_t rows, dnnl_dim_t cols, dnnl_data_type_t type,
                                          dnnl_format_tag_t tag = dnnl_ab) {
  dnnl_memory_desc_t desc;
  const dnnl_dims_t dims = {rows, cols};
  dnnl_check(dnnl_memory_desc_init_by_tag(&desc, 2, dims, type, tag), "memory descriptor");
  return desc;
}

inline DnnlMemory dnnl_memory(const dnnl_memory_desc_t& desc, void* handle) {
  dnnl_memory_t made = nullptr;
  dnnl_check(dnnl_memory_create(&made, &desc, dnnl_engine(), handle), "memory object");
  return DnnlMemory(made);
}

// Copies (converting) `from` into `to` with a reorder primitive.
inline void dnnl_reorder(const dnnl_memory_desc_t& from_desc, void* from, const dnnl_memory_desc_t& to_desc,
                         void* to) {
  dnnl_primitive_desc_t made = nullptr;
  dnnl_check(
      dnnl_reorder_primitive_desc_create(&made, &from_desc, dnnl_engine(), &to_desc, dnnl_engine(), nullptr),
      "weight reorder");
  DnnlPrimitiveDesc pd(made);
  dnnl_primitive_t primitive = nullptr;
  dnnl_check(dnnl_primitive_create(&primitive, pd.get()), "weight reorder");
  DnnlPrimitive reorder(primitive);
  DnnlMemory source = dnnl_memory(from_desc, from), target = dnnl_memory(to_desc, to);
  const dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, source.get()}, {DNNL_ARG_TO, target.get()}};
  dnnl_check(dnnl_primitive_execute(reorder.get(), dnnl_thread_stream(), 2, args), "weight reorder");
  dnnl_check(dnnl_stream_wait(dnnl_thread_stream()), "weight reorder");
}

// Round-to-nearest-even float -> bfloat16 bits (NaN stays NaN).
inline std::uint16_t to_bfloat16(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>(bits >> 16);
}

// Symmetric int8 quantization of `count` values with the scale that maps their largest magnitude to 127
// (1 for an all-zero row); returns the scale. A row holding an infinity or NaN gets the scale NaN (and
// zeros), so what it multiplies comes out NaN, as in float, never a quantized garbage value.
inline float quantize_int8(const float* x, Eigen::Index count, std::int8_t* q) {
  // The largest magnitude with Eigen's vectorised reduction (NaN propagated, so one check catches both
  // kinds); then a loop the compiler vectorises: adding and subtracting 1.5 * 2^23 rounds to nearest, ties to
  // even, for |v| <= 2^22, and every v here is within [-127.5, 127.5].
  const float largest =
      Eigen::Map<const Eigen::ArrayXf>(x, count).abs().template maxCoeff<Eigen::PropagateNaN>();
  if (!(largest <= std::numeric_limits<float>::max())) {
    std::fill_n(q, count, std::int8_t{0});
    return std::numeric_limits<float>::quiet_NaN();
  }
  const float scale = largest > 0 ? largest / 127.0f : 1.0f;
  const float inverse = 1.0f / scale;
  constexpr float kRound = 12582912.0f;
  for (Eigen::Index k = 0; k < count; ++k) {
    const float v = (x[k] * inverse + kRound) - kRound;
    q[k] = static_cast<std::int8_t>(static_cast<int>(std::min(127.0f, std::max(-127.0f, v))));
  }
  return scale;
}

class DnnlLinear {
 public:
  // Packs `weight` ([out, in] row-major, as fnet::Dense stores it) for `type`.
  DnnlLinear(const float* weight, Eigen::Index out, Eigen::Index in, ComputeType type)
      : out_(out), in_(in), type_(type) {
    const DnnlSingleThread single;
    // The layout oneDNN prefers for this weight; it depends on the weight's shape and type, not the rows.
    const DnnlPrimitiveDesc probe = make_desc(kProbeRows, nullptr, /*bias=*/true, /*any_weights=*/true);
    weights_desc_ = *dnnl_primitive_desc_query_md(probe.get(), dnnl_query_weights_md, 0);
    packed_.reserve(dnnl_memory_desc_get_size(&weights_desc_));
    // The weight seen as the {in, out} matrix x W^T multiplies: stored [out, in] is tag "ba".
    const dnnl_memory_desc_t plain = dnnl_plain_desc(in, out, dnnl_f32, dnnl_ba);
    if (type == ComputeType::int8) {
      scales_.resize(static_cast<std::size_t>(out));
      std::vector<std::int8_t> quantized(static_cast<std::size_t>(out * in));
      for (Eigen::Index n = 0; n < out; ++n)
        scales_[static_cast<std::size_t>(n)] = quantize_int8(weight + n * in, in, quantized.data() + n * in);
      const dnnl_memory_desc_t plain_s8 = dnnl_plain_desc(in, out, dnnl_s8, dnnl_ba);
      dnnl_reorder(plain_s8, quantized.data(), weights_desc_, packed_.data());
    } else {
      dnnl_reorder(plain, const_cast<float*>(weight), weights_desc_, packed_.data());
    }
  }

  DnnlLinear(const DnnlLinear&) = delete;
  DnnlLinear& operator=(const DnnlLinear&) = delete;

  ComputeType type() const { return type_; }

  // Bytes of the packed weight and its scales.
  std::size_t bytes() const {
    return dnnl_memory_desc_get_size(&weights_desc_) + scales_.size() * sizeof(float);
  }

  // The weight back as [out, in] row-major float: exact for float32, the bfloat16 values for bfloat16, the
  // dequantized values for int8.
  void unpack(float* weight) const {
    const DnnlSingleThread single;
    if (type_ == ComputeType::int8) {
      std::vector<std::int8_t> quantized(static_cast<std::size_t>(out_ * in_));
      dnnl_reorder(weights_desc_, packed_.data(), dnnl_plain_desc(in_, out_, dnnl_s8, dnnl_ba),
                   quantized.data());
      for (Eigen::Index n = 0; n < out_; ++n)
        for (Eigen::Index k = 0; k < in_; ++k)
          weight[n * in_ + k] = static_cast<float>(quantized[static_cast<std::size_t>(n * in_ + k)]) *
                                scales_[static_cast<std::size_t>(n)];
    } else {
      dnnl_reorder(weights_desc_, packed_.data(), dnnl_plain_desc(in_, out_, dnnl_f32, dnnl_ba), weight);
    }
  }

  // y = x W^T (+ bias when not null) (then `activation` when not null) for `rows` rows; x [rows, in] and y
  // [rows, out] contiguous. On the calling thread, in chunks of at most kMaxRows rows, so a layer makes at
  // most kMaxRows primitives per epilogue (once each) and a row's result depends on its place in the call
  // only. Allocates only its per-thread scratch, the first time a size is seen.
  void run(const float* x, Eigen::Index rows, float* y, const float* bias,
           const Activation* activation) const {
    const DnnlSingleThread single;
    for (Eigen::Index first = 0; first < rows; first += kMaxRows)
      run_chunk(x + first * in_, std::min(kMaxRows, rows - first), y + first * out_, bias, activation);
  }

 private:
  struct Primitive {
    DnnlPrimitive handle;
    dnnl_memory_desc_t scratch_desc;
    std::size_t scratch_bytes = 0;
  };

  void run_chunk(const float* x, Eigen::Index rows, float* y, const float* bias,
                 const Activation* activation) const {
    const Primitive& primitive = primitive_for(rows, bias != nullptr, activation);
    thread_local AlignedBuffer<float> converted_input, scratchpad, row_scales;
    const void* source = x;
    float* scale = nullptr;
    if (type_ == ComputeType::bfloat16) {
      auto* converted = reinterpret_cast<std::uint16_t*>(
          converted_input.reserve(static_cast<std::size_t>(rows * in_ + 1) / 2));
      for (Eigen::Index i = 0; i < rows * in_; ++i) converted[i] = to_bfloat16(x[i]);
      source = converted;
    } else if (type_ == ComputeType::int8) {
      auto* quantized = reinterpret_cast<std::int8_t*>(
          converted_input.reserve(static_cast<std::size_t>(rows * in_ + 3) / 4));
      scale = row_scales.reserve(static_cast<std::size_t>(rows));
      for (Eigen::Index r = 0; r < rows; ++r) scale[r] = quantize_int8(x + r * in_, in_, quantized + r * in_);
      source = quantized;
    }
    const dnnl_memory_desc_t source_desc = dnnl_plain_desc(rows, in_, data_type());
    const dnnl_memory_desc_t target_desc = dnnl_plain_desc(rows, out_, dnnl_f32);
    const dnnl_memory_desc_t bias_desc = dnnl_plain_desc(1, out_, dnnl_f32);
    DnnlMemory source_memory = dnnl_memory(source_desc, const_cast<void*>(source));
    DnnlMemory weight_memory = dnnl_memory(weights_desc_, const_cast<char*>(packed_.data()));
    DnnlMemory target_memory = dnnl_memory(target_desc, y);
    void* scratch = scratchpad.reserve(primitive.scratch_bytes / sizeof(float) + 1);
    DnnlMemory scratch_memory = dnnl_memory(primitive.scratch_desc, scratch);
    std::vector<dnnl_exec_arg_t> args = {{DNNL_ARG_SRC, source_memory.get()},
                                         {DNNL_ARG_WEIGHTS, weight_memory.get()},
                                         {DNNL_ARG_DST, target_memory.get()},
                                         {DNNL_ARG_SCRATCHPAD, scratch_memory.get()}};
    DnnlMemory bias_memory;
    if (bias != nullptr && type_ != ComputeType::int8) {
      bias_memory = dnnl_memory(bias_desc, const_cast<float*>(bias));
      args.push_back({DNNL_ARG_BIAS, bias_memory.get()});
    }
    dnnl_check(dnnl_primitive_execute(primitive.handle.get(), dnnl_thread_stream(),
                                      static_cast<int>(args.size()), args.data()),
               "matmul");
    dnnl_check(dnnl_stream_wait(dnnl_thread_stream()), "matmul");
    if (type_ == ComputeType::int8) {
      // y holds acc * weight scale; the row's input scale, the bias and the activation follow.
      for (Eigen::Index r = 0; r < rows; ++r) Eigen::Map<Eigen::ArrayXf>(y + r * out_, out_) *= scale[r];
      if (activation != nullptr && bias != nullptr)
        bias_activation_rows<float>(y, rows, out_, bias, *activation);
      else if (activation != nullptr)
        activation_rows<float>(y, y, rows, out_, *activation);
      else if (bias != nullptr)
        for (Eigen::Index r = 0; r < rows; ++r)
          for (Eigen::Index n = 0; n < out_; ++n) y[r * out_ + n] += bias[n];
    }
  }

  dnnl_data_type_t data_type() const {
    return type_ == ComputeType::float32 ? dnnl_f32 : type_ == ComputeType::bfloat16 ? dnnl_bf16 : dnnl_s8;
  }

  DnnlPrimitiveDesc make_desc(Eigen::Index rows, const Activation* activation, bool bias,
                              bool any_weights) const {
    const dnnl_memory_desc_t source = dnnl_plain_desc(rows, in_, data_type());
    const dnnl_memory_desc_t weights =
        any_weights ? dnnl_plain_desc(in_, out_, data_type(), dnnl_format_tag_any) : weights_desc_;
    const dnnl_memory_desc_t bias_desc = dnnl_plain_desc(1, out_, dnnl_f32);
    const dnnl_memory_desc_t target = dnnl_plain_desc(rows, out_, dnnl_f32);
    // int8 adds its bias after the dequantization, in run().
    const bool fused_bias = bias && type_ != ComputeType::int8;
    dnnl_matmul_desc_t desc;
    dnnl_check(dnnl_matmul_desc_init(&desc, &source, &weights, fused_bias ? &bias_desc : nullptr, &target),
               "matmul descriptor");
    dnnl_primitive_attr_t made_attr = nullptr;
    dnnl_check(dnnl_primitive_attr_create(&made_attr), "attributes");
    DnnlAttr attr(made_attr);
    dnnl_check(dnnl_primitive_attr_set_scratchpad_mode(attr.get(), dnnl_scratchpad_mode_user), "attributes");
    if (type_ == ComputeType::int8) {
      // The weight scales need not be known to choose the layout: the probe uses ones.
      const std::vector<float> ones(static_cast<std::size_t>(out_), 1.0f);
      const std::vector<float>& scales = scales_.empty() ? ones : scales_;
      dnnl_check(dnnl_primitive_attr_set_output_scales(attr.get(), out_, 1 << 1, scales.data()),
                 "weight scales");
    } else if (activation != nullptr) {
      dnnl_post_ops_t post_ops = nullptr;
      dnnl_check(dnnl_post_ops_create(&post_ops), "post-ops");
      const dnnl_alg_kind_t kind = *activation == Activation::gelu       ? dnnl_eltwise_gelu_erf
                                   : *activation == Activation::gelu_new ? dnnl_eltwise_gelu_tanh
                                                                         : dnnl_eltwise_relu;
      const dnnl_status_t appended = dnnl_post_ops_append_eltwise(post_ops, 1.0f, kind, 0.0f, 0.0f);
      const dnnl_status_t set = dnnl_primitive_attr_set_post_ops(attr.get(), post_ops);
      dnnl_post_ops_destroy(post_ops);
      dnnl_check(appended, "activation post-op");
      dnnl_check(set, "activation post-op");
    }
    dnnl_primitive_desc_t made = nullptr;
    dnnl_check(dnnl_primitive_desc_create(&made, &desc, attr.get(), dnnl_engine(), nullptr),
               "matmul primitive descriptor");
    return DnnlPrimitiveDesc(made);
  }

  const Primitive& primitive_for(Eigen::Index rows, bool bias, const Activation* activation) const {
    const std::uint64_t key = static_cast<std::uint64_t>(rows) << 4 | (bias ? 1u : 0u) << 3 |
                              (activation == nullptr ? 0u : 1u + static_cast<unsigned>(*activation));
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = primitives_.find(key);
    if (found != primitives_.end()) return *found->second;
    DnnlPrimitiveDesc pd = make_desc(rows, activation, bias, /*any_weights=*/false);
    auto made = std::make_unique<Primitive>();
    made->scratch_desc = *dnnl_primitive_desc_query_md(pd.get(), dnnl_query_scratchpad_md, 0);
    made->scratch_bytes = dnnl_memory_desc_get_size(&made->scratch_desc);
    dnnl_primitive_t primitive = nullptr;
    dnnl_check(dnnl_primitive_create(&primitive, pd.get()), "matmul primitive");
    made->handle.reset(primitive);
    return *primitives_.emplace(key, std::move(made)).first->second;
  }

  static constexpr Eigen::Index kProbeRows = 32;
  static constexpr Eigen::Index kMaxRows = 64;

  Eigen::Index out_, in_;
  ComputeType type_;
  dnnl_memory_desc_t weights_desc_{};
  AlignedBuffer<char> packed_;
  std::vector<float> scales_;  // int8: one per output feature
  mutable std::mutex mutex_;
  mutable std::map<std::uint64_t, std::unique_ptr<Primitive>> primitives_;  // by rows and epilogue
};

// Why `type` cannot run on this CPU, or nothing when it can. bfloat16 needs oneDNN's AVX-512 kernels (oneDNN
// 2.x has no bfloat16 matmul for AVX2). int8 needs VNNI: without it oneDNN multiplies int8 with 16-bit
// intermediate sums, which saturate, and misses int8's documented bound by several times (measured: 0.17
// against 0.06 on an AVX2 CPU). Then a small weight is packed and one row run through it with a bias and an
// activation, in case a kernel is missing anyway. Decided once per type.
inline const char* dnnl_refusal(ComputeType type) {
  const auto decide = [](ComputeType tried) -> const char* {
    const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    const auto has = [isa](dnnl_cpu_isa_t wanted) { return (isa & wanted) == wanted; };
    if (tried == ComputeType::bfloat16 && !has(dnnl_cpu_isa_avx512_core))
      return "has no oneDNN kernel on this CPU (oneDNN 2.x runs bfloat16 products on AVX-512 CPUs only)";
    if (tried == ComputeType::int8 && !has(dnnl_cpu_isa_avx512_core_vnni) && !has(dnnl_cpu_isa_avx2_vnni))
      return "needs VNNI (AVX512_VNNI or AVX_VNNI), which this CPU lacks: without it oneDNN's int8 products "
             "miss int8's accuracy bound";
    try {
      constexpr Eigen::Index kSize = 16;
      const std::vector<float> weight(kSize * kSize, 0.5f), x(kSize, 1.0f), bias(kSize, 0.0f);
      std::vector<float> y(kSize);
      const DnnlLinear layer(weight.data(), kSize, kSize, tried);
      const Activation activation = Activation::gelu_new;
      layer.run(x.data(), 1, y.data(), bias.data(), &activation);
      return nullptr;
    } catch (const std::runtime_error&) {
      return "has no oneDNN kernel on this CPU";
    }
  };
  static const char* const float32 = decide(ComputeType::float32);
  static const char* const bfloat16 = decide(ComputeType::bfloat16);
  static const char* const int8 = decide(ComputeType::int8);
  return type == ComputeType::float32 ? float32 : type == ComputeType::bfloat16 ? bfloat16 : int8;
}

}  // namespace fnet::detail
