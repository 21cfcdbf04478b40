"""The cgroup v2 device program, run in a tiny eBPF interpreter (no kernel, no root).

The interpreter knows only the instructions the generator may emit, so a new
opcode fails loudly here before the kernel's verifier sees it.  Each rule set
is checked against a plain-Python statement of runc's semantics (default deny,
last matching rule wins, decided per access bit) over a grid of devices.
"""

from __future__ import annotations

import itertools
import struct

import pytest

from pyoci.cgroups import devices_bpf as dbpf
from pyoci.cgroups.convert import DEFAULT_DEVICE_RULES
from pyoci.errors import CgroupError

BLOCK, CHAR = dbpf.DEVCG_DEV_BLOCK, dbpf.DEVCG_DEV_CHAR
M, R, W = dbpf.DEVCG_ACC_MKNOD, dbpf.DEVCG_ACC_READ, dbpf.DEVCG_ACC_WRITE
U32 = 0xFFFFFFFF


def run(code: bytes, dev_type: int, major: int, minor: int, access: int) -> int:
    """Execute ``code`` on a bpf_cgroup_dev_ctx; return r0."""
    assert len(code) % 8 == 0 and len(code) // 8 < 4096
    insns = [struct.unpack("<BBhi", code[i : i + 8]) for i in range(0, len(code), 8)]
    ctx = struct.pack("<III", access << 16 | dev_type, major, minor)
    regs = [0] * 11
    regs[1] = -1  # the ctx pointer: only LDX through r1 may use it
    written = {1, 10}
    pc = 0
    for _step in range(len(insns) + 1):  # no back-jumps, so each insn runs at most once
        code_, regs_byte, off, imm = insns[pc]
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc += 1
        if code_ == dbpf.JMP_EXIT:
            assert 0 in written, "r0 read before it was set"
            return regs[0]
        if code_ == dbpf.LDX_MEM_W:
            assert src == 1 and regs[1] == -1 and off in (0, 4, 8)
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code_ == dbpf.ALU_MOV_X:
            assert src in written
            regs[dst] = regs[src] & U32
        elif code_ == dbpf.ALU_MOV_K:
            regs[dst] = imm & U32
        elif code_ == dbpf.ALU_AND_K:
            assert dst in written
            regs[dst] = regs[dst] & imm & U32
        elif code_ == dbpf.ALU_RSH_K:
            assert dst in written and 0 <= imm < 32
            regs[dst] = (regs[dst] & U32) >> imm
        elif code_ in (dbpf.JMP32_JNE_K, dbpf.JMP32_JEQ_K):
            assert dst in written and off >= 0, "jumps only go forward"
            equal = regs[dst] & U32 == imm & U32
            if equal == (code_ == dbpf.JMP32_JEQ_K):
                pc += off
            continue
        else:
            raise AssertionError(f"unexpected opcode {code_:#x} at {pc - 1}")
        written.add(dst)
    raise AssertionError("ran off the end of the program")


def reference(rules: list[dict], dev_type: int, major: int, minor: int, access: int) -> bool:
    """Each requested bit is decided by the last rule that matches it; default deny."""
    full = [*rules, *DEFAULT_DEVICE_RULES]
    for bit in (M, R, W):
        if not access & bit:
            continue
        verdict = False
        for raw in full:
            rule = dbpf.parse_rule(raw)
            if rule.type not in (None, dev_type):
                continue
            if rule.major not in (None, major) or rule.minor not in (None, minor):
                continue
            if rule.access & bit:
                verdict = rule.allow
        if not verdict:
            return False
    return True


DEVICES = [(t, ma, mi) for t in (BLOCK, CHAR) for ma in (1, 5, 8, 136) for mi in (0, 3, 11)]
ACCESSES = list(range(1, 8))

RULE_SETS = {
    "runc default (deny all, then defaults)": [{"allow": False, "access": "rwm"}],
    "no rules at all": [],
    "allow everything": [{"allow": True, "access": "rwm"}],
    "allow everything but one device": [
        {"allow": True, "access": "rwm"},
        {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "rwm"},
    ],
    "wildcard major and -1 minor": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "b", "major": 8, "minor": -1, "access": "rw"},
        {"allow": True, "type": "c", "major": -1, "minor": 11, "access": "r"},
    ],
    "later deny of one bit wins": [
        {"allow": True, "type": "c", "major": 1, "access": "rwm"},
        {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "w"},
    ],
    "later allow wins over earlier deny": [
        {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "rw"},
    ],
    "bits from two allow rules combine": [
        {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "r"},
        {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "w"},
    ],
    "a-type with narrow access": [
        {"allow": True, "type": "a", "access": "r"},
        {"allow": False, "type": "a", "major": 5, "access": "r"},
    ],
    "deny overrides the defaults? no: defaults come last": [
        {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    ],
}


@pytest.mark.parametrize("name", list(RULE_SETS))
def test_program_matches_reference(name: str) -> None:
    rules = RULE_SETS[name]
    code = dbpf.program(rules)
    for (t, ma, mi), acc in itertools.product(DEVICES, ACCESSES):
        got = run(code, t, ma, mi, acc)
        want = reference(rules, t, ma, mi, acc)
        assert got == int(want), (name, t, ma, mi, acc)


def test_default_policy_specifics() -> None:
    code = dbpf.program([{"allow": False, "access": "rwm"}])
    assert run(code, CHAR, 1, 3, R | W) == 1  # /dev/null
    assert run(code, CHAR, 136, 7, R | W) == 1  # a pty
    assert run(code, CHAR, 1, 11, R) == 0  # /dev/kmsg
    assert run(code, CHAR, 1, 11, M) == 1  # mknod of anything is allowed
    assert run(code, BLOCK, 8, 0, R) == 0  # a disk
    assert run(code, BLOCK, 8, 0, M) == 1


def test_allow_all_short_circuits() -> None:
    """After an unconditional allow-all (read from the end), nothing else is emitted."""
    allow_all = {"allow": True, "access": "rwm"}
    code = dbpf.program([{"allow": False, "type": "b", "access": "rwm"}, allow_all])
    assert code == dbpf.program([allow_all])
    # The defaults, then the allow-all block (w0 = 1; exit) in place of the default deny.
    assert len(code) == len(dbpf.program([]))
    assert code[-16:-8] == bytes([0xB4, 0, 0, 0, 1, 0, 0, 0])
    assert run(code, BLOCK, 8, 0, R | W | M) == 1


def test_prologue_and_epilogue_bytes() -> None:
    code = dbpf.program([])
    # r2 = *(u32 *)(r1 + 0): opcode 0x61, dst r2 in the low nibble, src r1 in the high one.
    assert code[:8] == bytes([0x61, 0x12, 0, 0, 0, 0, 0, 0])
    # w2 &= 0xffff
    assert code[16:24] == bytes([0x54, 0x02, 0, 0]) + struct.pack("<i", 0xFFFF)
    # default deny: w0 = 0; exit
    assert code[-16:] == bytes([0xB4, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])


def test_major_beyond_int32_uses_the_low_32_bits() -> None:
    rules = [{"allow": True, "type": "c", "major": 2**31 + 5, "minor": 1, "access": "r"}]
    code = dbpf.program(rules)
    assert run(code, CHAR, 2**31 + 5, 1, R) == 1
    assert run(code, CHAR, 5, 1, R) == 0  # /dev/console: not in the defaults


@pytest.mark.parametrize(
    "rule",
    [
        {"allow": True, "type": "x", "access": "r"},
        {"allow": True, "type": "c", "access": "rx"},
        {"allow": True, "type": "c", "major": 2**32, "access": "r"},
    ],
)
def test_invalid_rules_are_refused(rule: dict) -> None:
    with pytest.raises(CgroupError):
        dbpf.program([rule])
