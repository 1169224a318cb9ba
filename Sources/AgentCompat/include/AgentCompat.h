// Link-time compatibility shims of the self-contained agent (see compat.cpp). Nothing to call.
