// The single doctest executable: every tests/*.cpp file is one suite mirroring a source folder.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
