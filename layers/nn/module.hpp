// Module: the base of every layer and model (PyTorch's nn.Module, reduced to what research code
// needs). A module owns named parameters (Vars that require grad), buffers (tensors saved with the
// model but not trained, e.g. FAVOR+'s projection matrix), random generators (dropout, feature
// redraws; their state is saved too, so a resumed run draws the same numbers), and named
// submodules held in typed slots (Child<T>). Names are hierarchical: "blocks.0.attn.w_q.weight".
//
// A parent calls a child through its slot, `fc1(x)`, which runs fc1's forward inside an ag::Scope
// named after the child ("fc1"), so tape reports and anomaly errors say which module created a
// node; forward itself never opens a scope. Other entry points go through nn::call:
// `nn::call(*kernel, &AttentionKernel::attend, q, k, v, mask)`.
//
// clang-format off
//   class Mlp : public nn::Module {
//    public:
//     Mlp() : Module("Mlp") {
//       register_module("fc1", fc1, std::make_shared<nn::Linear>(2, 8, ...));
//       register_module("fc2", fc2, std::make_shared<nn::Linear>(8, 1, ...));
//     }
//     ag::Var forward(const ag::Var& x) { return fc2(relu(fc1(x))); }  // scopes "fc1", "fc2"
//     nn::Child<nn::Linear> fc1, fc2;
//   };
//   mlp.replace_module("fc2", std::make_shared<nn::Linear>(8, 1, ...));  // fc2 now the new one
// clang-format on
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "autograd/engine.hpp"
#include "autograd/var.hpp"
#include "core/npy.hpp"
#include "core/rng.hpp"

namespace attnlab::nn {

using ag::Var;

class Module;

namespace module_detail {
template <class... A>
struct FirstIsMethod : std::false_type {};
template <class F, class... A>
struct FirstIsMethod<F, A...> : std::is_member_function_pointer<std::decay_t<F>> {};
}  // namespace module_detail

// The module call wrapper: runs module.forward(args...) inside an ag::Scope named after the
// module (a root module, which has no name, opens none). The scope lives on the stack: a call
// allocates nothing.
template <class M,
          class... A,
          std::enable_if_t<!module_detail::FirstIsMethod<A...>::value, int> = 0>
decltype(auto) call(M& module, A&&... args) {
  ag::Scope scope(module.name());
  return module.forward(std::forward<A>(args)...);
}
// The same for an entry point other than forward: nn::call(*kernel, &AttentionKernel::attend, ...).
template <class M,
          class F,
          class... A,
          std::enable_if_t<std::is_member_function_pointer_v<F>, int> = 0>
decltype(auto) call(M& module, F method, A&&... args) {
  ag::Scope scope(module.name());
  return (module.*method)(std::forward<A>(args)...);
}

// A typed slot holding a registered submodule. The parent registers the slot together with the
// child (register_module(name, slot, child)), so Module::replace_module updates the slot too: the
// typed member and the module's registry cannot diverge. Read-only to everyone but Module.
template <class M>
class Child {
 public:
  M* operator->() const { return ptr_.get(); }
  M& operator*() const { return *ptr_; }
  const std::shared_ptr<M>& get() const { return ptr_; }
  operator std::shared_ptr<M>() const { return ptr_; }  // NOLINT: reads as the pointer it holds
  explicit operator bool() const { return static_cast<bool>(ptr_); }
  // Runs the child's forward in its scope: `fc1(x)`.
  template <class... A>
  decltype(auto) operator()(A&&... args) const {
    return call(*ptr_, std::forward<A>(args)...);
  }

 private:
  friend class Module;
  std::shared_ptr<M> ptr_;
};

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
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;
  // The descendant at a hierarchical path ("blocks.0.attn.kernel"); throws naming the path.
  std::shared_ptr<Module> module_at(const std::string& path) const;
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
  // The local name the parent registered this module under ("" for a root); its scope's name.
  const std::string& name() const { return name_; }

  // ---- surgery ----
  // Replaces the descendant at `path` ("kernel", "blocks.0.attn.kernel") by `replacement`, which
  // keeps the registered name: named_parameters, state_dict, str() and tape scopes show the new
  // child and nothing of the old one; the typed slot that held it points to the new one. The new
  // child takes the parent's train/eval mode and, if the parent has parameters, its dtype.
  // Throws naming the path if it does not exist, or if the replacement is not of the slot's type
  // (an attention kernel slot takes any AttentionKernel, a Linear slot only a Linear). Returns
  // the old child.
  std::shared_ptr<Module> replace_module(const std::string& path,
                                         std::shared_ptr<Module> replacement);

 protected:
  Var register_parameter(const std::string& name, const Tensor& value);
  void register_buffer(const std::string& name, const Tensor& value);
  Tensor& buffer(const std::string& name);
  const Tensor& buffer(const std::string& name) const;
  void register_generator(const std::string& name, std::shared_ptr<Generator> gen);
  // Registers `module` as the child `name` held by the typed member `slot` (see Child).
  template <class M, class V>
  void register_module(const std::string& name, Child<M>& slot, std::shared_ptr<V> module) {
    static_assert(std::is_base_of_v<M, V>, "register_module: the child must fit its slot");
    slot.ptr_ = module;
    add_child(name, std::move(module), [&slot](const std::shared_ptr<Module>& m) {
      auto typed = std::dynamic_pointer_cast<M>(m);
      if (!typed)
        return false;
      slot.ptr_ = std::move(typed);
      return true;
    });
  }
  // Registers a child with no typed slot (ModuleList items, modules reached by name). Keep the
  // returned pointer only for the constructor: after replace_module it is the old child.
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module, {});
    return module;
  }
  std::size_t child_count() const { return children_.size(); }
  const std::shared_ptr<Module>& child_at(std::size_t i) const { return children_.at(i).module; }

 private:
  // Stores the new child into the typed slot; false if it is not of the slot's type.
  using SlotSetter = std::function<bool(const std::shared_ptr<Module>&)>;
  struct ChildEntry {
    std::string name;
    std::shared_ptr<Module> module;
    SlotSetter set_slot;  // empty for a child without a typed slot
  };
  void add_child(const std::string& name, std::shared_ptr<Module> m, SlotSetter set_slot);
  static void check_name(const std::string& name, const char* what);
  void check_unique(const std::string& name) const;

  std::string type_name_;
  std::string name_;  // local name given by the parent ("" for a root)
  bool training_ = true;
  std::vector<std::pair<std::string, Var>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Generator>>> generators_;
  std::vector<ChildEntry> children_;
};

// What a forward pass changes besides the parameters: the buffers (FAVOR+'s redraw counters and
// projection) and where every random generator stands (dropout masks, Gumbel noise), by
// hierarchical name. Captured before a training step and restored, the step replays with the
// same draws (training observers: layers/recommender/gradient_shadow.hpp).
struct GeneratorState {
  std::string name;
  uint64_t seed = 0, stream = 0;
};
struct ForwardState {
  NamedTensors buffers;  // copies
  std::vector<GeneratorState> generators;
};
ForwardState capture_forward_state(const Module& m);
// Sets each buffer and generator of `m` named in `state`, in place (names `m` lacks, and those
// `state` lacks, are left alone: a replaced child may have its own). ShapeError when a buffer
// changed shape since the capture. Returns how many buffers and generators were set.
int64_t restore_forward_state(const Module& m, const ForwardState& state);

// While a FreezeTracesGuard lives on this thread, the modules that keep a trace of their last
// call for inspection (FavorKernel, SoftmaxKernel's reference path, LISA) leave that trace as it
// is: an observer that replays a training step (rec::GradientShadow) does not replace the
// step's intermediates, and their gradients, that the user inspects afterwards, and an
// evaluation (rec::evaluate) leaves the trace of the user's last forward. A module may then skip
// tensors it materialises only for its trace (LISA's per-position histograms in evaluation).
bool traces_frozen();
class FreezeTracesGuard {
 public:
  FreezeTracesGuard();
  ~FreezeTracesGuard();
  FreezeTracesGuard(const FreezeTracesGuard&) = delete;
  FreezeTracesGuard& operator=(const FreezeTracesGuard&) = delete;

 private:
  bool saved_;
};

// An ordered list of modules named "0", "1", ... (transformer blocks).
class ModuleList : public Module {
 public:
  ModuleList() : Module("ModuleList") {}
  template <class M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    return register_module(std::to_string(size()), std::move(m));
  }
  std::size_t size() const { return child_count(); }
  // Items are read from the registry on each access, so replace_module("blocks.0", ...) shows.
  const std::shared_ptr<Module>& operator[](std::size_t i) const { return child_at(i); }
  template <class M>
  std::shared_ptr<M> at(std::size_t i) const {
    return std::dynamic_pointer_cast<M>(child_at(i));
  }
};

}  // namespace attnlab::nn
