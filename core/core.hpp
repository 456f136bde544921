// Everything in core/: tensors, creation, random numbers, kernels, npy I/O.
#pragma once

#include "core/dtype.hpp"
#include "core/elementwise.hpp"
#include "core/error.hpp"
#include "core/file_io.hpp"
#include "core/indexing.hpp"
#include "core/matmul.hpp"
#include "core/npy.hpp"
#include "core/parallel.hpp"
#include "core/reduce.hpp"
#include "core/rng.hpp"
#include "core/scan.hpp"
#include "core/shape.hpp"
#include "core/shape_ops.hpp"
#include "core/softmax.hpp"
#include "core/storage.hpp"
#include "core/tensor.hpp"
