// NumPy .npy and .npz files, so tensors move between attnlab and Python (np.load / np.save /
// np.savez read and write the same files). Supported element types: float32 ('<f4'), float64
// ('<f8') and int64 ('<i8'); reading also accepts big-endian data and fortran_order (converted),
// and format versions 1.0, 2.0 and 3.0. save_npy writes the same bytes as np.save. .npz archives
// are read as np.savez writes them (stored entries); np.savez_compressed archives are refused
// with an IOError that says so. Every malformed, truncated or unsupported file raises IOError
// naming the file (or "<archive>:<entry>") and the problem; nothing crashes. The save_*
// functions write through write_file_atomic; load_* copy array data once, from the file
// straight into the tensor.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"

namespace attnlab {

// An ordered list of named tensors (the contents of an .npz archive, in archive order). Names
// are stored as "<name>.npy" entries; they must be non-empty, must not start with '/' and must
// not contain a ".." path component (ValueError), and must be unique.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

void save_npy(const std::string& path, const Tensor& t);
Tensor load_npy(const std::string& path);
void save_npz(const std::string& path, const NamedTensors& tensors);
NamedTensors load_npz(const std::string& path);

// In-memory forms (also what the fuzzers drive). `source` names the data in error messages.
std::string npy_bytes(const Tensor& t);
Tensor parse_npy(const std::string& bytes, const std::string& source);
std::string npz_bytes(const NamedTensors& tensors);
NamedTensors parse_npz(const std::string& bytes, const std::string& source);

}  // namespace attnlab
