#!/usr/bin/env python3
"""Write the seed corpora in tests/fuzz/corpus/<target>/.

Each fuzzer decodes its input front to back (fuzz_util.h: u8/u16/u32/u64
little-endian, zeros past the end); the encoders below follow those decoders
so every seed starts a meaningful scenario. A seed that drifts out of step
with its decoder still works, it just starts somewhere less interesting:
re-run this script after changing a decoder.

    tests/fuzz/make_seeds.py            (rewrites the corpus directories)
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def u8(v): return struct.pack('<B', v & 0xff)
def u16(v): return struct.pack('<H', v & 0xffff)
def u32(v): return struct.pack('<I', v & 0xffffffff)
def u64(v): return struct.pack('<Q', v & 0xffffffffffffffff)


def write(target, name, data):
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


# ---- fuzz_virtqueue (fuzz_virtqueue.cpp: setup(), configure(), step()) --------------------------
def vq_config(size_log=4, event_idx=False, base16=0):
    c = (size_log << 4) | (0x40 if event_idx else 0)
    layout = 0x02 if event_idx else 0x00
    return u8(c) + u8(layout) + u16(base16)


def vq_chain(first, nseg, nread, segs):
    """op 10: a well-formed chain; segs = [(addr_off, len)]."""
    out = u8(10) + u16(first) + u8((nseg - 1) | (nread << 3))
    for addr_off, ln in segs:
        out += u16(addr_off) + u16(ln - 1)
    return out


def vq_pop_all(written):
    return u8(3) + b''.join(u32(w) for w in written)


def virtqueue():
    t = 'fuzz_virtqueue'
    # max 256; size 16; two chains popped and completed.
    write(t, 'two_chains', u8(8) + vq_config() +
          vq_chain(0, 2, 1, [(0x100, 64), (0x200, 128)]) +
          vq_chain(4, 3, 2, [(0x400, 16), (0x500, 16), (0x600, 512)]) +
          vq_pop_all([2, 1000]) + u8(6))
    # EVENT_IDX, used_event set, interrupts checked.
    write(t, 'event_idx', u8(8) + vq_config(3, True, 0x10) +
          u8(7) + u8(0) + u16(1) +
          vq_chain(0, 1, 0, [(0x100, 32)]) + vq_pop_all([32]) + u8(6) +
          vq_chain(2, 1, 1, [(0x180, 32)]) + vq_pop_all([0]) + u8(6))
    # An indirect table (op 11: entries, chain, head, flags).
    write(t, 'indirect', u8(8) + vq_config() +
          u8(11) + u8(3) + u16(0) + u8(1 | (1 << 3)) + u16(0x300) + u16(63) + u16(0x380) + u16(63) +
          u16(5) + u8(0) + vq_pop_all([7]))
    # Hold a chain across a reset, then return it (must be ignored).
    write(t, 'stale_after_reset', u8(8) + vq_config() +
          vq_chain(1, 1, 0, [(0x100, 8)]) + u8(4) + u8(8) + vq_config() + u8(5) + u8(0) + u8(0) + u32(8))
    # A descriptor loop (op 0 twice) and an avail->idx jump.
    write(t, 'loop_and_jump', u8(4) + vq_config(2) +
          u8(0) + u8(1) + u16(0) + u8(0) + u16(0x100) + u8(0) + u16(16) + u8(1) + u16(1) +
          u8(0) + u8(1) + u16(1) + u8(0) + u16(0x200) + u8(0) + u16(16) + u8(1) + u16(0) +
          u8(1) + u16(0) + u8(3) + u8(2) + u16(100) + u8(3))


# ---- fuzz_mmio (fuzz_mmio.cpp: step(), bring_up(), post()) --------------------------------------
def mmio():
    t = 'fuzz_mmio'
    bring_up_all = u8(4) + u8(0x01)
    # queue, first descriptor, segments-1, (addr, len-1[, writable]) per segment, poison?, kick?
    post_q0 = u8(5) + u8(0) + u8(0) + u8(0) + u16(0x10) + u8(16) + u8(0x80) + u8(1)
    post_rw = u8(5) + u8(1) + u8(2) + u8(1) + u16(0x40) + u8(8) + u16(0x80) + u8(8) + u8(1) + u8(0x80) + u8(1)
    write(t, 'bring_up_and_kick', bring_up_all + post_q0 + post_rw + u8(11) + u8(7) + u8(1) + u8(15))
    # Rewrite a queue field after DRIVER_OK (NEEDS_RESET), then reset via Status.
    write(t, 'frozen_queue_write', bring_up_all + u8(0) + u8(10) + u8(0) + u8(32) + u8(11) + u8(9) + u8(0) + u8(0) +
          u8(11))
    # Raw accesses of odd widths, config space, unknown registers.
    # op 2: offset, width index, 0xff-escape, write?, bytes
    write(t, 'odd_accesses', u8(2) + u16(0x100) + u8(2) + u8(0) + u8(0) +
          u8(2) + u16(0x0fff) + u8(4) + u8(0) + u8(1) + b'\x01\x02\x03\x04\x05\x06\x07\x08' +
          u8(2) + u16(0x0070) + u8(1) + u8(0) + u8(1) + b'\x01\x00\x00\x00' + u8(1) + u8(27))
    # Features refused (bits not offered), then a device that fails activation.
    write(t, 'refused_and_failing', u8(4) + u8(0x00) + u64(0xffffffffffffffff) +
          u8(8) + u8(1) + u8(4) + u8(0x01) + u8(11) + u8(8) + u8(2) + post_q0 + u8(11))


# ---- fuzz_fuse (fuzz_fuse.cpp: kOps order, Session::build(), Session::send()) -------------------
FUSE_OPS = ['LOOKUP', 'LOOKUP', 'LOOKUP', 'GETATTR', 'SETATTR', 'SETATTR', 'READLINK', 'SYMLINK', 'MKNOD',
            'MKDIR', 'UNLINK', 'RMDIR', 'RENAME', 'RENAME2', 'LINK', 'OPEN', 'OPEN', 'OPEN', 'OPENDIR',
            'CREATE', 'CREATE', 'READ', 'READ', 'WRITE', 'WRITE', 'RELEASE', 'RELEASEDIR', 'FLUSH', 'FSYNC',
            'FSYNCDIR', 'READDIR', 'READDIRPLUS', 'READDIRPLUS', 'STATFS', 'SETXATTR', 'GETXATTR', 'LISTXATTR',
            'REMOVEXATTR', 'ACCESS', 'FORGET', 'BATCH_FORGET', 'INTERRUPT', 'FALLOCATE', 'LSEEK',
            'COPY_FILE_RANGE', 'INIT', 'DESTROY', 'TMPFILE', 'ZERO', 'SETUPMAPPING', 'IOCTL', 'CUSE_INIT', 'GETLK',
            'SETLK', 'SETLK', 'SETLKW', 'SYNCFS']
FUSE_NAMES = ['hello', 'dir', 'inner', 'sub', 'link', 'escape', 'abs', 'fifo', 'null', 'big', 'exec', 'hello2',
              'up', 'new', 'x', 'init.krun', '.', '..', '', 'a/b', '../canary', 'n' * 255, 'm' * 256, 'nul\0in']


def f_req(op, node_sel, args):
    """pick, node selector (nodes_[s % n]: 0 = root), args bytes, header mode 0, no cuts."""
    return u8(FUSE_OPS.index(op)) + u8(node_sel) + args + u8(0) + u8(0)


def f_name(name):
    return u8(FUSE_NAMES.index(name)) + u8(0)


def fuse_session(reqs, config=0x00, limits=0x00):
    # config, handle limit, "send INIT" (minor 38, all flags, flags2 0), then the requests.
    return u8(config) + u8(limits) + u8(0x01) + u8(7) + u8(0) + u8(0) + u8(0) + b''.join(reqs)


def fuse():
    t = 'fuzz_fuse'
    lookup_hello = f_req('LOOKUP', 0, f_name('hello'))        # nodes_[1] = hello
    open_rdwr = f_req('OPEN', 1, u8(2) + u8(0) + u8(0))        # fhs_[0]
    read = f_req('READ', 1, u8(0) + u8(0) + u16(0) + u8(0) + u8(0) + u8(0))
    write_ = f_req('WRITE', 1, u8(0) + u8(0) + u16(3) + u8(5) + b'fuzz!' + u8(0) + u8(0) + u8(0))
    release = f_req('RELEASE', 1, u8(0) + u8(0) + u8(0) + u8(0))
    write(t, 'read_write', fuse_session([lookup_hello, open_rdwr, read, write_, read, release]))

    mkdir = f_req('MKDIR', 0, u8(0) + u8(0) + u8(0) + f_name('new'))
    create = f_req('CREATE', 1, u8(0) + u8(0) + u8(0) + u8(0) + f_name('x'))
    readdirplus = f_req('READDIRPLUS', 1, u8(1) + u8(0) + u16(0) + u8(1) + u8(0) + u8(0))
    opendir = f_req('OPENDIR', 1, u8(5) + u8(0) + u8(0))
    write(t, 'mkdir_create_readdir', fuse_session([mkdir, create, opendir, readdirplus,
                                                  f_req('OPENDIR', 0, u8(5) + u8(0) + u8(0)),
                                                  f_req('READDIRPLUS', 0, u8(2) + u8(0) + u16(0) + u8(1) + u8(0) +
                                                        u8(0))]))

    symlink = f_req('SYMLINK', 0, f_name('new') + u8(0) + u8(1) + u8(0))    # new -> ../canary
    readlink = f_req('READLINK', 1, b'')
    lookup_escape = f_req('LOOKUP', 0, f_name('escape'))
    open_escape = f_req('OPEN', 2, u8(1) + u8(0) + u8(0))
    lookup_fifo = f_req('LOOKUP', 0, f_name('fifo'))
    open_fifo = f_req('OPEN', 3, u8(0) + u8(0) + u8(0))
    write(t, 'links_and_specials', fuse_session([symlink, readlink, lookup_escape, open_escape, lookup_fifo,
                                                 open_fifo, f_req('LOOKUP', 0, f_name('..')),
                                                 f_req('LOOKUP', 0, f_name('init.krun'))]))

    rename = f_req('RENAME', 0, u8(0) + u8(0) + f_name('hello') + f_name('new'))
    setxattr = f_req('SETXATTR', 1, u8(0) + u8(3) + b'abc' + u8(0) + u8(0) + u8(0) + u8(0) + u8(1) + u8(0))
    getxattr = f_req('GETXATTR', 1, u8(3) + u8(0) + u8(0) + u8(0) + u8(0))
    listxattr = f_req('LISTXATTR', 1, u8(3) + u8(0))
    setattr = f_req('SETATTR', 1, b'\0' * 88 + u8(0) + u8(0) + u8(0) + u16(5) + u8(0) + u8(0) + u8(0xff) + u8(0))
    forget = f_req('FORGET', 1, u8(0) + u8(1) + u8(0))
    write(t, 'attrs_rename_forget', fuse_session([lookup_hello, setxattr, getxattr, listxattr, setattr, rename,
                                                  forget, f_req('STATFS', 0, b''), f_req('DESTROY', 0, b'')]))
    # POSIX locks kept on the host: two owners conflict, SETLKW must not wait; then flock.
    def lk(op, owner, typ, flock=False):
        # fh, owner, start (offset), end = start + u16, type, flags, struct
        return f_req(op, 1, u8(0) + u8(0) + u8(owner) + u8(0) + u16(0) + u8(0) + u16(100) + u8(typ) +
                     (u8(0xc0) + u8(0) if flock else u8(0)) + u8(0))
    write(t, 'locks', fuse_session([lookup_hello, open_rdwr, lk('SETLK', 1, 1), lk('GETLK', 2, 1),
                                    lk('SETLKW', 2, 1), lk('SETLK', 1, 2), lk('SETLK', 2, 0, True),
                                    lk('SETLKW', 3, 1, True),
                                    f_req('FLUSH', 1, u8(0) + u8(0)), f_req('SYNCFS', 0, u8(0)), release]))
    # Read-only share, small limits.
    write(t, 'read_only', fuse_session([lookup_hello, open_rdwr, write_, mkdir, f_req('LOOKUP', 0, f_name('dir')),
                                        f_req('LOOKUP', 0, f_name('big'))], config=0xcf, limits=0x03))


# ---- fuzz_vsock (fuzz_vsock.cpp: Harness(), step(), send_packet(), post_rx()) -------------------
OP_REQUEST, OP_RESPONSE, OP_RST, OP_SHUTDOWN, OP_RW, OP_CREDIT_UPDATE, OP_CREDIT_REQUEST = 1, 2, 3, 4, 5, 6, 7


def v_packet(op, payload=b'', port=0, dst=0, flags=0, kick=True):
    # sel 0: guest CID -> host CID, stream; guest port kGuestPorts[port]; dst <0xe0 = the service.
    return (u8(0) + u8(0) + u8(port) + u8(dst) + u8(op) + u8(0) + u8(flags) + u8(0) +
            u8(len(payload)) + payload + u8(0) + u8(0) + u8(1 if kick else 0))


def v_post_rx(n=8):
    return u8(3) + u8(n - 1) + u8(0)


def vsock():
    t = 'fuzz_vsock'
    mode = u8(0x04)  # honest credit, buf_alloc 256 KiB
    connect = v_post_rx() + v_packet(OP_REQUEST) + u8(4)
    write(t, 'connect_echo_close', mode + connect + v_packet(OP_RW, b'\x00hello') + v_post_rx() + u8(4) +
          v_packet(OP_RW, b'\x05bye') + v_post_rx() + u8(4) + v_packet(OP_SHUTDOWN, flags=3) + u8(4) +
          v_packet(OP_RST))
    write(t, 'service_sends', mode + connect + u8(5) + u8(0) + u8(2) + u16(5000) + v_post_rx() + u8(4) +
          v_post_rx() + u8(4) + v_packet(OP_CREDIT_REQUEST) + u8(5) + u8(0) + u8(1) + v_post_rx() + u8(4))
    write(t, 'no_service_and_garbage', mode + v_post_rx() + v_packet(OP_REQUEST, dst=0xe5) +
          v_packet(OP_RW, b'x', port=1) + v_packet(0, port=2) + v_packet(8, port=3) + u8(4))
    write(t, 'small_rx_buffer', mode + v_packet(OP_REQUEST) + u8(3) + u8(0) + u8(0xf0 + 10) + u8(4) + u8(8) +
          connect)
    write(t, 'two_connections_reset', mode + connect + v_packet(OP_REQUEST, port=1) + u8(4) +
          v_packet(OP_RW, b'\x01' * 40, port=1) + v_post_rx() + u8(4) + u8(8) + connect)


# ---- fuzz_init_config (fuzz_init_config.cpp: "<image config>\0<control message>") -------------
def init_config():
    t = 'fuzz_init_config'
    oci = {"process": {"args": ["/bin/sh", "-c", "echo hi"], "env": ["PATH=/usr/bin", "A=1", "A=2"],
                       "cwd": "/work", "user": {"uid": 1000, "gid": 1000, "additionalGids": [10], "umask": 18},
                       "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}], "terminal": True},
           "hostname": "box", "mounts": [{"destination": "/tmp", "type": "tmpfs",
                                          "options": ["nosuid", "size=65536k", "mode=1777", "tmpcopyup"]}]}
    exec_msg = {"type": "exec", "args": ["/bin/true"], "env": ["A=3", "B=x=y"], "workdir": "/",
                "rlimits": ["7=10:20", "RLIMIT_CORE=unlimited:unlimited"], "tty": False}
    docker = {"config": {"Entrypoint": ["/entry"], "Cmd": "run it", "Env": ["HOME=/root"], "WorkingDir": "/srv",
                         "User": "nobody:nogroup"}}
    write(t, 'oci_and_exec', json.dumps(oci).encode() + b'\0' + json.dumps(exec_msg).encode())
    write(t, 'docker_and_signal', json.dumps(docker).encode() + b'\0' + b'{"type":"signal","signo":15}')
    write(t, 'unknown_and_rlimit_words', b'{"process":null,"Cmd":null}\0' + b'{"type":"later"},7=1:2,nosuid,mode=755')
    write(t, 'bad_values', b'{"process":{"env":["=x"],"cwd":"rel"}}\0{"type":"exec","workdir":"rel","args":[1]}')


# ---- fuzz_control_decoder (fuzz_control_decoder.cpp: workload, signo, chunk, stream) -----------
def frame(text):
    b = text.encode() if isinstance(text, str) else text
    return u32(len(b)) + b


def strings(items):
    out = u8(len(items))
    for s in items:
        b = s.encode() if isinstance(s, str) else s
        out += u8(len(b)) + b
    return out


def control_decoder():
    t = 'fuzz_control_decoder'
    workload = strings(['/bin/echo', 'hi']) + strings(['A=1']) + u8(1) + b'/' + strings(['7=1:2'])
    write(t, 'exit_in_pieces', u8(0) + workload + u8(15) + u8(3) + frame('{"type":"exit","code":3}'))
    write(t, 'garbage_then_exit', u8(1) + workload + u8(9) + u8(0) +
          frame('not json') + frame('{"type":"exit"}') + frame('{"type":"exit","code":300}') +
          frame('{"type":"exit","code":0}'))
    write(t, 'bad_length', u8(0) + strings([]) + strings([]) + u8(0) + strings([]) + u8(2) + u8(1) +
          frame('{"type":"ping"}') + u32(0) + b'tail')
    write(t, 'odd_workload', u8(1) + strings([b'\xff\xfe', 'a\0b']) + strings(['noequals', '=x']) + u8(3) +
          b'rel' + strings(['bogus']) + u8(0xff) + u8(1) + frame('{"type":"exit","code":-1}'))


# ---- fuzz_passt (fuzz_passt.cpp: ops 0 write, 1 room, 2 run, 3 send, 4 read) ------------------
def passt():
    t = 'fuzz_passt'
    def be32(v): return struct.pack('>I', v)
    def eth(n, b=0x45): return bytes([0xff] * 6 + [0x52, 0x54, 0, 0x12, 0x34, 0x56, 8, 0]) + bytes([b]) * (n - 14)
    def framed(f): return be32(len(f)) + f
    def write_op(data): return u8(0) + u16(len(data)) + data
    stream = framed(eth(60)) + framed(eth(1514)) + framed(b'short') + framed(eth(14))
    write(t, 'frames_in_one_write', write_op(stream) + u8(2))
    # The same stream split mid-length and mid-frame, with the sink full in between.
    write(t, 'split_no_room', u8(1) + write_op(stream[:3]) + u8(2) + write_op(stream[3:70]) + u8(2) +
          u8(1) + write_op(stream[70:]) + u8(2))
    write(t, 'bad_length', write_op(framed(eth(60)) + be32(0) + b'rest') + u8(2) + u8(3) + u16(60))
    write(t, 'too_long', write_op(be32(65551) + eth(100)))
    write(t, 'sends_and_reads', u8(3) + u16(60) + u8(3) + u16(9000) + u8(3) + u16(5) + u8(2) + u8(4) +
          u8(3) + u16(65550) + u8(2) + u8(4))


if __name__ == '__main__':
    passt()
    virtqueue()
    mmio()
    fuse()
    vsock()
    init_config()
    control_decoder()
