// Everything in autograd/: Var, the engine, ops, custom Functions, the Tape, gradcheck.
#pragma once

#include "autograd/engine.hpp"
#include "autograd/function.hpp"
#include "autograd/gradcheck.hpp"
#include "autograd/node.hpp"
#include "autograd/ops.hpp"
#include "autograd/tape.hpp"
#include "autograd/var.hpp"
