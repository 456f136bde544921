// Module: the base of every layer and model (PyTorch's nn.Module, reduced to what research code
// needs). A module owns named parameters (Vars that require grad), buffers (tensors saved with the
// model but not trained, e.g. FAVOR+'s projection matrix), random generators (dropout, feature
// redraws; their state is saved too, so a resumed run draws the same numbers), and named
// submodules. Names are hierarchical: "blocks.0.attn.w_q.weight".
//
// clang-format off
//   class Mlp : public nn::Module {
//    public:
//     Mlp() : Module("Mlp") {
//       fc1 = register_module("fc1", std::make_shared<nn::Linear>(2, 8, ...));
//       ...
//     }
//     ag::Var forward(const ag::Var& x) {
//       auto s = scope();
//       return fc2->forward(relu(fc1->forward(x)));
//     }
//   };
// clang-format on
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/engine.hpp"
#include "autograd/var.hpp"
#include "core/npy.hpp"
#include "core/rng.hpp"

namespace attnlab::nn {

using ag::Var;

class Module {
 public:
  explicit Module(std::string type_name) : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // ---- contents ----
  // All parameters / buffers / generators of this module and its descendants, in registration
  // order, with hierarchical names.
  std::vector<std::pair<std::string, Var>> named_parameters() const;
  std::vector<Var> parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  std::vector<std::pair<std::string, std::shared_ptr<Generator>>> named_generators() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const {
    return children_;
  }
  int64_t parameter_count() const;  // number of trainable scalars

  // ---- mode, dtype, gradients ----
  void train(bool on = true);  // recursive; layers such as Dropout read is_training()
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Converts every parameter and float buffer to dtype (copying values), e.g. float64 to
  // gradcheck a whole model. Parameters keep their identity (optimizers stay attached).
  void to(DType dtype);
  DType dtype() const;  // of the first parameter (float32 for a module without parameters)
  void zero_grad();

  // ---- state: parameters, buffers and generator states, keyed by hierarchical name ----
  NamedTensors state_dict() const;
  // Strict: a missing, extra or mis-shaped entry throws, naming the entry and both shapes.
  // Values are converted to each parameter's dtype.
  void load_state_dict(const NamedTensors& state);
  void save(const std::string& path) const;  // .npz, written atomically
  void load(const std::string& path);

  // A readable tree: each module's describe() with its children indented.
  std::string str() const;
  virtual std::string describe() const { return type_name_; }
  const std::string& type_name() const { return type_name_; }

 protected:
  Var register_parameter(const std::string& name, const Tensor& value);
  void register_buffer(const std::string& name, const Tensor& value);
  Tensor& buffer(const std::string& name);
  const Tensor& buffer(const std::string& name) const;
  void register_generator(const std::string& name, std::shared_ptr<Generator> gen);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }
  // Opens an ag::Scope named after this module, so that nodes created in forward are attributed
  // to it in tape reports and anomaly errors: `auto s = scope();`.
  std::unique_ptr<ag::Scope> scope() const;

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  static void check_name(const std::string& name, const char* what);
  void check_unique(const std::string& name) const;

  std::string type_name_;
  std::string name_;  // local name given by the parent ("" for a root)
  bool training_ = true;
  std::vector<std::pair<std::string, Var>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Generator>>> generators_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

// An ordered list of modules named "0", "1", ... (transformer blocks).
class ModuleList : public Module {
 public:
  ModuleList() : Module("ModuleList") {}
  template <class M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    items_.push_back(m);
    return register_module(std::to_string(items_.size() - 1), std::move(m));
  }
  std::size_t size() const { return items_.size(); }
  const std::shared_ptr<Module>& operator[](std::size_t i) const { return items_.at(i); }
  template <class M>
  std::shared_ptr<M> at(std::size_t i) const {
    return std::dynamic_pointer_cast<M>(items_.at(i));
  }

 private:
  std::vector<std::shared_ptr<Module>> items_;
};

}  // namespace attnlab::nn
