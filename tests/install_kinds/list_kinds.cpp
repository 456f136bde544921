// Prints every registered attention kind, then every model kind, one name per line.
#include <iostream>

#include "layers/attention/attention_registry.hpp"
#include "layers/recommender/model_registry.hpp"

int main() {
  for (const auto& k : attnlab::nn::attention_kinds()) std::cout << "attention " << k.name << "\n";
  for (const auto& k : attnlab::rec::model_kinds()) std::cout << "model " << k.name << "\n";
  return 0;
}
