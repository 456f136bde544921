// GEMM: the GotoBLAS/BLIS loop structure (Goto and van de Geijn, "Anatomy of High-Performance
// Matrix Multiplication", ACM TOMS 2008; Van Zee and van de Geijn, "BLIS", ACM TOMS 2015) with an
// xsimd register-blocked micro-kernel. gemm() is declared in core/matmul.hpp and picks this
// file's copy for the running SIMD path (core/gemm.cpp, core/simd_dispatch.hpp).
//
//   for jc over N in NC panels:
//     for pc over K in KC slices:          pack op(B)[pc, jc] into NR-wide slivers (shared)
//       parallel over a grid of C parts    (row ranges x sliver ranges, one part per thread)
//         for ic over the part's rows in MC blocks:
//           pack op(A)[ic, pc] into MR-tall slivers, or read it in place (see gemm_impl)
//           for jr over the part's B slivers:   the B sliver stays in L1/L2 ...
//             for ir over the block's A slivers: ... while A slivers stream from L2
//               micro-kernel: C[MR x NR] (+)= A_sliver B_sliver in MR x NV vector registers
//
// Transposes only change how the operands are read or packed (op(B)^T is packed with in-register
// W x W transposes). Edges are zero-padded in the packed buffers and written back through a
// small tile, so the micro-kernel has no scalar fringe code.
//
// Determinism: every C element is produced by one thread, accumulating k in a fixed order (the
// KC slices do not depend on the thread count), and full and edge tiles apply the same
// alpha/beta formula: results are bit-identical for any thread count and any partition.
#include "core/gemm_kernels.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/parallel.hpp"
#include "core/simd.hpp"  // xsimd, renamed for this path

namespace attnlab::ATTNLAB_ARCH {
namespace {

// Register blocking: MR rows x NV vectors of C (8 x 32 floats or 8 x 16 doubles on AVX-512).
// 16 accumulators cover the FMA latency x throughput (4 cycles x 2 pipes on Zen 5). Measured on
// Zen 5 (bench gemm): as fast as 12 x 2 and 14 x 2 tiles (24 / 28 accumulators) from n = 512
// up, and 20-35% faster at n = 64..128 (64 = 8 x 8 leaves no ragged tile; cheaper write-back
// per flop at small K). 6 x 4 and 4 x 6 shapes compiled to spills under GCC 12 (60 GFLOP/s).
// KC = 512 beat 192..384 at n >= 1024 (fewer read-modify-write passes over C); the B sliver
// (64 KiB) is then re-read from L2 by each A sliver. MC = 144: the A block (288 KiB for float)
// stays in the 1 MiB L2; 96..240 measured within noise. NC bounds the packed B buffer
// (KC x NC: 4 MiB for float), which each calling thread keeps for reuse.
template <class T>
struct Blocking {
  static constexpr int64_t W = simd::width<T>();
  static constexpr int64_t MR = 8;
  static constexpr int64_t NV = 2;
  static constexpr int64_t NR = NV * W;
  static constexpr int64_t KC = 512;
  static constexpr int64_t MC = 144;
  static constexpr int64_t NC = 2048;
};

// Below this many multiply-adds (~20 us on one core) a gemm runs on the calling thread: handing
// work to the pool and waiting for it costs more than it saves.
constexpr int64_t kMinParallelWork = int64_t{1} << 22;
// Transposed A is read in place while the kc rows one A sliver touches span at most this much.
constexpr int64_t kDirectSpanBytes = int64_t{1} << 20;

// Grow-only, 64-byte aligned (a raw pointer, not std::unique_ptr: see Scratch in core/simd.hpp).
template <class T>
struct AlignedBuffer {
  T* data = nullptr;
  int64_t size = 0;
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(data); }
  T* get(int64_t n) {
    if (n > size) {
      const std::size_t bytes = (static_cast<std::size_t>(n) * sizeof(T) + 63) / 64 * 64;
      std::free(data);
      data = static_cast<T*>(std::aligned_alloc(64, bytes));
      size = data ? n : 0;
      if (!data)
        throw std::bad_alloc();
    }
    return data;
  }
};

// Chunk of k per transposing copy: keeps the written block (16 x MR or 16 x NR) in L1.
constexpr int64_t kPackChunk = 16;

// Packs op(A)[i0 : i0+mc, k0 : k0+kc] into MR-row slivers: sliver s holds, for each k, the MR
// values of rows s*MR .. s*MR+MR-1 (zero-padded past mc).
template <class T>
void pack_a(
    const T* a, int64_t lda, bool trans, int64_t i0, int64_t mc, int64_t k0, int64_t kc, T* dst) {
  constexpr int64_t MR = Blocking<T>::MR;
  for (int64_t s = 0; s < mc; s += MR) {
    const int64_t rows = std::min(MR, mc - s);
    T* out = dst + s * kc;
    if (trans) {  // op(A)(i, k) = a[k * lda + i]: each k is a contiguous run of MR values
      const T* src = a + k0 * lda + i0 + s;
      if (rows == MR) {
        for (int64_t k = 0; k < kc; ++k) std::memcpy(out + k * MR, src + k * lda, sizeof(T) * MR);
      } else {
        for (int64_t k = 0; k < kc; ++k) {
          for (int64_t r = 0; r < MR; ++r) out[k * MR + r] = r < rows ? src[k * lda + r] : T(0);
        }
      }
    } else {  // a transpose (only for the ragged last sliver: full row-major slivers are read
              // in place): read row runs, write MR-strided, in L1-sized chunks of k
      for (int64_t kb = 0; kb < kc; kb += kPackChunk) {
        const int64_t ke = std::min(kc, kb + kPackChunk);
        for (int64_t r = 0; r < rows; ++r) {
          const T* src = a + (i0 + s + r) * lda + k0;
          for (int64_t k = kb; k < ke; ++k) out[k * MR + r] = src[k];
        }
        for (int64_t r = rows; r < MR; ++r) {
          for (int64_t k = kb; k < ke; ++k) out[k * MR + r] = T(0);
        }
      }
    }
  }
}

// In-register transpose of a W x W block (rows[i] = row i), by log2(W) butterfly stages: the
// stage for distance d swaps the off-diagonal d x d blocks of every 2d x 2d block. Only
// compile-time swizzles and selects, so it is portable across xsimd architectures.
template <int D>
struct XorIndex {
  static constexpr unsigned get(std::size_t i, std::size_t) { return static_cast<unsigned>(i ^ D); }
};
template <int D>
struct HasBit {
  static constexpr bool get(std::size_t i, std::size_t) { return (i & D) != 0; }
};

template <class T, int D>
inline void transpose_stage(simd::Batch<T>* rows) {
  using B = simd::Batch<T>;
  using Index = xsimd::batch<std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>;
  constexpr int W = static_cast<int>(B::size);
  constexpr auto swap = xsimd::make_batch_constant<Index, XorIndex<D>>();
  constexpr auto upper = xsimd::make_batch_bool_constant<B, HasBit<D>>();
  for (int i = 0; i < W; ++i) {
    if (i & D)
      continue;
    const B x = rows[i], y = rows[i + D];
    rows[i] = xsimd::select(upper, xsimd::swizzle(y, swap), x);
    rows[i + D] = xsimd::select(upper, y, xsimd::swizzle(x, swap));
  }
}

template <class T>
inline void transpose_block(simd::Batch<T>* rows) {
  constexpr int W = static_cast<int>(simd::Batch<T>::size);
  if constexpr (W >= 16)
    transpose_stage<T, 8>(rows);
  if constexpr (W >= 8)
    transpose_stage<T, 4>(rows);
  if constexpr (W >= 4)
    transpose_stage<T, 2>(rows);
  if constexpr (W >= 2)
    transpose_stage<T, 1>(rows);
}

// Packs op(B)[k0 : k0+kc, j0 + s*NR ...] for slivers s in [s0, s1) into NR-column slivers:
// sliver s holds, for each k, the NR values of its columns (zero-padded past nc). Only the rows
// k in [kb, ke) of the slice are written (threads split a slice of few slivers by k; kb is a
// multiple of W unless it is the slice's end).
template <class T>
void pack_b(const T* b,
            int64_t ldb,
            bool trans,
            int64_t k0,
            int64_t kc,
            int64_t kb,
            int64_t ke,
            int64_t j0,
            int64_t nc,
            int64_t s0,
            int64_t s1,
            T* dst) {
  using Vec = simd::Batch<T>;
  constexpr int64_t NR = Blocking<T>::NR, NV = Blocking<T>::NV, W = Blocking<T>::W;
  for (int64_t s = s0; s < s1; ++s) {
    const int64_t cols = std::min(NR, nc - s * NR);
    T* out = dst + s * NR * kc;
    if (!trans) {  // op(B)(k, j) = b[k * ldb + j]: each k is a contiguous run of NR values
      const T* src = b + k0 * ldb + j0 + s * NR;
      if (cols == NR) {
        for (int64_t k = kb; k < ke; ++k) std::memcpy(out + k * NR, src + k * ldb, sizeof(T) * NR);
      } else {
        for (int64_t k = kb; k < ke; ++k) {
          for (int64_t c = 0; c < NR; ++c) out[k * NR + c] = c < cols ? src[k * ldb + c] : T(0);
        }
      }
      continue;
    }
    // op(B)(k, j) = b[j * ldb + k]: W x W blocks transposed in registers; the ragged rest (a
    // partial group of W columns, or kc % W) is copied element by element.
    for (int64_t v = 0; v < NV; ++v) {
      const int64_t c0 = v * W, group = std::clamp<int64_t>(cols - c0, 0, W);
      const T* src = b + (j0 + s * NR + c0) * ldb + k0;
      int64_t k = kb;
      if (group == W) {
        for (; k + W <= ke; k += W) {
          Vec rows[W];
          for (int64_t r = 0; r < W; ++r) rows[r] = Vec::load_unaligned(src + r * ldb + k);
          transpose_block<T>(rows);
          for (int64_t t = 0; t < W; ++t) rows[t].store_aligned(out + (k + t) * NR + c0);
        }
      }
      for (; k < ke; ++k) {
        for (int64_t c = 0; c < W; ++c) out[k * NR + c0 + c] = c < group ? src[c * ldb + k] : T(0);
      }
    }
  }
}

// Where the micro-kernel reads its A sliver: packed (a[k * MR + i]), or in place from op(A)
// stored row-major (a[i * lda + k]) or transposed (a[k * lda + i]); in place needs MR valid rows.
enum class ALayout { kPacked, kRows, kCols };

// C[m x n] = alpha * (A_sliver B_sliver) + beta * C for m <= MR, n <= NR; beta == 0 never reads
// C.
template <class T, ALayout kLayout>
inline void micro_kernel(int64_t kc,
                         const T* __restrict a,
                         int64_t lda,
                         const T* __restrict b,
                         T* c,
                         int64_t ldc,
                         T alpha,
                         T beta,
                         int64_t m,
                         int64_t n) {
  using B = simd::Batch<T>;
  constexpr int64_t MR = Blocking<T>::MR, NV = Blocking<T>::NV, W = Blocking<T>::W;
  constexpr int64_t NR = Blocking<T>::NR;
  // The C tile is needed only after the k loop: start fetching it now (rows are ldc apart, so
  // they are on different pages for large matrices and the hardware prefetcher misses them).
  for (int64_t i = 0; i < m; ++i) {
    __builtin_prefetch(c + i * ldc, 1);
    __builtin_prefetch(c + i * ldc + NR - 1, 1);
  }
  B acc[MR][NV];
#pragma GCC unroll 16
  for (int64_t i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int64_t v = 0; v < NV; ++v) acc[i][v] = B(T(0));
  }
  for (int64_t k = 0; k < kc; ++k) {
    B bv[NV];
#pragma GCC unroll 4
    for (int64_t v = 0; v < NV; ++v) bv[v] = B::load_aligned(b + k * NR + v * W);
#pragma GCC unroll 16
    for (int64_t i = 0; i < MR; ++i) {
      const B ai(kLayout == ALayout::kPacked ? a[k * MR + i]
                 : kLayout == ALayout::kRows ? a[i * lda + k]
                                             : a[k * lda + i]);
#pragma GCC unroll 4
      for (int64_t v = 0; v < NV; ++v) acc[i][v] = xsimd::fma(ai, bv[v], acc[i][v]);
    }
  }
  const B va(alpha), vb(beta);
  const bool read_c = beta != T(0);
  if (m == MR && n == NR) {
#pragma GCC unroll 16
    for (int64_t i = 0; i < MR; ++i) {
#pragma GCC unroll 4
      for (int64_t v = 0; v < NV; ++v) {
        T* dst = c + i * ldc + v * W;
        const B r =
            read_c ? xsimd::fma(acc[i][v], va, vb * B::load_unaligned(dst)) : acc[i][v] * va;
        r.store_unaligned(dst);
      }
    }
    return;
  }
  // Edge tile: the same formula on a copy, so an element's value never depends on whether it
  // sat in a full or an edge tile (that would make results depend on the partition).
  alignas(64) T tile[MR * NR];
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t v = 0; v < NV; ++v) {
      T* t = tile + i * NR + v * W;
      if (read_c) {
        for (int64_t j = 0; j < W; ++j) {
          const int64_t col = v * W + j;
          t[j] = col < n ? c[i * ldc + col] : T(0);
        }
      }
      const B r = read_c ? xsimd::fma(acc[i][v], va, vb * B::load_aligned(t)) : acc[i][v] * va;
      r.store_aligned(t);
    }
    std::memcpy(c + i * ldc, tile + i * NR, sizeof(T) * n);
  }
}

// How the threads split one (KC x NC) step: pm row ranges x pn sliver ranges, pm * pn parts.
struct Grid {
  int64_t pm = 1, pn = 1;
};

// The grid for `threads` threads minimizing the most tiles any part computes; ties favour
// splitting rows (the threads then share one packed B panel and pack disjoint A blocks).
inline Grid choose_grid(int64_t threads, int64_t m_tiles, int64_t n_tiles) {
  Grid best;
  int64_t best_cost = m_tiles * n_tiles;
  for (int64_t pm = threads; pm >= 1; --pm) {
    if (threads % pm != 0)
      continue;
    const int64_t pn = threads / pm;
    const int64_t cost = ((m_tiles + pm - 1) / pm) * ((n_tiles + pn - 1) / pn);
    if (cost < best_cost) {
      best_cost = cost;
      best = {pm, pn};
    }
  }
  return best;
}

template <class T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
  }
}

template <class T>
void gemm_impl(bool ta,
               bool tb,
               int64_t M,
               int64_t N,
               int64_t K,
               T alpha,
               const T* A,
               int64_t lda,
               const T* B,
               int64_t ldb,
               T beta,
               T* C,
               int64_t ldc) {
  using Blk = Blocking<T>;
  constexpr int64_t MR = Blk::MR, NR = Blk::NR, KC = Blk::KC, MC = Blk::MC, NC = Blk::NC;
  if (M <= 0 || N <= 0)
    return;
  if (K <= 0 || alpha == T(0)) {  // C = beta * C (beta == 0: overwrite, NaNs in C do not leak)
    scale_c(M, N, beta, C, ldc);
    return;
  }
  const bool serial = in_parallel_region() || num_threads() == 1 || M * N * K < kMinParallelWork;
  const int64_t threads = serial ? 1 : num_threads();
  // A is read in place when that is cheap: always for row-major A (the MR rows stream through
  // L1), and for transposed A when the kc rows one sliver touches span at most 1 MiB (beyond that
  // each k lands on another page and the packed copy won: 200 vs 170 GFLOP/s at n = 2048).
  // Packing costs about one cycle per element of A against N / (2 NR) cycles of FMAs per
  // element: reading in place took 64^3 from 135 to 190 GFLOP/s and n = 512 from 195 to 205.
  const bool direct_a =
      !ta || std::min(K, KC) * lda * static_cast<int64_t>(sizeof(T)) <= kDirectSpanBytes;
  thread_local AlignedBuffer<T> packed_b;
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    const int64_t n_slivers = (nc + NR - 1) / NR;
    const Grid grid = choose_grid(threads, (M + MR - 1) / MR, n_slivers);
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min(KC, K - pc);
      T* bp = packed_b.get(n_slivers * NR * kc);
      const T beta_pc = pc == 0 ? beta : T(1);
      if (threads == 1) {
        pack_b(B, ldb, tb, pc, kc, 0, kc, jc, nc, 0, n_slivers, bp);
      } else if (n_slivers >= 2 * threads) {  // by slivers
        parallel_for(0, n_slivers, 2, [&](int64_t s0, int64_t s1) {
          pack_b(B, ldb, tb, pc, kc, 0, kc, jc, nc, s0, s1, bp);
        });
      } else {  // few slivers (N = 50 in a recommender's Linear backward): by rows of k, W at a
                // time
        constexpr int64_t W = Blk::W;
        parallel_for(0, (kc + W - 1) / W, 4, [&](int64_t g0, int64_t g1) {
          pack_b(B, ldb, tb, pc, kc, g0 * W, std::min(kc, g1 * W), jc, nc, 0, n_slivers, bp);
        });
      }
      auto part = [&](int64_t p) {
        thread_local AlignedBuffer<T> packed_a;
        const int64_t pm = p / grid.pn, pn = p % grid.pn;
        const int64_t m_tiles = (M + MR - 1) / MR;
        const int64_t i_lo = m_tiles * pm / grid.pm * MR;
        const int64_t i_hi = std::min(M, m_tiles * (pm + 1) / grid.pm * MR);
        const int64_t s_lo = n_slivers * pn / grid.pn, s_hi = n_slivers * (pn + 1) / grid.pn;
        for (int64_t i0 = i_lo; i0 < i_hi; i0 += MC) {
          const int64_t mc = std::min(MC, i_hi - i0);
          const int64_t full = direct_a ? mc / MR * MR : 0;  // slivers read in place
          T* ap = packed_a.get(((mc + MR - 1) / MR) * MR * kc);
          if (full < mc)
            pack_a(A, lda, ta, i0 + full, mc - full, pc, kc, ap + full * kc);
          for (int64_t s = s_lo; s < s_hi; ++s) {
            const int64_t j = s * NR, n = std::min(NR, nc - j);
            const T* bs = bp + s * NR * kc;
            T* cs = C + jc + j;
            for (int64_t ir = 0; ir < mc; ir += MR) {
              T* ct = cs + (i0 + ir) * ldc;
              const int64_t m = std::min(MR, mc - ir);
              if (ir < full && !ta) {
                micro_kernel<T, ALayout::kRows>(
                    kc, A + (i0 + ir) * lda + pc, lda, bs, ct, ldc, alpha, beta_pc, m, n);
              } else if (ir < full) {
                micro_kernel<T, ALayout::kCols>(
                    kc, A + pc * lda + i0 + ir, lda, bs, ct, ldc, alpha, beta_pc, m, n);
              } else {
                micro_kernel<T, ALayout::kPacked>(
                    kc, ap + ir * kc, 0, bs, ct, ldc, alpha, beta_pc, m, n);
              }
            }
          }
        }
      };
      const int64_t parts = grid.pm * grid.pn;
      if (parts > 1) {
        parallel_for(0, parts, 1, [&](int64_t p0, int64_t p1) {
          for (int64_t p = p0; p < p1; ++p) part(p);
        });
      } else {
        part(0);
      }
    }
  }
}

}  // namespace

const GemmKernels& gemm_kernels() {
  static constexpr GemmKernels kTable{&gemm_impl<float>, &gemm_impl<double>};
  return kTable;
}

}  // namespace attnlab::ATTNLAB_ARCH
