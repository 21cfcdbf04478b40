"""Build the C helper with cffi in out-of-line API mode.

Every ``native/*.cdef`` file holds the declarations Python may call (each
with a matching ``native/*.h``), and every ``native/*.c`` file is compiled
into the one extension ``pyoci._native._pyoci``.
Declarations are parsed here, at build time only; at run time pyoci imports the
compiled module and never parses C.
"""

from __future__ import annotations

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

ffibuilder = FFI()
ffibuilder.cdef("\n".join(p.read_text() for p in sorted(HERE.glob("*.cdef"))))
ffibuilder.set_source(
    "pyoci._native._pyoci",
    "".join(f'#include "{p.name}"\n' for p in sorted(HERE.glob("*.h"))),
    sources=[str(p.relative_to(HERE.parent)) for p in sorted(HERE.glob("*.c"))],
    include_dirs=[str(HERE.relative_to(HERE.parent))],
    libraries=["seccomp"],
    extra_compile_args=["-O2", "-Wall", "-Wno-unused-function"],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=str(HERE.parent), verbose=False)
