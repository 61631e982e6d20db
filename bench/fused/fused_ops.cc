// Two fused kernels for squeezenli's int8 graph, as an onnxruntime custom-op library (an
// experiment measured by bench/fused/measure.py; not part of the package).
//
//   RowQuantize(x [T,K] float) -> q [T,K] uint8, s [T,1] float
//       s = max(max|x_row|, 1e-30) / 127;  q = saturate(round_half_even(x / s) + 128)
//     replaces Abs, ReduceMax, Max, Div, Shape, Expand, QuantizeLinear and Unsqueeze: one read
//     of the row for its peak and one to quantize it, instead of eight operators.
//   ScaleBias(acc [T,N], s [T,1], b [N]) -> acc * s + b
//     replaces Mul then Add: one pass, rounded after the product and after the sum as they are.
//
// Both give the bits of the operators they replace (tested on 400 MNLI pairs: 0.0 difference).
// Built against onnxruntime's C API header (any version from 1.16 on; only version-1 calls are
// used): g++ -O3 -march=native -ffp-contract=off -fPIC -shared -I<include> -o libfused.so fused_ops.cc
// AVX-512 only: a sketch of the kernels to write, not a portable build.

#include <immintrin.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <vector>

#include "onnxruntime_c_api.h"

static const OrtApi* g_api = nullptr;

// A failed call is a bug in this experiment: say what onnxruntime said and stop.
static void check(OrtStatus* status) {
  if (status != nullptr) {
    std::fprintf(stderr, "fused_ops: %s\n", g_api->GetErrorMessage(status));
    std::abort();
  }
}

static std::vector<int64_t> dims_of(const OrtValue* value) {
  OrtTensorTypeAndShapeInfo* info;
  check(g_api->GetTensorTypeAndShape(value, &info));
  size_t count;
  check(g_api->GetDimensionsCount(info, &count));
  std::vector<int64_t> dims(count);
  check(g_api->GetDimensions(info, dims.data(), count));
  g_api->ReleaseTensorTypeAndShapeInfo(info);
  return dims;
}

template <typename T>
static T* data_of(const OrtValue* value) {
  void* data;
  check(g_api->GetTensorMutableData(const_cast<OrtValue*>(value), &data));
  return static_cast<T*>(data);
}

static void row_quantize(OrtKernelContext* context) {
  const OrtValue* input;
  check(g_api->KernelContext_GetInput(context, 0, &input));
  std::vector<int64_t> dims = dims_of(input);
  const int64_t rows = dims[0], width = dims[1];
  const float* x = data_of<float>(input);
  OrtValue *q_value, *s_value;
  check(g_api->KernelContext_GetOutput(context, 0, dims.data(), 2, &q_value));
  const int64_t scale_dims[2] = {rows, 1};
  check(g_api->KernelContext_GetOutput(context, 1, scale_dims, 2, &s_value));
  uint8_t* q = data_of<uint8_t>(q_value);
  float* s = data_of<float>(s_value);
  const __m512 low = _mm512_set1_ps(-128.0f), high = _mm512_set1_ps(127.0f);
  const __m512i zero_point = _mm512_set1_epi32(128);
  for (int64_t t = 0; t < rows; ++t) {
    const float* row = x + t * width;
    __m512 peaks = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= width; k += 16) {
      peaks = _mm512_max_ps(peaks, _mm512_abs_ps(_mm512_loadu_ps(row + k)));
    }
    float peak = _mm512_reduce_max_ps(peaks);
    for (; k < width; ++k) peak = std::fmax(peak, std::fabs(row[k]));
    const float scale = std::fmax(peak, 1e-30f) / 127.0f;
    s[t] = scale;
    const __m512 scales = _mm512_set1_ps(scale);
    uint8_t* out = q + t * width;
    for (k = 0; k + 16 <= width; k += 16) {
      __m512 v = _mm512_div_ps(_mm512_loadu_ps(row + k), scales);
      v = _mm512_min_ps(_mm512_max_ps(v, low), high);
      const __m512i rounded = _mm512_add_epi32(_mm512_cvtps_epi32(v), zero_point);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + k), _mm512_cvtepi32_epi8(rounded));
    }
    for (; k < width; ++k) {
      const float v = std::fmin(std::fmax(row[k] / scale, -128.0f), 127.0f);
      out[k] = static_cast<uint8_t>(static_cast<int>(std::nearbyint(v)) + 128);
    }
  }
}

static void scale_bias(OrtKernelContext* context) {
  const OrtValue *acc_value, *s_value, *b_value;
  check(g_api->KernelContext_GetInput(context, 0, &acc_value));
  check(g_api->KernelContext_GetInput(context, 1, &s_value));
  check(g_api->KernelContext_GetInput(context, 2, &b_value));
  std::vector<int64_t> dims = dims_of(acc_value);
  const int64_t rows = dims[0], width = dims[1];
  const float *acc = data_of<float>(acc_value), *s = data_of<float>(s_value);
  const float* b = data_of<float>(b_value);
  OrtValue* y_value;
  check(g_api->KernelContext_GetOutput(context, 0, dims.data(), 2, &y_value));
  float* y = data_of<float>(y_value);
  for (int64_t t = 0; t < rows; ++t) {
    const float scale = s[t];
    const float* in = acc + t * width;
    float* out = y + t * width;
    for (int64_t n = 0; n < width; ++n) {
      const float product = in[n] * scale;  // -ffp-contract=off: no fused multiply-add
      out[n] = product + b[n];
    }
  }
}

// The op table: version-1 callbacks, the later ones answered with their defaults.
static OrtCustomOp op_quantize, op_scale;
struct Kernel {
  bool quantize;
};

static void* create_kernel(const OrtCustomOp* op, const OrtApi*, const OrtKernelInfo*) {
  return new Kernel{op == &op_quantize};
}
static void compute(void* kernel, OrtKernelContext* context) {
  if (static_cast<Kernel*>(kernel)->quantize) {
    row_quantize(context);
  } else {
    scale_bias(context);
  }
}
static void destroy(void* kernel) { delete static_cast<Kernel*>(kernel); }
static const char* name_of(const OrtCustomOp* op) {
  return op == &op_quantize ? "RowQuantize" : "ScaleBias";
}
static const char* provider(const OrtCustomOp*) { return nullptr; }
static size_t input_count(const OrtCustomOp* op) { return op == &op_quantize ? 1 : 3; }
static size_t output_count(const OrtCustomOp* op) { return op == &op_quantize ? 2 : 1; }
static ONNXTensorElementDataType input_type(const OrtCustomOp*, size_t) {
  return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}
static ONNXTensorElementDataType output_type(const OrtCustomOp* op, size_t index) {
  return op == &op_quantize && index == 0 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8
                                          : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}
static OrtCustomOpInputOutputCharacteristic required(const OrtCustomOp*, size_t) {
  return INPUT_OUTPUT_REQUIRED;
}
static OrtMemType memory(const OrtCustomOp*, size_t) { return OrtMemTypeDefault; }
static int one(const OrtCustomOp*) { return 1; }
static int last_version(const OrtCustomOp*) { return 1 << 30; }
static size_t no_pairs(int** inputs, int** outputs) {
  *inputs = nullptr;
  *outputs = nullptr;
  return 0;
}
static void no_release(int*, int*) {}

static void fill(OrtCustomOp* op) {
  std::memset(op, 0, sizeof *op);
  op->version = 20;  // onnxruntime reads the callbacks of this version; all are set below
  op->CreateKernel = create_kernel;
  op->GetName = name_of;
  op->GetExecutionProviderType = provider;
  op->GetInputType = input_type;
  op->GetInputTypeCount = input_count;
  op->GetOutputType = output_type;
  op->GetOutputTypeCount = output_count;
  op->KernelCompute = compute;
  op->KernelDestroy = destroy;
  op->GetInputCharacteristic = required;
  op->GetOutputCharacteristic = required;
  op->GetInputMemoryType = memory;
  op->GetVariadicInputMinArity = one;
  op->GetVariadicInputHomogeneity = one;
  op->GetVariadicOutputMinArity = one;
  op->GetVariadicOutputHomogeneity = one;
  op->GetStartVersion = one;
  op->GetEndVersion = last_version;
  op->GetMayInplace = no_pairs;
  op->ReleaseMayInplace = no_release;
  op->GetAliasMap = no_pairs;
  op->ReleaseAliasMap = no_release;
}

extern "C" OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options,
                                                     const OrtApiBase* base) {
  g_api = base->GetApi(1);
  fill(&op_quantize);
  fill(&op_scale);
  OrtCustomOpDomain* domain;
  if (OrtStatus* status = g_api->CreateCustomOpDomain("squeezenli.fused", &domain)) return status;
  if (OrtStatus* status = g_api->CustomOpDomain_Add(domain, &op_quantize)) return status;
  if (OrtStatus* status = g_api->CustomOpDomain_Add(domain, &op_scale)) return status;
  return g_api->AddCustomOpDomain(options, domain);
}
