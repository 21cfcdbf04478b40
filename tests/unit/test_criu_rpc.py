"""pyoci.criu's protobuf wire code, against bytes worked out by hand from rpc.proto."""

from __future__ import annotations

from pyoci import criu


def test_encode_version_request() -> None:
    assert criu.encode(criu.REQ, {"type": criu.VERSION_REQ}) == b"\x08\x0a"


def test_encode_nested_repeated_and_negative() -> None:
    req = {"type": criu.DUMP, "opts": {"images_dir_fd": 5, "pid": -1,
                                       "ext_mnt": [{"key": "/a", "val": "/b"}],
                                       "external": ["x", "y"], "shell_job": True,
                                       "log_file": None}}
    opts = (b"\x08\x05"  # images_dir_fd = 5
            + b"\x10" + b"\xff" * 9 + b"\x01"  # pid = -1: ten-byte varint
            + b"\xba\x01\x08" + b"\x0a\x02/a\x12\x02/b"  # field 23, 8 bytes
            + b"\xaa\x02\x01x" + b"\xaa\x02\x01y"  # field 37 twice
            + b"\x38\x01")  # shell_job
    assert criu.encode(criu.REQ, req) == b"\x08\x01\x12" + bytes([len(opts)]) + opts


def test_decode_response() -> None:
    raw = (b"\x08\x06\x10\x01"  # NOTIFY, success
           + b"\x2a\x10" + b"\x0a\x0cpost-restore" + b"\x10\x2a"  # notify {script, pid 42}
           + b"\x38" + b"\xfe" + b"\xff" * 8 + b"\x01"  # cr_errno = -2
           + b"\x4a\x03bad"  # cr_errmsg
           + b"\x60\x07")  # an unknown field 12: skipped
    assert criu.decode(criu.RESP, raw) == {
        "type": criu.NOTIFY, "success": True,
        "notify": {"script": "post-restore", "pid": 42}, "cr_errno": -2, "cr_errmsg": "bad"}


def test_first_error_takes_criu_reason() -> None:
    log = ("(00.001) something\n"
           "(00.002) Error (criu/vdso.c:613): vdso: Unexpected rt vDSO area bounds\n"
           "(00.003) Error (criu/crtools.c:260): Could not initialize kernel features detection.\n")
    assert criu.first_error(log) == "vdso: Unexpected rt vDSO area bounds"
