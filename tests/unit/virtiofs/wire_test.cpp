// The wire layer on its own: the bounds-checked reader, the scatter writer, name validation and
// the FUSE device-number encoding.
#include <sys/sysmacros.h>

#include "fuse_client.h"
#include "virtiofs/fuse_wire.h"
#include "virtiofs/host_path.h"

using namespace krunlet::fs;

TEST_CASE("ArgReader never reads past its bytes and consumes nothing on failure") {
    const uint8_t raw[] = {1, 0, 0, 0, 'a', 'b', 0, 'c'};
    ArgReader r(std::span<const uint8_t>(raw, sizeof(raw)));
    fuse_getattr_in too_big;  // 16 bytes > 8
    CHECK_FALSE(r.read(too_big));
    CHECK(r.remaining() == 8);
    uint32_t v = 0;
    REQUIRE(r.read(v));
    CHECK(v == 1);
    Name n = Name::trusted("");
    REQUIRE(r.read_cstr(n));
    CHECK(n.view() == "ab");
    CHECK(n.c_str()[2] == '\0');
    CHECK_FALSE(r.read_cstr(n));  // "c" has no NUL
    std::span<const uint8_t> s;
    CHECK_FALSE(r.take(2, s));
    REQUIRE(r.take(1, s));
    CHECK(s[0] == 'c');
    CHECK(r.at_end());
    CHECK_FALSE(r.read_cstr(n));
    // A prefix read zeroes the rest of the struct.
    const uint8_t four[] = {9, 0, 0, 0};
    ArgReader p(std::span<const uint8_t>(four, 4));
    fuse_setxattr_in sx;
    std::memset(&sx, 0xff, sizeof(sx));
    REQUIRE(p.read_prefix(sx, 4));
    CHECK(sx.size == 9);
    CHECK(sx.flags == 0);
    CHECK(sx.setxattr_flags == 0);
}

TEST_CASE("ReplyWriter scatters across buffers, refuses what doesn't fit, fills the header") {
    uint8_t a[3], b[1], c[20], d[8];
    std::memset(a, 0xee, sizeof(a));
    std::memset(b, 0xee, sizeof(b));
    std::memset(c, 0xee, sizeof(c));
    std::memset(d, 0xee, sizeof(d));
    iovec iov[] = {{a, 3}, {b, 0}, {c, 20}, {d, 8}};  // 31 bytes, one empty piece
    ReplyWriter w(iov);
    REQUIRE(w.header_fits());
    CHECK(w.capacity() == 31);
    CHECK(w.remaining() == 15);
    CHECK(w.append("hello", 5));
    CHECK_FALSE(w.append("0123456789A", 11));  // 11 > 10 left: nothing written
    CHECK(w.size() == 21);
    iovec pieces[4];
    size_t np = w.peek_iovecs(10, pieces, 4);
    REQUIRE(np == 2);
    CHECK(pieces[0].iov_base == c + 18);  // after header (13 bytes of c) and "hello"
    CHECK(pieces[0].iov_len == 2);
    CHECK(pieces[1].iov_base == d);
    CHECK(pieces[1].iov_len == 8);
    std::memcpy(pieces[0].iov_base, "XY", 2);
    w.advance(2);
    CHECK(w.append_zeros(8));
    CHECK(w.remaining() == 0);
    CHECK_FALSE(w.append("!", 1));
    CHECK(w.finish(77, 0) == 31);
    // Header: len 31, error 0, unique 77, split over a (3 bytes) and c (13 bytes).
    uint8_t hdr[16];
    std::memcpy(hdr, a, 3);
    std::memcpy(hdr + 3, c, 13);
    fuse_out_header h;
    std::memcpy(&h, hdr, sizeof(h));
    CHECK(h.len == 31);
    CHECK(h.error == 0);
    CHECK(h.unique == 77);
    CHECK(std::string(reinterpret_cast<char*>(c + 13), 5) == "hello");
    CHECK(std::string(reinterpret_cast<char*>(c + 18), 2) == "XY");
    for (uint8_t x : d) CHECK(x == 0);
    // An error reply drops the body.
    CHECK(w.finish(78, ENOENT) == 16);
    std::memcpy(hdr, a, 3);
    std::memcpy(hdr + 3, c, 13);
    std::memcpy(&h, hdr, sizeof(h));
    CHECK(h.len == 16);
    CHECK(h.error == -ENOENT);
    // No room for a header: nothing at all.
    iovec tiny[] = {{a, 3}};
    ReplyWriter t(tiny);
    CHECK_FALSE(t.header_fits());
    CHECK_FALSE(t.append("x", 1));
    CHECK(t.finish(1, 0) == 0);
    ReplyWriter none(std::span<const iovec>{});
    CHECK(none.finish(1, EINVAL) == 0);
}

TEST_CASE("valid_name accepts exactly one path component") {
    CHECK(valid_name("a"));
    CHECK(valid_name("..."));
    CHECK(valid_name(".hidden"));
    CHECK(valid_name(std::string(255, 'x')));
    CHECK_FALSE(valid_name(""));
    CHECK_FALSE(valid_name("."));
    CHECK_FALSE(valid_name(".."));
    CHECK_FALSE(valid_name("a/b"));
    CHECK_FALSE(valid_name("/"));
    CHECK_FALSE(valid_name(std::string("a\0b", 3)));
    CHECK_FALSE(valid_name(std::string(256, 'x')));
}

TEST_CASE("device numbers use the kernel's 32-bit FUSE layout") {
    CHECK(encode_dev(makedev(1, 3)) == 0x103u);
    CHECK(encode_dev(makedev(0xabc, 0x12345)) == ((0x45u) | (0xabcu << 8) | (0x123u << 20)));
    for (dev_t dev : {makedev(0, 0), makedev(8, 1), makedev(4095, 0xfffff), makedev(259, 65536)}) {
        CHECK(decode_dev(encode_dev(dev)) == dev);
    }
    static_assert(dirent_size(1) == 32 && dirent_size(8) == 32 && dirent_size(9) == 40);
    static_assert(direntplus_size(1) == 160);
}
