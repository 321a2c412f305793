// Bit packing driver: rows of N elements -> rows of ceil(N / 64) words, OpenMP over row segments.
#include "native.hpp"

namespace spikenas {
namespace {

// Words per parallel work item: 131072 elements, so that one long row still splits over threads.
constexpr int64_t kSegmentWords = 2048;

uint64_t pack_tail(const void* src, int elem_bytes, uint64_t mask, size_t count) {
  switch (elem_bytes) {
    case 1:
      return pack_partial_word<uint8_t>(static_cast<const uint8_t*>(src), uint8_t(mask), count);
    case 2:
      return pack_partial_word<uint16_t>(static_cast<const uint16_t*>(src), uint16_t(mask), count);
    case 4:
      return pack_partial_word<uint32_t>(static_cast<const uint32_t*>(src), uint32_t(mask), count);
    default:
      return pack_partial_word<uint64_t>(static_cast<const uint64_t*>(src), mask, count);
  }
}

}  // namespace

void pack_rows(const void* src, int elem_bytes, uint64_t mask, int64_t rows, int64_t n, uint64_t* dst,
               int threads) {
  const Kernels& kernels = active_kernels();
  const int64_t words = (n + 63) / 64;
  const int64_t full = n / 64;
  const int64_t segments = (words + kSegmentWords - 1) / kSegmentWords;
  const char* base = static_cast<const char*>(src);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t item = 0; item < rows * segments; ++item) {
    const int64_t r = item / segments;
    const int64_t w0 = (item % segments) * kSegmentWords;
    const int64_t w1 = w0 + kSegmentWords < words ? w0 + kSegmentWords : words;
    const char* row = base + r * n * elem_bytes;
    uint64_t* out = dst + r * words;
    const int64_t full_end = w1 < full ? w1 : full;
    if (w0 < full_end)
      kernels.pack_words(row + w0 * 64 * elem_bytes, elem_bytes, mask, full_end - w0, out + w0);
    if (w1 == words && full < words)
      out[full] = pack_tail(row + full * 64 * elem_bytes, elem_bytes, mask, n - full * 64);
  }
}

}  // namespace spikenas
