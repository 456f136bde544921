#include <doctest/doctest.h>

#include <cmath>

#include "core/core.hpp"
#include "tests/test_helpers.hpp"

using namespace attnlab;

TEST_SUITE("core.rng") {
  TEST_CASE("Philox4x32-10 matches the Random123 known-answer vectors") {
    // Random123 kat_vectors: philox4x32 10 rounds, counter = key = 0 and all-ones.
    auto r = philox4x32({0, 0}, 0);
    CHECK(r[0] == 0x6627e8d5u);
    CHECK(r[1] == 0xe169c58du);
    CHECK(r[2] == 0xbc57ac4cu);
    CHECK(r[3] == 0x9b00dbd8u);
    auto s = philox4x32({~0ull, ~0ull}, ~0ull);
    CHECK(s[0] == 0x408f276du);
    CHECK(s[1] == 0x41c83b0eu);
    CHECK(s[2] == 0xa20bc7c6u);
    CHECK(s[3] == 0x6d5451fdu);
  }

  TEST_CASE("the vectorised block generator is bit-identical to the scalar one") {
    for (uint64_t first : {0ull, 5ull, (1ull << 32) - 7, ~0ull - 40}) {
      const int64_t n = 37;  // not a multiple of the 16 lanes
      std::vector<uint32_t> w[4];
      for (auto& v : w) v.resize(n);
      philox4x32_block({3, 9}, first, n, w[0].data(), w[1].data(), w[2].data(), w[3].data());
      std::vector<double> u(n);
      uniform01_block({3, 9}, first, n, u.data());
      for (int64_t i = 0; i < n; ++i) {
        const auto r = philox4x32({3, 9}, first + i);
        for (int k = 0; k < 4; ++k) CHECK(w[k][i] == r[k]);
        CHECK(u[i] == uniform01({3, 9}, first + i));
      }
    }
  }

  TEST_CASE("keep32: one word per element - the block form equals the definition") {
    const uint64_t threshold = keep32_threshold(0.8);
    CHECK(threshold == 3435973837ull);  // round(0.8 * 2^32)
    CHECK(keep32_threshold(1.0) == (1ull << 32));
    CHECK(keep32_threshold(0.0) == 0);
    // p = 0.8, and the edges: keep none, keep all (2^32: the whole-block path fills), and the
    // thresholds next to them.
    for (uint64_t t : std::vector<uint64_t>{threshold, 0, 1, (1ull << 32) - 1, 1ull << 32})
      for (uint64_t first : {0ull, 1ull, 3ull, 5ull, 62ull, 64ull, (1ull << 40) + 3}) {
        for (int64_t n : {1, 3, 37, 64, 130, 200}) {
          const uint64_t threshold = t;
          CAPTURE(threshold);
          CAPTURE(first);
          CAPTURE(n);
          std::vector<float> f(n);
          std::vector<double> d(n);
          keep32_block({4, 2}, first, n, threshold, 1.25f, 0.0f, f.data());
          keep32_block({4, 2}, first, n, threshold, 1.25, 0.0, d.data());
          for (int64_t i = 0; i < n; ++i) {
            const uint64_t e = first + static_cast<uint64_t>(i);
            // Element 64 b + 16 w + l is word w of counter 16 b + l.
            const bool kept = philox4x32({4, 2}, 16 * (e / 64) + e % 16)[(e / 16) % 4] < threshold;
            CHECK(kept == keep32({4, 2}, e, threshold));
            CHECK(f[i] == (kept ? 1.25f : 0.0f));
            CHECK(d[i] == (kept ? 1.25 : 0.0));
          }
        }
      }
    // The kept fraction over 2^20 elements: 0.8 within 5 standard deviations (0.0004 each).
    std::vector<float> m(1 << 20);
    keep32_block({7, 1}, 0, static_cast<int64_t>(m.size()), threshold, 1.0f, 0.0f, m.data());
    double kept = 0;
    for (float x : m) kept += x;
    CHECK(std::fabs(kept / m.size() - 0.8) < 5 * std::sqrt(0.8 * 0.2 / m.size()));
    CHECK_THROWS_AS(keep32_threshold(1.5), ValueError);
    CHECK_THROWS_AS(keep32_block({1, 1}, ~0ull - 10, 20, threshold, 1.0f, 0.0f, m.data()),
                    ValueError);
  }

  TEST_CASE(
      "extreme random bits give uniforms strictly inside the open unit interval and finite "
      "samples") {
    // All-zero and all-one bits (and their neighbours) are the patterns that round to 0 or 1.
    const std::vector<uint64_t> extremes = {0,
                                            1,
                                            2,
                                            1ull << 11,
                                            1ull << 12,
                                            1ull << 63,
                                            (1ull << 63) - 1,
                                            ~0ull,
                                            ~0ull - 1,
                                            ~0ull - (1ull << 11),
                                            ~0ull - (1ull << 12)};
    for (uint64_t b : extremes) {
      CAPTURE(b);
      const double u = uniform01_from_bits(b);
      CHECK(u > 0.0);
      CHECK(u < 1.0);
      const double g = gumbel_from_bits(b);
      CHECK(std::isfinite(g));
      CHECK(std::isfinite(static_cast<float>(g)));
      CHECK(bernoulli_from_bits(b, 1.0) == 1.0);  // u < 1 always
      CHECK(bernoulli_from_bits(b, 0.0) == 0.0);
      for (uint64_t b2 : extremes) {
        const double z = normal_from_bits(b, b2);
        CHECK(std::isfinite(z));
        CHECK(std::isfinite(static_cast<float>(z)));
      }
    }
    // The ends of the range are exactly (0 + 0.5) / 2^52 and (2^52 - 1 + 0.5) / 2^52.
    CHECK(uniform01_from_bits(0) == std::ldexp(1.0, -53));
    CHECK(uniform01_from_bits(~0ull) == 1.0 - std::ldexp(1.0, -53));
    // The tensor functions use these maps: element i of a draw is the map of Philox counter i.
    for (DType dt : {kFloat32, kFloat64}) {
      const Tensor g = gumbel({5}, RngKey{4, 2}, dt), z = randn({5}, RngKey{4, 2}, dt);
      for (int64_t i = 0; i < 5; ++i) {
        const auto r = philox4x32({4, 2}, i);
        const uint64_t b01 = (uint64_t(r[0]) << 32) | r[1], b23 = (uint64_t(r[2]) << 32) | r[3];
        CHECK(g.flat(i) == static_cast<double>(dt == kFloat32 ? float(gumbel_from_bits(b01))
                                                              : gumbel_from_bits(b01)));
        CHECK(z.flat(i) == static_cast<double>(dt == kFloat32 ? float(normal_from_bits(b01, b23))
                                                              : normal_from_bits(b01, b23)));
        CHECK(uniform01({4, 2}, i) == uniform01_from_bits(b01));
      }
    }
  }

  TEST_CASE("same key / same numbers / whatever the thread count") {
    for (DType dt : {kFloat32, kFloat64}) {
      Tensor one, two;
      {
        testing::ThreadCountGuard g(1);
        one = randn({100000}, RngKey{42, 3}, dt);
      }
      {
        testing::ThreadCountGuard g(2);
        two = randn({100000}, RngKey{42, 3}, dt);
      }
      CHECK(testing::bitwise_equal(one, two));
      // A prefix of a longer draw equals the shorter draw: values depend on (seed, stream, index).
      CHECK(testing::bitwise_equal(slice(one, 0, 0, 10), randn({10}, RngKey{42, 3}, dt)));
      CHECK_FALSE(testing::bitwise_equal(one, randn({100000}, RngKey{42, 4}, dt)));
      CHECK_FALSE(testing::bitwise_equal(one, randn({100000}, RngKey{43, 3}, dt)));
    }
  }

  TEST_CASE("Generator hands out fresh streams and restores its state") {
    Generator g(7);
    Tensor a = rand({5}, g), b = rand({5}, g);
    CHECK_FALSE(testing::bitwise_equal(a, b));
    CHECK(g.stream() == 2);
    Generator h(0);
    h.set_state(7, 1);
    CHECK(testing::bitwise_equal(rand({5}, h), b));
  }

  TEST_CASE("distributions have the right moments") {
    const int64_t n = 400000;
    // Tolerances are about 5 standard errors of each estimate.
    Tensor z = randn({n}, RngKey{1, 0}, kFloat64);
    const double m = mean(z).item(), v = mean(square(sub(z, m))).item();
    CHECK(std::fabs(m) < 5 / std::sqrt(double(n)));
    CHECK(std::fabs(v - 1) < 5 * std::sqrt(2.0 / n));
    Tensor u = rand({n}, RngKey{1, 1}, kFloat32, -2, 3);
    CHECK(min(u).item() >= -2);
    CHECK(max(u).item() < 3);
    CHECK(std::fabs(mean(u).item() - 0.5) < 5 * 5 / std::sqrt(12.0 * n));
    Tensor bern = bernoulli({n}, 0.3, RngKey{1, 2});
    CHECK(std::fabs(mean(bern).item() - 0.3) < 5 * std::sqrt(0.21 / n));
    Tensor gm = gumbel({n}, RngKey{1, 3}, kFloat64);
    CHECK(std::fabs(mean(gm).item() - 0.5772156649) < 5 * 1.2825 / std::sqrt(double(n)));
    CHECK_FALSE(has_nonfinite(gm));
    Tensor ri = randint({n}, 5, 9, RngKey{1, 4});
    std::vector<int64_t> counts(4, 0);
    for (int64_t v2 : ri.to_vector<int64_t>()) {
      REQUIRE(v2 >= 5);
      REQUIRE(v2 < 9);
      ++counts[v2 - 5];
    }
    for (int64_t c : counts) CHECK(std::fabs(c - n / 4.0) < 5 * std::sqrt(n * 0.1875));
  }

  TEST_CASE("the integer Bernoulli threshold makes bernoulli_from_bits's decisions") {
    // Probabilities at the ends, around 2^-53 (u's smallest value), halves of the grid, and
    // ordinary ones; bits at and beside each threshold, the extremes and Philox draws.
    const double ps[] = {0.0,
                         std::ldexp(1.0, -54),
                         std::ldexp(1.0, -53),
                         std::nextafter(std::ldexp(1.0, -53), 1.0),
                         std::ldexp(3.0, -53),
                         std::ldexp(1.0, -52),
                         0.2,
                         0.5,
                         0.8,
                         std::nextafter(0.8, 0.0),
                         1.0 - std::ldexp(1.0, -53),
                         std::nextafter(1.0, 0.0),
                         1.0};
    for (double p : ps) {
      CAPTURE(p);
      const BernoulliThreshold t = bernoulli_threshold(p);
      std::vector<uint64_t> bits = {
          0, 1, 4095, 4096, 1ull << 63, ~0ull, ~0ull - 4095, ~0ull - 4096};
      for (uint64_t d : {0ull, 1ull, 4095ull, 4096ull, 4097ull, 8191ull, 8192ull}) {
        bits.push_back(t.below + d);
        bits.push_back(t.below - d);
      }
      for (int64_t i = 0; i < 2000; ++i) {
        const auto r = philox4x32({7, 1}, i);
        bits.push_back((uint64_t(r[0]) << 32) | r[1]);
      }
      for (uint64_t b : bits) {
        CAPTURE(b);
        CHECK(t.hit(b) == (bernoulli_from_bits(b, p) == 1.0));
      }
    }
    CHECK_THROWS_AS(bernoulli_threshold(-0.1), ValueError);
    CHECK_THROWS_AS(bernoulli_threshold(std::nan("")), ValueError);
  }

  TEST_CASE("bernoulli and bernoulli_scaled are the maps of Philox counters") {
    for (DType dt : {kFloat32, kFloat64}) {
      const Tensor b = bernoulli({3000}, 0.8, RngKey{5, 6}, dt);
      const Tensor s = bernoulli_scaled({3000}, 0.8, 1.0 / 0.8, RngKey{5, 6}, dt);
      // The dropout mask as it was built before bernoulli_scaled: bernoulli times the scale.
      CHECK_CLOSE(s, mul(b, 1.0 / 0.8), 0, 0);
      for (int64_t i = 0; i < 3000; ++i) {
        const auto r = philox4x32({5, 6}, i);
        REQUIRE(b.get({i}) == bernoulli_from_bits((uint64_t(r[0]) << 32) | r[1], 0.8));
      }
    }
  }

  TEST_CASE("keep32_mask: element i is keep32 of the key and i at any thread count") {
    const uint64_t threshold = keep32_threshold(0.8);
    const int saved = num_threads();
    for (DType dt : {kFloat32, kFloat64}) {
      // 3 x 7001 elements: several parallel chunks and a partial last block.
      set_num_threads(1);
      const Tensor one = keep32_mask({3, 7001}, 0.8, 1.25, RngKey{9, 4}, dt);
      set_num_threads(2);
      const Tensor two = keep32_mask({3, 7001}, 0.8, 1.25, RngKey{9, 4}, dt);
      CHECK_CLOSE(one, two, 0, 0);
      for (int64_t i = 0; i < 3 * 7001; ++i) {
        const double want = keep32({9, 4}, static_cast<uint64_t>(i), threshold) ? 1.25 : 0.0;
        REQUIRE(one.get({i / 7001, i % 7001}) == want);
      }
    }
    set_num_threads(saved);
    CHECK_THROWS_AS(keep32_mask({4}, 1.5, 1.0, RngKey{1, 1}, kFloat32), ValueError);
  }

  TEST_CASE("bad parameters") {
    CHECK_THROWS_WITH_AS(
        bernoulli({2}, 1.5, RngKey{}), doctest::Contains("bernoulli: probability"), ValueError);
    CHECK_THROWS_AS(rand({2}, RngKey{}, kFloat32, 1, 1), ValueError);
    CHECK_THROWS_AS(randn({2}, RngKey{}, kFloat32, 0, -1), ValueError);
    CHECK_THROWS_AS(randint({2}, 3, 3, RngKey{}), ValueError);
    CHECK_THROWS_AS(randn({2}, RngKey{}, kInt64), DTypeError);
  }
}
