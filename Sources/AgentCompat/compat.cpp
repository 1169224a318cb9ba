// What the self-contained agent needs to run on older Linux (glibc 2.31, libstdc++ of GCC 10):
// the Swift runtime's static libraries were built with GCC 11+ headers, which call
// std::__throw_bad_array_new_length() (GLIBCXX_3.4.29, absent from GCC 10's libstdc++). A weak
// definition here satisfies the link against the old library; where libstdc++ has it, the
// library's own definition is used at run time.
#include <new>

namespace std {
__attribute__((weak, noreturn)) void __throw_bad_array_new_length() { throw std::bad_array_new_length(); }
}  // namespace std
