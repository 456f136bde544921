// Writes the seed corpora of the fuzz targets: small valid inputs made with attnlab's own writers
// (the same bytes numpy writes for .npy/.npz) and near-valid variants (truncated, wrong magic,
// edited headers). Run through make_corpus.sh; the committed files are what CI fuzzes from.
//   make_corpus <corpus_dir>
#include <sys/stat.h>

#include <cstdint>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "core/core.hpp"
#include "tests/fuzz/fuzz_checkpoint_model.hpp"

namespace {

using namespace attnlab;

std::string g_root;

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  const std::string dir = g_root + "/" + target;
  ::mkdir(dir.c_str(), 0755);
  std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  const auto at = s.find(from);
  if (at != std::string::npos)
    s.replace(at, from.size(), to);
  return s;
}

void npy_corpus() {
  const Tensor a = arange(0, 6, 1, kFloat32).reshape({2, 3});
  const Tensor b = arange(0, 4, 1, kFloat64).reshape({2, 1, 2});
  const Tensor c = arange(0, 5, 1, kInt64);
  const Tensor s = scalar_tensor(2.5, kFloat64);
  const Tensor e = Tensor::empty({0, 3}, kFloat32);
  put("npy", "f4_2x3.npy", npy_bytes(a));
  put("npy", "f8_2x1x2.npy", npy_bytes(b));
  put("npy", "i8_5.npy", npy_bytes(c));
  put("npy", "f8_scalar.npy", npy_bytes(s));
  put("npy", "f4_empty.npy", npy_bytes(e));
  const std::string v = npy_bytes(a);
  put("npy", "big_endian.npy", replace(v, "'<f4'", "'>f4'"));
  put("npy", "fortran.npy", replace(v, "False", "True "));
  put("npy", "truncated_data.npy", v.substr(0, v.size() - 5));
  put("npy", "truncated_header.npy", v.substr(0, 20));
  put("npy", "bad_magic.npy", replace(v, "NUMPY", "NUMPX"));
  put("npy", "bad_dtype.npy", replace(v, "'<f4'", "'<c8'"));
  put("npy", "negative_shape.npy", replace(v, "(2, 3)", "(-2, 3)"));
  put("npy", "huge_shape.npy", replace(v, "(2, 3)", "(99999999999, 99999999999)"));
  // Version 2.0: magic, version 2.0, a uint32 little-endian header length, header, data.
  {
    const uint32_t hlen = static_cast<uint8_t>(v[8]) | (static_cast<uint8_t>(v[9]) << 8);
    std::string out = v.substr(0, 6) + std::string("\x02\x00", 2);
    for (int i = 0; i < 4; ++i) out += static_cast<char>((hlen >> (8 * i)) & 0xff);
    out += v.substr(10);
    put("npy", "version2.npy", out);
  }
}

void npz_corpus() {
  const Tensor a = arange(0, 6, 1, kFloat32).reshape({2, 3});
  const Tensor c = arange(0, 3, 1, kInt64);
  const std::string z = npz_bytes({{"a", a}, {"c", c}});
  put("npz", "two_entries.npz", z);
  put("npz", "one_scalar.npz", npz_bytes({{"x", scalar_tensor(1.0, kFloat64)}}));
  put("npz", "empty.npz", npz_bytes({}));
  put("npz", "truncated.npz", z.substr(0, z.size() / 2));
  put("npz", "no_central_directory.npz", z.substr(0, z.size() - 22));
  put("npz", "bad_entry_name.npz", replace(z, "a.npy", "/.npy"));
}

void checkpoint_corpus() {
  fuzz::CheckpointTarget t;
  t.data_rng.next();
  const NamedTensors entries =
      optim::checkpoint_entries(*t.model, *t.opt, 12, t.rngs(), {{"best_ndcg10", 0.25}});
  const std::string z = npz_bytes(entries);
  put("checkpoint", "valid.npz", z);
  put("npz", "checkpoint.npz", z);
  NamedTensors no_rng;
  for (const auto& e : entries) {
    if (e.first.rfind("rng.", 0) != 0)
      no_rng.push_back(e);
  }
  put("checkpoint", "missing_rng.npz", npz_bytes(no_rng));
  NamedTensors wrong_version = entries;
  wrong_version[0].second = Tensor::empty({}, kInt64);
  *wrong_version[0].second.data<int64_t>() = 2;
  put("checkpoint", "version2.npz", npz_bytes(wrong_version));
  NamedTensors wrong_dtype = entries;
  for (auto& e : wrong_dtype) {
    if (e.first.rfind("model.", 0) == 0 && e.second.dtype() == kFloat32) {
      e.second = e.second.to(kFloat64);
      break;
    }
  }
  put("checkpoint", "float64_param.npz", npz_bytes(wrong_dtype));
  put("checkpoint", "truncated.npz", z.substr(0, z.size() - 100));
  put("checkpoint", "model_only.npz", npz_bytes(t.model->state_dict()));
}

void text_corpora() {
  put("sasrec", "small.txt", "1 1\n1 2\n1 3\n2 2\n2 3\n2 4\n3 1\n3 4\n");
  put("sasrec", "interleaved_crlf.txt", "1 5\r\n2 6\r\n1 7\r\n2 5\r\n1 6\r\n");
  put("sasrec", "tabs_no_final_newline.txt", "10\t3\n10\t9\n11\t3");
  put("sasrec", "bad_zero_id.txt", "1 0\n1 2\n");
  put("sasrec", "bad_text.txt", "1 2\nuser item\n");
  put("sasrec", "big_ids.txt", "999999999999999999 999999999999999999\n1 1\n");
  put("sasrec", "empty.txt", "");
  // ratings: the first byte chooses min_item_count (byte % 8).
  const std::string ml =
      "1::1193::5::978300760\n1::661::3::978302109\n1::914::3::978301968\n"
      "2::1193::5::978298413\n2::661::4::978299200\n2::914::4::978299000\n"
      "3::1193::4::978297039\n3::661::2::978297100\n3::914::3::978297200\n";
  put("ratings", "small_min1.dat", std::string("\x01") + ml);
  put("ratings", "small_min5.dat", std::string("\x05") + ml);
  put("ratings",
      "ties_crlf.dat",
      std::string("\x01") + "7::3::5::100\r\n7::2::5::100\r\n7::1::5::99\r\n");
  put("ratings", "bad_fields.dat", std::string("\x01") + "1::2::3\n");
  put("ratings", "negative_time.dat", std::string("\x01") + "1::2::3::-5\n1::3::3::-9\n");
  put("ratings", "bad_separator.dat", std::string("\x01") + "1:2:3:4\n");
  // config: `name = value` lines (the target declares epochs, lr, attention, heads, sizes,
  // full-ranking, resume, plus the common seed, threads, dtype).
  put("config", "basic.cfg", "# comment\nepochs = 5\nlr = 0.01\nattention = favor\n");
  put("config", "common.cfg", "seed = 7\nthreads = 1\ndtype = float64\nheads = 2\n");
  put("config", "switches.cfg", "full-ranking = 1\nresume = true\nsizes = 64,128\n");
  put("config", "sections.cfg", "[train]\nepochs = 1\n");
  put("config", "bad_value.cfg", "epochs = many\n");
  put("config", "unknown.cfg", "bogus = 1\n");
  put("config", "bad_list.cfg", "sizes = 64,,x\n");
  put("config", "negative_seed.cfg", "seed = -1\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_corpus <corpus_dir>\n";
    return 2;
  }
  g_root = argv[1];
  ::mkdir(g_root.c_str(), 0755);
  npy_corpus();
  npz_corpus();
  checkpoint_corpus();
  text_corpora();
  std::cout << "wrote the seed corpora under " << g_root << "\n";
  return 0;
}
